using MeshAI.Contracts.Job.V1;

namespace MeshAI.Common.Domain;

/// <summary>
/// The contract's rules for a decoded <see cref="WorkloadInput"/>, in one place: control applies them to plaintext
/// payloads (JobEnvelopeValidator) and the SDK applies them before sealing an end-to-end encrypted payload that control
/// cannot read. Either way an empty input is refused before a job exists, so nothing is placed or billed.
/// </summary>
public static class WorkloadInputRules
{
    /// <summary>The request field the decoded input sits in; violations name paths below it.</summary>
    public const string PayloadField = "envelope.input_manifest.payload";

    /// <summary>Description of a blank text or message.</summary>
    public const string BlankText = "must contain at least one non-whitespace character";

    /// <summary>The first rule <paramref name="input"/> breaks as a BadRequest field path and description, or null.</summary>
    public static (string Field, string Description)? Check(WorkloadInput input, int maxEmbeddingTexts)
    {
        ArgumentNullException.ThrowIfNull(input);
        switch (input.InputCase)
        {
            case WorkloadInput.InputOneofCase.Embeddings:
                var texts = input.Embeddings.Texts;
                if (texts.Count == 0 || texts.Count > maxEmbeddingTexts)
                {
                    return (PayloadField + ".embeddings.texts", $"embeddings take 1 to {maxEmbeddingTexts} texts (got {texts.Count})");
                }

                for (var i = 0; i < texts.Count; i++)
                {
                    if (string.IsNullOrWhiteSpace(texts[i]))
                    {
                        return ($"{PayloadField}.embeddings.texts[{i}]", BlankText);
                    }
                }

                break;
            case WorkloadInput.InputOneofCase.Chat:
                var messages = input.Chat.Messages;
                if (messages.Count == 0)
                {
                    return (PayloadField + ".chat.messages", "at least one message (the prompt) is required");
                }

                for (var i = 0; i < messages.Count; i++)
                {
                    if (string.IsNullOrWhiteSpace(messages[i].Content))
                    {
                        return ($"{PayloadField}.chat.messages[{i}].content", BlankText);
                    }
                }

                if (!messages.Any(m => m.Role is ChatRole.User or ChatRole.Unspecified))
                {
                    return (PayloadField + ".chat.messages", "needs a user message (the prompt)");
                }

                break;
        }

        return null;
    }
}

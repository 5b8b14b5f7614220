using MeshAI.Agent.Chat;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Workloads;

/// <summary>
/// small_chat: streams each generated piece as a token frame the moment it exists; enforces the context and
/// max-token limits and the stop sequences here (whatever the runtime does), so every runtime behaves the same.
/// </summary>
public sealed class ChatHandler : IWorkloadHandler, IDisposable
{
    /// <summary>Completion tokens when the input does not say.</summary>
    public const int DefaultMaxTokens = 256;

    /// <summary>Most completion tokens one job may ask for.</summary>
    public const int MaxMaxTokens = 4096;

    /// <summary>Context window when the input does not say.</summary>
    public const int DefaultContextTokens = 2048;

    /// <summary>Largest context window one job may ask for.</summary>
    public const int MaxContextTokens = 32768;

    /// <summary>Most UTF-8 bytes of a resumed answer (<see cref="ChatResume.AssistantText"/>).</summary>
    public const int MaxResumeTextBytes = 1 << 20;

    private readonly IChatRuntime _runtime;

    /// <summary>Creates the handler over a runtime (LLamaSharp or an OpenAI-compatible server).</summary>
    public ChatHandler(IChatRuntime runtime) => _runtime = runtime;

    /// <inheritdoc />
    public WorkloadClass Workload => WorkloadClass.SmallChat;

    /// <inheritdoc />
    public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Chat;

    /// <summary>Rough prompt size in tokens (4 characters per token) used to check the context limit up front.</summary>
    public static int EstimateTokens(IEnumerable<ChatMessage> messages) => messages.Sum(m => (m.Content.Length + 3) / 4 + 4);

    /// <inheritdoc />
    public async Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(context);
        var chat = input.Chat ?? throw new InvalidWorkloadInputException("chat input missing");
        if (chat.Messages.Count == 0 || chat.Messages.All(m => string.IsNullOrWhiteSpace(m.Content)))
        {
            throw new InvalidWorkloadInputException("chat needs at least one non-empty message");
        }

        var maxTokens = chat.MaxTokens <= 0 ? DefaultMaxTokens : chat.MaxTokens;
        if (maxTokens > MaxMaxTokens)
        {
            throw new InvalidWorkloadInputException($"max_tokens {maxTokens} is over the limit of {MaxMaxTokens}");
        }

        // A resumed answer (another device streamed its first tokens, then died): continue after its text, numbering on.
        var prefix = chat.Resume?.AssistantText ?? "";
        var first = chat.Resume?.NextIndex ?? 0;
        if (first < 0 || first > MaxMaxTokens || System.Text.Encoding.UTF8.GetByteCount(prefix) > MaxResumeTextBytes)
        {
            throw new InvalidWorkloadInputException($"resume.next_index must be 0…{MaxMaxTokens} and resume.assistant_text at most {MaxResumeTextBytes} bytes");
        }

        var contextTokens = chat.ContextTokens <= 0 ? DefaultContextTokens : Math.Min(chat.ContextTokens, MaxContextTokens);
        var promptTokens = EstimateTokens(chat.Messages);
        if (promptTokens + maxTokens > contextTokens)
        {
            throw new InvalidWorkloadInputException($"prompt (~{promptTokens} tokens) + max_tokens {maxTokens} do not fit the {contextTokens}-token context");
        }

        var text = new System.Text.StringBuilder(prefix);
        var count = first; // completion tokens so far: each resumed frame counts as one
        var index = first; // stream position: one per token frame, without gaps
        var finish = "length";
        if (count < maxTokens)
        {
            var temperature = chat.Temperature is > 0 and <= 2 ? chat.Temperature : 0.7f;
            var request = new ChatRequest(chat.Messages, maxTokens - count, contextTokens, temperature, chat.Stop, chat.HasSeed ? chat.Seed : null, prefix);
            await foreach (var piece in _runtime.StreamAsync(request, cancellationToken))
            {
                var emitted = piece;
                var combined = text + piece;
                var stopAt = StopIndex(combined, chat.Stop, prefix.Length);
                if (stopAt >= 0)
                {
                    var kept = combined[..stopAt];
                    emitted = kept.Length > text.Length ? kept[text.Length..] : "";
                    text.Length = Math.Max(prefix.Length, Math.Min(text.Length, kept.Length));
                    finish = "stop";
                }

                if (emitted.Length > 0)
                {
                    text.Append(emitted);
                    await context.EmitTokenAsync(emitted, index++, cancellationToken);
                }

                count++;
                if (finish == "stop" || count >= maxTokens)
                {
                    break;
                }
            }

            if (count < maxTokens && finish != "stop")
            {
                finish = "stop";
            }
        }

        return new WorkloadOutput
        {
            Chat = new ChatOutput { Text = text.ToString(), PromptTokens = promptTokens, CompletionTokens = count, FinishReason = finish },
        };
    }

    /// <inheritdoc />
    public void Dispose() => _runtime.Dispose();

    // The first stop sequence that ends after the resumed prefix (the device that produced the prefix checked it already).
    private static int StopIndex(string text, IEnumerable<string> stops, int prefixLength)
    {
        var best = -1;
        foreach (var stop in stops.Where(s => s.Length > 0))
        {
            var at = text.IndexOf(stop, Math.Max(0, prefixLength - stop.Length + 1), StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best))
            {
                best = at;
            }
        }

        return best;
    }
}

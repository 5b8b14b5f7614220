using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Chat;

/// <summary>
/// One chat generation request after the handler applied its limits; <paramref name="Seed"/> null = a fresh random seed.
/// <paramref name="AssistantPrefix"/> is the start of the answer already produced (a resumed stream): the runtime
/// generates what follows it, at most <paramref name="MaxTokens"/> more.
/// </summary>
public sealed record ChatRequest(IReadOnlyList<ChatMessage> Messages, int MaxTokens, int ContextTokens, float Temperature, IReadOnlyList<string> Stop, uint? Seed = null, string AssistantPrefix = "");

/// <summary>A text generation backend that yields tokens as they are produced.</summary>
public interface IChatRuntime : IDisposable
{
    /// <summary>Model name reported in results.</summary>
    string ModelName { get; }

    /// <summary>Streams generated text pieces (one per token where the backend allows).</summary>
    IAsyncEnumerable<string> StreamAsync(ChatRequest request, CancellationToken cancellationToken);
}

/// <summary>Plain-text prompt layout for models used without a chat template.</summary>
public static class ChatPrompt
{
    /// <summary>"System: …\nUser: …\nAssistant:" — simple, and the anti-prompt "\nUser:" ends a turn.</summary>
    public static string Format(IReadOnlyList<ChatMessage> messages) => Format(messages, "");

    /// <summary>The prompt layout with the answer so far after "Assistant:", so the model continues it.</summary>
    public static string Format(IReadOnlyList<ChatMessage> messages, string assistantPrefix)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var builder = new System.Text.StringBuilder();
        foreach (var message in messages)
        {
            builder.Append(Role(message.Role)).Append(": ").Append(message.Content).Append('\n');
        }

        return builder.Append("Assistant:").Append(assistantPrefix).ToString();
    }

    /// <summary>The OpenAI role name.</summary>
    public static string OpenAiRole(ChatRole role) => role switch
    {
        ChatRole.System => "system",
        ChatRole.Assistant => "assistant",
        _ => "user",
    };

    private static string Role(ChatRole role) => role switch
    {
        ChatRole.System => "System",
        ChatRole.Assistant => "Assistant",
        _ => "User",
    };
}

using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MeshAI.Agent.Chat;

/// <summary>
/// Streams from an existing local OpenAI-compatible server (llama.cpp <c>llama-server</c>, Ollama's <c>/v1</c>):
/// POST <c>/v1/chat/completions</c> with <c>stream: true</c>, reading the server-sent events' <c>delta.content</c>.
/// </summary>
public sealed class OpenAiCompatibleRuntime : IChatRuntime
{
    private readonly HttpClient _http;
    private readonly Uri _endpoint;

    /// <summary>Creates the runtime for <paramref name="baseUrl"/> (with or without the trailing <c>/v1</c>).</summary>
    public OpenAiCompatibleRuntime(string baseUrl, string? model, HttpMessageHandler? handler = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(baseUrl);
        var trimmed = baseUrl.TrimEnd('/');
        _endpoint = new Uri(trimmed.EndsWith("/v1", StringComparison.Ordinal) ? trimmed + "/chat/completions" : trimmed + "/v1/chat/completions");
        ModelName = string.IsNullOrEmpty(model) ? "default" : model;
        _http = handler is null ? new HttpClient { Timeout = Timeout.InfiniteTimeSpan } : new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <inheritdoc />
    public string ModelName { get; }

    /// <inheritdoc />
    public async IAsyncEnumerable<string> StreamAsync(ChatRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = new JsonObject
        {
            ["model"] = ModelName,
            ["stream"] = true,
            ["max_tokens"] = request.MaxTokens,
            ["temperature"] = request.Temperature,
            ["messages"] = new JsonArray(request.Messages.Select(m => (JsonNode)new JsonObject { ["role"] = ChatPrompt.OpenAiRole(m.Role), ["content"] = m.Content }).ToArray()),
        };
        if (request.Seed is { } seed)
        {
            body["seed"] = seed;
        }

        if (request.AssistantPrefix.Length > 0)
        {
            // A resumed answer: a final assistant message is continued (prefilled) by llama.cpp's llama-server and Ollama.
            ((JsonArray)body["messages"]!).Add(new JsonObject { ["role"] = "assistant", ["content"] = request.AssistantPrefix });
        }

        if (request.Stop.Count > 0)
        {
            body["stop"] = new JsonArray(request.Stop.Select(s => (JsonNode)JsonValue.Create(s)).ToArray());
        }

        using var message = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            throw new InvalidOperationException($"OpenAI-compatible server at {_endpoint} answered {(int)response.StatusCode}: {text[..Math.Min(text.Length, 300)]}");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (!line.StartsWith("data:", StringComparison.Ordinal))
            {
                continue;
            }

            var data = line[5..].Trim();
            if (data == "[DONE]")
            {
                yield break;
            }

            var content = DeltaContent(data);
            if (!string.IsNullOrEmpty(content))
            {
                yield return content;
            }
        }
    }

    /// <summary>The <c>choices[0].delta.content</c> of one SSE data payload (null when absent).</summary>
    public static string? DeltaContent(string data)
    {
        try
        {
            using var doc = JsonDocument.Parse(data);
            if (doc.RootElement.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0 &&
                choices[0].TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
            {
                return content.GetString();
            }
        }
        catch (JsonException)
        {
            // A malformed event is skipped; the stream goes on.
        }

        return null;
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();
}

using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MeshAI.Testing;

/// <summary>
/// The one fake OpenAI-compatible chat server of the tests (an agent's <c>--chat-openai-url</c>): answers every POST
/// /v1/chat/completions with server-sent events, one fixed token per interval. A request whose last message is an
/// assistant message is continued the way llama.cpp's llama-server and Ollama do: the rest of the answer after that
/// prefix (400 when the prefix is not a start of the answer; chat resume, docs/chat-resume.md); <see cref="Prefixes"/>
/// records each request's prefix. With <c>holdAfter</c> it sends that many tokens and then waits until someone calls
/// <see cref="Release"/> (or GET /release on it): a client that must see tokens before the answer ends can prove it without
/// any timing — the rest of the answer does not exist until it has.
/// </summary>
public sealed class OpenAiUpstream : IDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly IReadOnlyList<string> _tokens;
    private readonly TimeSpan _interval;
    private readonly object _gate = new();
    private readonly List<string> _prefixes = [];
    private TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private OpenAiUpstream(TcpListener listener, IReadOnlyList<string> tokens, TimeSpan interval, int? holdAfter)
    {
        _listener = listener;
        _tokens = tokens;
        _interval = interval;
        HoldAfter = holdAfter;
    }

    /// <summary>When set, each answer stops after this many tokens until <see cref="Release"/> (read when a request arrives).</summary>
    public int? HoldAfter { get; set; }

    /// <summary>Base URL (give it to the agent as --chat-openai-url).</summary>
    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>The request bodies received, in order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>The assistant prefix of every chat request, in order ("" for a fresh answer).</summary>
    public IReadOnlyList<string> Prefixes
    {
        get
        {
            lock (_prefixes)
            {
                return [.. _prefixes];
            }
        }
    }

    /// <summary>The tokens each answer streams.</summary>
    public IReadOnlyList<string> Tokens => _tokens;

    /// <summary>Starts listening on a free loopback port.</summary>
    public static OpenAiUpstream Start(IReadOnlyList<string> tokens, TimeSpan interval, int? holdAfter = null)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var upstream = new OpenAiUpstream(listener, tokens, interval, holdAfter);
        _ = upstream.AcceptLoopAsync();
        return upstream;
    }

    /// <summary>Lets every held answer (and the next ones, until the next hold) go on.</summary>
    public void Release()
    {
        lock (_gate)
        {
            _release.TrySetResult();
            _release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stop.Cancel();
        Release();
        _listener.Stop();
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = ServeAsync(client);
        }
    }

    /// <summary>
    /// Where the answer continues: 0 for a fresh request, the number of tokens an assistant-message prefix covers, -1 when
    /// the prefix is not a start of the answer. Records the prefix.
    /// </summary>
    private int ContinueFrom(string body)
    {
        var prefix = "";
        try
        {
            if (JsonNode.Parse(body)?["messages"] is JsonArray { Count: > 0 } messages && messages[^1] is { } last && (string?)last["role"] == "assistant")
            {
                prefix = (string?)last["content"] ?? "";
            }
        }
        catch (JsonException)
        {
            // Not JSON: answered like a fresh request (the agent under test decides what it sends).
        }

        lock (_prefixes)
        {
            _prefixes.Add(prefix);
        }

        return Enumerable.Range(0, _tokens.Count + 1).FirstOrDefault(k => string.Concat(_tokens.Take(k)) == prefix, -1);
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var reader = new StreamReader(stream, Encoding.UTF8);
                var requestLine = await reader.ReadLineAsync(_stop.Token) ?? "";
                var contentLength = 0;
                string? line;
                while (!string.IsNullOrEmpty(line = await reader.ReadLineAsync(_stop.Token)))
                {
                    if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                    {
                        contentLength = int.Parse(line[15..].Trim(), CultureInfo.InvariantCulture);
                    }
                }

                if (requestLine.StartsWith("GET /release", StringComparison.Ordinal))
                {
                    Release();
                    await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nreleased\n"u8.ToArray(), _stop.Token);
                    return;
                }

                var body = new char[contentLength];
                var read = 0;
                while (read < contentLength && await reader.ReadAsync(body.AsMemory(read), _stop.Token) is var n and > 0)
                {
                    read += n;
                }

                var text = new string(body, 0, read);
                Requests.Enqueue(text);
                var from = ContinueFrom(text);
                if (from < 0)
                {
                    await stream.WriteAsync("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), _stop.Token);
                    return;
                }

                Task released;
                var holdAfter = HoldAfter;
                lock (_gate)
                {
                    released = _release.Task;
                }

                await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"u8.ToArray(), _stop.Token);
                for (var i = from; i < _tokens.Count; i++)
                {
                    if (i == holdAfter)
                    {
                        await released.WaitAsync(_stop.Token);
                    }

                    var chunk = JsonSerializer.Serialize(new { id = "chatcmpl-upstream", @object = "chat.completion.chunk", choices = new[] { new { index = 0, delta = new { content = _tokens[i] } } } });
                    await stream.WriteAsync(Encoding.UTF8.GetBytes("data: " + chunk + "\n\n"), _stop.Token);
                    await stream.FlushAsync(_stop.Token);
                    await Task.Delay(_interval, _stop.Token);
                }

                await stream.WriteAsync("data: [DONE]\n\n"u8.ToArray(), _stop.Token);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // The agent hung up (max tokens reached or the job was cancelled), or the upstream is stopping.
            }
        }
    }
}

using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// A tiny OpenAI-compatible chat server: streams a fixed answer as server-sent events, one piece per interval. A request
/// whose last message is an assistant message is continued the way llama.cpp's llama-server and Ollama do: the rest of
/// the answer after that prefix (400 when the prefix is not a start of the answer). Records every request's prefix.
/// </summary>
internal sealed class SseChatUpstream : IDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _prefixes = [];

    private SseChatUpstream(TcpListener listener) => _listener = listener;

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>The assistant prefix of every request, in order ("" for a fresh answer).</summary>
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

    public static SseChatUpstream Start(IReadOnlyList<string> answer, TimeSpan interval)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var server = new SseChatUpstream(listener);
        _ = server.AcceptLoopAsync(answer, interval);
        return server;
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync(IReadOnlyList<string> answer, TimeSpan interval)
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

            _ = ServeAsync(client, answer, interval);
        }
    }

    private async Task ServeAsync(TcpClient client, IReadOnlyList<string> answer, TimeSpan interval)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var reader = new StreamReader(stream, Encoding.UTF8);
                var contentLength = 0;
                string? line;
                while (!string.IsNullOrEmpty(line = await reader.ReadLineAsync(_stop.Token)))
                {
                    if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                    {
                        contentLength = int.Parse(line[15..].Trim(), CultureInfo.InvariantCulture);
                    }
                }

                var body = new char[contentLength];
                var read = 0;
                while (read < contentLength && await reader.ReadAsync(body.AsMemory(read), _stop.Token) is var n and > 0)
                {
                    read += n;
                }

                var messages = JsonNode.Parse(new string(body, 0, read))!["messages"]!.AsArray();
                var last = messages[^1]!;
                var prefix = (string?)last["role"] == "assistant" ? (string)last["content"]! : "";
                lock (_prefixes)
                {
                    _prefixes.Add(prefix);
                }

                var from = Enumerable.Range(0, answer.Count + 1).FirstOrDefault(k => string.Concat(answer.Take(k)) == prefix, -1);
                if (from < 0)
                {
                    await stream.WriteAsync(Encoding.UTF8.GetBytes("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), _stop.Token);
                    return;
                }

                await stream.WriteAsync(Encoding.UTF8.GetBytes("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"), _stop.Token);
                foreach (var piece in answer.Skip(from))
                {
                    var chunk = JsonSerializer.Serialize(new { id = "chatcmpl-1", @object = "chat.completion.chunk", choices = new[] { new { index = 0, delta = new { content = piece } } } });
                    await stream.WriteAsync(Encoding.UTF8.GetBytes("data: " + chunk + "\n\n"), _stop.Token);
                    await stream.FlushAsync(_stop.Token);
                    await Task.Delay(interval, _stop.Token);
                }

                await stream.WriteAsync(Encoding.UTF8.GetBytes("data: [DONE]\n\n"), _stop.Token);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException)
            {
                // The agent hung up (killed, max tokens reached or the job was cancelled).
            }
        }
    }
}

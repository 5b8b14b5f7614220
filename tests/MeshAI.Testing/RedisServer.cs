using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MeshAI.Testing;

/// <summary>
/// A throwaway redis-server on a free loopback port (no persistence, not daemonized), killed on dispose.
/// Prefer <see cref="SharedInfrastructure.Redis"/>; give keys and channels a per-test prefix when sharing it.
/// </summary>
public sealed class RedisServer : IDisposable, IAsyncDisposable
{
    private const string Prefix = "meshai-redis";
    private const string ServerPidFile = "redis.pid";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private ProcessRunner _process;
    private int _disposed;

    private RedisServer(ProcessRunner process, string directory, int port)
    {
        _process = process;
        Directory = directory;
        Port = port;
    }

    /// <summary>Loopback TCP port the server listens on.</summary>
    public int Port { get; }

    /// <summary>StackExchange.Redis connection string, "127.0.0.1:port".</summary>
    public string ConnectionString => "127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture);

    /// <summary>Scratch working directory of the server.</summary>
    public string Directory { get; }

    /// <summary>The running redis-server process (its output is captured).</summary>
    public ProcessRunner Process => _process;

    /// <summary>Starts redis-server and waits until it answers PING; throws with a clear message when it is not installed.</summary>
    public static async Task<RedisServer> StartAsync(CancellationToken cancellationToken = default)
    {
        var exe = FindRedisServer() ?? throw new InvalidOperationException(
            "redis-server not found (looked at MESHAI_REDIS_SERVER, /usr/bin/redis-server and PATH). " +
            "Run ./test.sh from the repository root once: it installs the redis-server apt package.");

        ScratchDirectory.ReapStale(Prefix, KillLeftover);

        for (var attempt = 1; ; attempt++)
        {
            var dir = ScratchDirectory.Create(Prefix);
            var port = FreePort.Next();
            var runner = StartProcess(exe, dir, port);
            await File.WriteAllTextAsync(
                Path.Combine(dir, ServerPidFile), runner.Id.ToString(CultureInfo.InvariantCulture), cancellationToken).ConfigureAwait(false);
            var server = new RedisServer(runner, dir, port);
            try
            {
                await server.WaitForPingAsync(cancellationToken).ConfigureAwait(false);
                return server;
            }
            catch (InvalidOperationException) when (attempt < 5 && runner.Output.Contains("in use", StringComparison.OrdinalIgnoreCase))
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
            catch
            {
                await server.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    /// <summary>
    /// Kills the server and starts a new one on the same port and directory (an outage: every key and subscription is gone,
    /// clients must reconnect); returns once it answers PING again.
    /// </summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        await _process.DisposeAsync().ConfigureAwait(false);
        _process = StartProcess(FindRedisServer()!, Directory, Port);
        await File.WriteAllTextAsync(Path.Combine(Directory, ServerPidFile), _process.Id.ToString(CultureInfo.InvariantCulture), cancellationToken).ConfigureAwait(false);
        await WaitForPingAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Kills the server and deletes its directory.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _process.Dispose();
        ScratchDirectory.TryDelete(Directory);
    }

    /// <summary>Kills the server and deletes its directory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _process.DisposeAsync().ConfigureAwait(false);
        ScratchDirectory.TryDelete(Directory);
    }

    /// <inheritdoc />
    public override string ToString() => $"redis-server on {ConnectionString}";

    private static ProcessRunner StartProcess(string exe, string dir, int port) => ProcessRunner.Start(new ProcessRunnerOptions
    {
        FileName = exe,
        Arguments =
        [
            "--port", port.ToString(CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1",
            "--save", string.Empty,
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", dir,
            "--loglevel", "notice",
        ],
        WorkingDirectory = dir,
        Name = $"redis-server:{port}",
    });

    private static string? FindRedisServer()
    {
        if (Environment.GetEnvironmentVariable("MESHAI_REDIS_SERVER") is { Length: > 0 } fromEnv && File.Exists(fromEnv))
        {
            return fromEnv;
        }

        if (File.Exists("/usr/bin/redis-server"))
        {
            return "/usr/bin/redis-server";
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        return path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "redis-server"))
            .FirstOrDefault(File.Exists);
    }

    private static void KillLeftover(string dir)
    {
        var pid = ScratchDirectory.ReadPid(Path.Combine(dir, ServerPidFile));
        if (pid is null || !ScratchDirectory.ProcessAlive(pid.Value))
        {
            return;
        }

        using var process = System.Diagnostics.Process.GetProcessById(pid.Value);
        if (process.ProcessName.Contains("redis", StringComparison.Ordinal))
        {
            process.Kill(entireProcessTree: true);
        }
    }

    private async Task WaitForPingAsync(CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + StartTimeout;
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException(
                    $"redis-server exited with code {_process.ExitCode} during startup.{Environment.NewLine}{_process.OutputTail()}");
            }

            if (await TryPingAsync(cancellationToken).ConfigureAwait(false))
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException(
                    $"redis-server did not answer PING on {ConnectionString} within {StartTimeout}.{Environment.NewLine}{_process.OutputTail()}");
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<bool> TryPingAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            await client.ConnectAsync(IPAddress.Loopback, Port, timeout.Token).ConfigureAwait(false);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), timeout.Token).ConfigureAwait(false);
            var buffer = new byte[64];
            var read = await stream.ReadAsync(buffer, timeout.Token).ConfigureAwait(false);
            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using NUnit.Framework;

namespace MeshAI.Testing;

/// <summary>One line of output captured from a child process.</summary>
/// <param name="Index">Zero-based position of the line in the combined stdout+stderr stream.</param>
/// <param name="Timestamp">When the line was read.</param>
/// <param name="IsStandardError">True when the line came from stderr.</param>
/// <param name="Text">The line without its newline.</param>
public sealed record ProcessOutputLine(int Index, DateTimeOffset Timestamp, bool IsStandardError, string Text)
{
    /// <summary>Formats the line as "out| text" or "err| text".</summary>
    public override string ToString() => (IsStandardError ? "err| " : "out| ") + Text;
}

/// <summary>How to start a child process with <see cref="ProcessRunner.Start(ProcessRunnerOptions)"/>.</summary>
public sealed class ProcessRunnerOptions
{
    /// <summary>Executable to run (absolute path or a name found on PATH).</summary>
    public required string FileName { get; init; }

    /// <summary>Arguments, passed verbatim (no shell quoting involved).</summary>
    public IReadOnlyList<string> Arguments { get; init; } = [];

    /// <summary>Working directory; null keeps the current directory.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Environment overrides applied on top of the current environment; a null value removes the variable.</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }

    /// <summary>Short label used in error messages and echoed output; defaults to the executable name.</summary>
    public string? Name { get; init; }

    /// <summary>Redirect stdin so the test can write to <see cref="ProcessRunner.StandardInput"/>.</summary>
    public bool RedirectStandardInput { get; init; }

    /// <summary>Callback invoked (on a background thread) for every captured line.</summary>
    public Action<ProcessOutputLine>? OnLine { get; init; }

    /// <summary>Echo every line to NUnit's TestContext.Progress; also enabled by env MESHAI_TEST_ECHO=1.</summary>
    public bool EchoToTestProgress { get; init; }

    /// <summary>Oldest lines are dropped beyond this many buffered lines (indexes stay absolute).</summary>
    public int MaxBufferedLines { get; init; } = 200_000;
}

/// <summary>
/// Runs a child process for a test: captures stdout/stderr lines into a thread-safe buffer, lets the test
/// wait for a line matching a predicate, and kills the whole process tree on dispose (and at process exit).
/// </summary>
/// <example>
/// <code>
/// await using var server = ProcessRunner.Start(new ProcessRunnerOptions
/// {
///     FileName = ProcessRunner.DotnetHostPath,
///     Arguments = [RepoPaths.BuiltAssembly("services/MeshAI.Server", "MeshAI.Server"), "--urls", $"http://127.0.0.1:{port}"],
///     Environment = new Dictionary&lt;string, string?&gt; { ["ConnectionStrings__Postgres"] = pgConnectionString },
///     Name = "server",
/// });
/// await server.WaitForLineAsync(l => l.Contains("Now listening on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
/// </code>
/// </example>
public sealed class ProcessRunner : IDisposable, IAsyncDisposable
{
    private const int SigInt = 2;
    private const int SigTerm = 15;
    private static readonly ConcurrentDictionary<ProcessRunner, byte> Live = new();
    private static readonly TimeSpan DrainGrace = TimeSpan.FromSeconds(2);

    private readonly object _gate = new();
    private readonly Process _process;
    private readonly ProcessRunnerOptions _options;
    private readonly bool _echo;
    private readonly List<ProcessOutputLine> _lines = [];
    private readonly List<Waiter> _waiters = [];
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int> _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _nextIndex;
    private int _disposed;

    static ProcessRunner()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var runner in Live.Keys)
            {
                runner.Kill();
            }
        };
    }

    private ProcessRunner(ProcessRunnerOptions options)
    {
        _options = options;
        Name = options.Name ?? Path.GetFileNameWithoutExtension(options.FileName);
        _echo = options.EchoToTestProgress
            || string.Equals(System.Environment.GetEnvironmentVariable("MESHAI_TEST_ECHO"), "1", StringComparison.Ordinal);

        var psi = new ProcessStartInfo
        {
            FileName = options.FileName,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = options.RedirectStandardInput,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            CreateNoWindow = true,
        };
        foreach (var arg in options.Arguments)
        {
            psi.ArgumentList.Add(arg);
        }

        if (options.WorkingDirectory is not null)
        {
            psi.WorkingDirectory = options.WorkingDirectory;
        }

        if (options.Environment is not null)
        {
            foreach (var (key, value) in options.Environment)
            {
                if (value is null)
                {
                    psi.Environment.Remove(key);
                }
                else
                {
                    psi.Environment[key] = value;
                }
            }
        }

        _process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnData(e.Data, isError: false);
        _process.ErrorDataReceived += (_, e) => OnData(e.Data, isError: true);
        _process.Exited += (_, _) => OnExited();
    }

    /// <summary>Label given in the options (or the executable name).</summary>
    public string Name { get; }

    /// <summary>OS process id of the started process.</summary>
    public int Id { get; private set; }

    /// <summary>True once the process has exited.</summary>
    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>Exit code once the process has exited, otherwise null.</summary>
    public int? ExitCode => _exited.Task.IsCompletedSuccessfully ? _exited.Task.Result : null;

    /// <summary>Writer for the child's stdin; only when <see cref="ProcessRunnerOptions.RedirectStandardInput"/> is set.</summary>
    public StreamWriter StandardInput => _options.RedirectStandardInput
        ? _process.StandardInput
        : throw new InvalidOperationException($"{Name}: stdin was not redirected (set RedirectStandardInput).");

    /// <summary>Total number of lines captured so far (the index the next line will get).</summary>
    public int LineCount
    {
        get
        {
            lock (_gate)
            {
                return _nextIndex;
            }
        }
    }

    /// <summary>Snapshot of the buffered lines (stdout and stderr interleaved in arrival order).</summary>
    public IReadOnlyList<ProcessOutputLine> Lines
    {
        get
        {
            lock (_gate)
            {
                return _lines.ToArray();
            }
        }
    }

    /// <summary>All buffered stdout and stderr text, one line per captured line.</summary>
    public string Output => string.Join('\n', Lines.Select(l => l.Text));

    /// <summary>Buffered stdout text only.</summary>
    public string StandardOutputText => string.Join('\n', Lines.Where(l => !l.IsStandardError).Select(l => l.Text));

    /// <summary>Buffered stderr text only.</summary>
    public string StandardErrorText => string.Join('\n', Lines.Where(l => l.IsStandardError).Select(l => l.Text));

    /// <summary>Path of the dotnet host running this test (use it to launch built .NET apps as "dotnet app.dll").</summary>
    public static string DotnetHostPath
    {
        get
        {
            var fromSdk = System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
            if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk))
            {
                return fromSdk;
            }

            var self = System.Environment.ProcessPath;
            if (self is not null && Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.Ordinal))
            {
                return self;
            }

            var root = System.Environment.GetEnvironmentVariable("DOTNET_ROOT");
            if (!string.IsNullOrEmpty(root) && File.Exists(Path.Combine(root, "dotnet")))
            {
                return Path.Combine(root, "dotnet");
            }

            return "dotnet";
        }
    }

    /// <summary>Starts a process with the given options; throws if it cannot be started.</summary>
    public static ProcessRunner Start(ProcessRunnerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var runner = new ProcessRunner(options);
        runner.StartCore();
        return runner;
    }

    /// <summary>Starts an executable with arguments and default options.</summary>
    public static ProcessRunner Start(string fileName, params string[] arguments) =>
        Start(new ProcessRunnerOptions { FileName = fileName, Arguments = arguments });

    /// <summary>Runs a process to completion and returns it (exited, output captured); throws on timeout.</summary>
    public static async Task<ProcessRunner> RunAsync(ProcessRunnerOptions options, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var runner = Start(options);
        try
        {
            await runner.WaitForExitAsync(timeout, cancellationToken).ConfigureAwait(false);
            return runner;
        }
        catch
        {
            await runner.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Waits for the first line (at or after <paramref name="fromIndex"/>) that satisfies the predicate.</summary>
    /// <exception cref="TimeoutException">No matching line within the timeout; the message carries the output tail.</exception>
    /// <exception cref="InvalidOperationException">The process exited without printing a matching line.</exception>
    public Task<ProcessOutputLine> WaitForLineAsync(
        Func<string, bool> predicate,
        TimeSpan timeout,
        int fromIndex = 0,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        Waiter waiter;
        lock (_gate)
        {
            foreach (var line in _lines)
            {
                if (line.Index >= fromIndex && predicate(line.Text))
                {
                    return Task.FromResult(line);
                }
            }

            if (_completed.Task.IsCompleted)
            {
                return Task.FromException<ProcessOutputLine>(ExitedBeforeMatch());
            }

            waiter = new Waiter(predicate, fromIndex);
            _waiters.Add(waiter);
        }

        return AwaitWaiterAsync(waiter, timeout, cancellationToken);
    }

    /// <summary>Waits for the first line containing <paramref name="text"/> (ordinal comparison).</summary>
    public Task<ProcessOutputLine> WaitForLineAsync(string text, TimeSpan timeout, int fromIndex = 0, CancellationToken cancellationToken = default) =>
        WaitForLineAsync(l => l.Contains(text, StringComparison.Ordinal), timeout, fromIndex, cancellationToken);

    /// <summary>Waits for the process to exit and its output to be drained; returns the exit code.</summary>
    /// <exception cref="TimeoutException">Still running after the timeout (the process is left running).</exception>
    public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            return await _completed.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Name} (pid {Id}) did not exit within {timeout}.{Environment.NewLine}{OutputTail()}");
        }
    }

    /// <summary>Sends SIGTERM (graceful shutdown request) to the process.</summary>
    public void Terminate() => Signal(SigTerm);

    /// <summary>Sends SIGINT (like Ctrl+C) to the process.</summary>
    public void Interrupt() => Signal(SigInt);

    /// <summary>Sends SIGTERM, waits up to <paramref name="grace"/> for exit, then kills the tree; returns the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan grace)
    {
        if (!HasExited)
        {
            Terminate();
            try
            {
                await _exited.Task.WaitAsync(grace).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                Kill();
            }
        }

        return await _completed.Task.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
    }

    /// <summary>Kills the process and all of its descendants immediately (no-op if already exited).</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Not started or already gone.
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Raced with exit.
        }
    }

    /// <summary>The last <paramref name="count"/> captured lines, formatted for error messages.</summary>
    public string OutputTail(int count = 60)
    {
        ProcessOutputLine[] tail;
        lock (_gate)
        {
            tail = _lines.Skip(Math.Max(0, _lines.Count - count)).ToArray();
        }

        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"--- last {tail.Length} line(s) of {Name} output ---");
        foreach (var line in tail)
        {
            sb.Append('\n').Append(line);
        }

        return sb.ToString();
    }

    /// <summary>Kills the process tree if still running and releases the process handle.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Kill();
        try
        {
            _completed.Task.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
            // Best effort.
        }

        Live.TryRemove(this, out _);
        _process.Dispose();
    }

    /// <summary>Kills the process tree if still running and releases the process handle.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Kill();
        try
        {
            await _completed.Task.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Best effort.
        }

        Live.TryRemove(this, out _);
        _process.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} (pid {Id})";

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int NativeKill(int pid, int sig);

    private void Signal(int signal)
    {
        if (HasExited || Id == 0)
        {
            return;
        }

        if (OperatingSystem.IsWindows())
        {
            Kill();
            return;
        }

        _ = NativeKill(Id, signal);
    }

    private void StartCore()
    {
        try
        {
            _process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException(
                $"Could not start {_options.FileName} {string.Join(' ', _options.Arguments)}: {ex.Message}", ex);
        }

        Id = _process.Id;
        Live.TryAdd(this, 0);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        // A very short-lived process may be gone already; OnExited is idempotent.
        if (_process.HasExited)
        {
            OnExited();
        }
    }

    private void OnData(string? data, bool isError)
    {
        if (data is null)
        {
            (isError ? _stderrClosed : _stdoutClosed).TrySetResult();
            return;
        }

        ProcessOutputLine line;
        List<(Waiter Waiter, Exception? Error)>? done = null;
        lock (_gate)
        {
            line = new ProcessOutputLine(_nextIndex++, DateTimeOffset.UtcNow, isError, data);
            _lines.Add(line);
            if (_lines.Count > _options.MaxBufferedLines)
            {
                var drop = Math.Max(1, _options.MaxBufferedLines / 10);
                _lines.RemoveRange(0, drop);
            }

            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                var waiter = _waiters[i];
                if (line.Index < waiter.FromIndex)
                {
                    continue;
                }

                try
                {
                    if (waiter.Predicate(data))
                    {
                        _waiters.RemoveAt(i);
                        (done ??= []).Add((waiter, null));
                    }
                }
                catch (Exception ex)
                {
                    _waiters.RemoveAt(i);
                    (done ??= []).Add((waiter, ex));
                }
            }
        }

        if (done is not null)
        {
            foreach (var (waiter, error) in done)
            {
                if (error is null)
                {
                    waiter.Completion.TrySetResult(line);
                }
                else
                {
                    waiter.Completion.TrySetException(error);
                }
            }
        }

        if (_echo)
        {
            TestContext.Progress.WriteLine($"[{Name}] {line}");
        }

        try
        {
            _options.OnLine?.Invoke(line);
        }
        catch (Exception ex)
        {
            // An exception escaping this event handler would take the whole test host down.
            TestContext.Progress.WriteLine($"[{Name}] OnLine callback threw: {ex}");
        }
    }

    private void OnExited()
    {
        int code;
        try
        {
            code = _process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            return;
        }

        if (!_exited.TrySetResult(code))
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                await Task.WhenAll(_stdoutClosed.Task, _stderrClosed.Task).WaitAsync(DrainGrace).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // A grandchild may still hold the pipes open; do not wait for it.
            }

            Waiter[] pending;
            lock (_gate)
            {
                _completed.TrySetResult(code);
                pending = _waiters.ToArray();
                _waiters.Clear();
            }

            foreach (var waiter in pending)
            {
                waiter.Completion.TrySetException(ExitedBeforeMatch());
            }

            Live.TryRemove(this, out _);
        });
    }

    private InvalidOperationException ExitedBeforeMatch() =>
        new($"{Name} (pid {Id}) exited with code {ExitCode} before printing the expected line.{Environment.NewLine}{OutputTail()}");

    private async Task<ProcessOutputLine> AwaitWaiterAsync(Waiter waiter, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            return await waiter.Completion.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            lock (_gate)
            {
                _waiters.Remove(waiter);
            }

            var state = HasExited ? $"exited with code {ExitCode}" : "still running";
            throw new TimeoutException(
                $"{Name} (pid {Id}, {state}) printed no matching line within {timeout}.{Environment.NewLine}{OutputTail()}");
        }
        catch (OperationCanceledException)
        {
            lock (_gate)
            {
                _waiters.Remove(waiter);
            }

            throw;
        }
    }

    private sealed class Waiter(Func<string, bool> predicate, int fromIndex)
    {
        public Func<string, bool> Predicate { get; } = predicate;

        public int FromIndex { get; } = fromIndex;

        public TaskCompletionSource<ProcessOutputLine> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

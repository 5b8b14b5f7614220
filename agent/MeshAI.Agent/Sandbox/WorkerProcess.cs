using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using MeshAI.Agent.Sandbox.V1;
using MeshAI.Agent.Workloads;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Sandbox;

/// <summary>The worker's process ended (crash, OOM kill, signal) while it held a job.</summary>
public sealed class WorkerCrashedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WorkerCrashedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public WorkerCrashedException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public WorkerCrashedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The handler inside the worker failed the job (the worker itself is fine and is reused).</summary>
public sealed class WorkerJobFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WorkerJobFailedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public WorkerJobFailedException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public WorkerJobFailedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// One sandbox worker process as the agent sees it: started with a restricted working directory and an
/// address-space cap, fed one job at a time over stdin, read back over stdout, killed on cancel or timeout.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private const int StderrTailLines = 20;
    private readonly Process _process;
    private readonly Stream _frames;
    private readonly ConcurrentQueue<string> _stderrTail = new();
    private bool _broken;

    private WorkerProcess(Process process, WorkloadClass workload, string workDirectory)
    {
        _process = process;
        _frames = FrameIo.Buffered(process.StandardOutput.BaseStream);
        Workload = workload;
        WorkDirectory = workDirectory;
    }

    /// <summary>The worker's process id.</summary>
    public int Pid => _process.Id;

    /// <summary>The workload class it serves.</summary>
    public WorkloadClass Workload { get; }

    /// <summary>Its restricted working directory.</summary>
    public string WorkDirectory { get; }

    /// <summary>True while the process runs and its pipe is in a known state.</summary>
    public bool IsReusable => !_broken && !_process.HasExited;

    /// <summary>The worker-mode name of a class, as <c>--class</c> takes it.</summary>
    public static string ClassName(WorkloadClass workload) => workload switch
    {
        WorkloadClass.Embeddings => "embeddings",
        WorkloadClass.OcrPreprocess => "ocr_preprocess",
        WorkloadClass.SmallChat => "small_chat",
        WorkloadClass.AudioTranscribeChunked => "audio_transcribe_chunked",
        WorkloadClass.BatchJobsEvalOrSynth => "batch_jobs_eval_or_synth",
        WorkloadClass.DiagnosticEcho => "diagnostic_echo",
        _ => workload.ToString().ToLowerInvariant(),
    };

    /// <summary>Starts a worker for <paramref name="workload"/> and waits until it says it is ready.</summary>
    public static async Task<WorkerProcess> StartAsync(WorkloadClass workload, SandboxOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var className = ClassName(workload);
        var workDirectory = Path.Combine(options.Root, className, "work-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(workDirectory);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(workDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var (self, prefix) = options.Command ?? SandboxOptions.SelfCommand();
        var info = new ProcessStartInfo
        {
            WorkingDirectory = workDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var prlimit = options.MemoryLimitMb > 0 && OperatingSystem.IsLinux() ? FindOnPath("prlimit") : null;
        if (prlimit is not null)
        {
            info.FileName = prlimit;
            info.ArgumentList.Add("--as=" + (options.MemoryLimitMb * 1024 * 1024).ToString(CultureInfo.InvariantCulture));
            info.ArgumentList.Add("--");
            info.ArgumentList.Add(self);
        }
        else
        {
            info.FileName = self;
        }

        foreach (var arg in prefix)
        {
            info.ArgumentList.Add(arg);
        }

        info.ArgumentList.Add("worker");
        info.ArgumentList.Add("--class");
        info.ArgumentList.Add(className);
        info.ArgumentList.Add("--work-dir");
        info.ArgumentList.Add(workDirectory);
        foreach (var arg in options.WorkerArguments)
        {
            info.ArgumentList.Add(arg);
        }

        // Scratch files go to the working directory; the GC keeps its reservation inside the address-space cap.
        info.Environment["HOME"] = workDirectory;
        info.Environment["TMPDIR"] = workDirectory;
        info.Environment["MESHAI_WORKER"] = "1";
        if (options.MemoryLimitMb > 0)
        {
            info.Environment["DOTNET_GCHeapHardLimit"] = (options.MemoryLimitMb * 1024 * 1024 / 2).ToString("X", CultureInfo.InvariantCulture);
        }

        var process = Process.Start(info) ?? throw new WorkerCrashedException($"could not start the {className} worker");
        var worker = new WorkerProcess(process, workload, workDirectory);
        process.ErrorDataReceived += (_, e) => worker.OnStderr(e.Data);
        process.BeginErrorReadLine();
        using var startCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        startCts.CancelAfter(options.StartTimeout);
        try
        {
            var ready = await FrameIo.ReadAsync(worker._frames, WorkerEvent.Parser, startCts.Token);
            if (ready?.KindCase != WorkerEvent.KindOneofCase.Ready)
            {
                await worker.WaitExitQuietlyAsync();
                throw new WorkerCrashedException($"the {className} worker did not start: {worker.ExitDescription()}{worker.StderrSummary()}");
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or EndOfStreamException or InvalidDataException)
        {
            await worker.DisposeAsync();
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw new WorkerCrashedException($"the {className} worker did not start: {ex.Message}{worker.StderrSummary()}", ex);
        }

        options.Announce?.Invoke($"MESHAI_WORKER_STARTED class={className} pid={process.Id} work_dir={workDirectory}");
        return worker;
    }

    /// <summary>
    /// Runs one job: events are forwarded to <paramref name="context"/>; cancelling kills the worker; a worker that
    /// dies mid-job gives <see cref="WorkerCrashedException"/> naming the exit status and its last stderr lines.
    /// </summary>
    public async Task<WorkloadOutput> RunAsync(WorkerJob job, IJobContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(context);
        _broken = true; // Until the job's last frame is read, the pipe holds a job in flight.
        using var kill = cancellationToken.Register(Kill);
        try
        {
            await FrameIo.WriteAsync(_process.StandardInput.BaseStream, new WorkerRequest { Job = job }, cancellationToken);
            while (true)
            {
                var frame = await FrameIo.ReadAsync(_frames, WorkerEvent.Parser, cancellationToken);
                if (frame is null)
                {
                    break;
                }

                switch (frame.KindCase)
                {
                    case WorkerEvent.KindOneofCase.Progress:
                        await context.ReportProgressAsync(frame.Progress.Fraction, frame.Progress.Message, cancellationToken);
                        break;
                    case WorkerEvent.KindOneofCase.Log:
                        await context.LogAsync(frame.Log.Level, frame.Log.Message, cancellationToken);
                        break;
                    case WorkerEvent.KindOneofCase.Token:
                        await context.EmitTokenAsync(frame.Token.Text, frame.Token.Index, cancellationToken);
                        break;
                    case WorkerEvent.KindOneofCase.Result:
                        _broken = false;
                        return WorkloadOutput.Parser.ParseFrom(frame.Result);
                    case WorkerEvent.KindOneofCase.Failure:
                        _broken = false;
                        throw frame.Failure.InvalidInput
                            ? new InvalidWorkloadInputException(frame.Failure.Error)
                            : new WorkerJobFailedException(frame.Failure.Error);
                    default:
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException or InvalidDataException or ObjectDisposedException)
        {
            cancellationToken.ThrowIfCancellationRequested();
        }

        cancellationToken.ThrowIfCancellationRequested();
        await WaitExitQuietlyAsync();
        cancellationToken.ThrowIfCancellationRequested();
        throw new WorkerCrashedException($"sandbox worker {Pid} ({ClassName(Workload)}) died during the job: {ExitDescription()}{StderrSummary()}");
    }

    /// <summary>Kills the worker (and anything it started).</summary>
    public void Kill()
    {
        _broken = true;
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        Kill();
        await WaitExitQuietlyAsync();
        _process.Dispose();
        try
        {
            Directory.Delete(WorkDirectory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The next agent start removes stale working directories.
        }
    }

    /// <summary>Human description of how the process ended.</summary>
    public string ExitDescription()
    {
        if (!_process.HasExited)
        {
            return "still running";
        }

        var code = _process.ExitCode;
        return code > 128 && code < 128 + 65
            ? $"killed by signal {code - 128}{(code - 128 == 9 ? " (SIGKILL: killed, or over its memory cap)" : code - 128 == 11 ? " (SIGSEGV)" : code - 128 == 6 ? " (SIGABRT)" : "")}"
            : $"exit code {code}";
    }

    private string StderrSummary()
    {
        var lines = _stderrTail.ToArray();
        return lines.Length == 0 ? "" : "; last stderr: " + string.Join(" | ", lines.TakeLast(5));
    }

    private void OnStderr(string? line)
    {
        if (string.IsNullOrWhiteSpace(line))
        {
            return;
        }

        _stderrTail.Enqueue(line.Length > 300 ? line[..300] : line);
        while (_stderrTail.Count > StderrTailLines && _stderrTail.TryDequeue(out _))
        {
        }
    }

    private async Task WaitExitQuietlyAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
        }
    }

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(Path.PathSeparator))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}

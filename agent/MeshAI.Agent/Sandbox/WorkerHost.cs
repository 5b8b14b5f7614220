using Google.Protobuf;
using MeshAI.Agent.Sandbox.V1;
using MeshAI.Agent.Workloads;
using MeshAI.Common.Observability;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Sandbox;

/// <summary>
/// The worker side of the sandbox (<c>meshai-agent worker --class X</c>): announces itself, then runs one job per
/// <see cref="WorkerJob"/> frame with its single handler, streaming progress, logs and tokens back as frames.
/// The agent kills the process to cancel; a clean end of stdin ends the worker.
/// </summary>
public sealed class WorkerHost : IDisposable
{
    private readonly IWorkloadHandler _handler;
    private readonly Stream _input;
    private readonly Stream _output;
    private readonly string _workDirectory;
    private readonly SemaphoreSlim _writeLock = new(1, 1);

    /// <summary>Creates the host over the worker's stdin/stdout.</summary>
    public WorkerHost(IWorkloadHandler handler, Stream input, Stream output, string workDirectory)
    {
        _handler = handler;
        _input = input;
        _output = output;
        _workDirectory = workDirectory;
    }

    /// <summary>
    /// Serves jobs until stdin closes; returns the exit code. Frames are read and written synchronously on one dedicated
    /// thread (the worker runs one job at a time): read(2) wakes it directly, no thread-pool hop per frame (issue #11).
    /// </summary>
    public Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var served = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                served.TrySetResult(Serve(cancellationToken));
            }
            catch (Exception ex)
            {
                served.TrySetException(ex);
            }
        })
        {
            IsBackground = true, // blocked in read(2) when the agent stops the worker: the process ends without it
            Name = "meshai-worker-frames",
        };
        thread.Start();
        return served.Task.WaitAsync(cancellationToken);
    }

    private int Serve(CancellationToken cancellationToken)
    {
        Write(new WorkerEvent { Ready = new WorkerReady { Pid = Environment.ProcessId, WorkloadClass = _handler.Workload } });
        while (!cancellationToken.IsCancellationRequested)
        {
            var request = FrameIo.Read(_input, WorkerRequest.Parser);
            if (request is null)
            {
                return 0;
            }

            if (request.KindCase == WorkerRequest.KindOneofCase.Job)
            {
                RunJobAsync(request.Job, cancellationToken).GetAwaiter().GetResult();
            }
        }

        return 0;
    }

    private async Task RunJobAsync(WorkerJob job, CancellationToken cancellationToken)
    {
        // Tracing hook (#17): the worker's span, child of the agent's span for the job (WorkerJob.traceparent).
        using var span = MeshTelemetry.StartJobSpan("meshai.worker.run", System.Diagnostics.ActivityKind.Internal, "", job.Traceparent);
        span?.SetTag("meshai.workload", _handler.Workload.ToString());
        var context = new WorkerJobContext(this, job);
        WorkerEvent outcome;
        try
        {
            var input = WorkloadInput.Parser.ParseFrom(job.Input);
            var output = await _handler.RunAsync(input, context, cancellationToken);
            outcome = new WorkerEvent { JobId = job.JobId, Result = output.ToByteString() };
        }
        catch (InvalidWorkloadInputException ex)
        {
            outcome = new WorkerEvent { JobId = job.JobId, Failure = new WorkerFailure { Error = ex.Message, InvalidInput = true } };
        }
        catch (InvalidProtocolBufferException ex)
        {
            outcome = new WorkerEvent { JobId = job.JobId, Failure = new WorkerFailure { Error = "payload is not a WorkloadInput: " + ex.Message, InvalidInput = true } };
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            outcome = new WorkerEvent { JobId = job.JobId, Failure = new WorkerFailure { Error = $"{ex.GetType().Name}: {ex.Message}" } };
        }
        finally
        {
            ClearWorkDirectory();
        }

        if (outcome.KindCase == WorkerEvent.KindOneofCase.Failure)
        {
            span?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, outcome.Failure.Error);
        }

        await WriteAsync(outcome, cancellationToken);
    }

    /// <inheritdoc />
    public void Dispose() => _writeLock.Dispose();

    private void ClearWorkDirectory()
    {
        try
        {
            foreach (var entry in new DirectoryInfo(_workDirectory).EnumerateFileSystemInfos())
            {
                if (entry is DirectoryInfo dir)
                {
                    dir.Delete(recursive: true);
                }
                else
                {
                    entry.Delete();
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Scratch files left behind are removed with the next job or when the agent recreates the directory.
        }
    }

    /// <summary>Writes one frame; handlers may report progress from any thread, so writes are serialised.</summary>
    private ValueTask WriteAsync(WorkerEvent frame, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(frame);
        return ValueTask.CompletedTask;
    }

    private void Write(WorkerEvent frame)
    {
        _writeLock.Wait();
        try
        {
            FrameIo.Write(_output, frame);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private sealed class WorkerJobContext(WorkerHost host, WorkerJob job) : IJobContext
    {
        public IReadOnlyList<Blob> Blobs => job.Blobs;

        public IReadOnlyDictionary<string, string> BlobPaths => job.BlobPaths;

        public string WorkDirectory => host._workDirectory;

        public ValueTask ReportProgressAsync(double fraction, string message, CancellationToken cancellationToken) =>
            host.WriteAsync(new WorkerEvent { JobId = job.JobId, Progress = new WorkerProgress { Fraction = fraction, Message = message } }, cancellationToken);

        public ValueTask LogAsync(LogLevel level, string message, CancellationToken cancellationToken) =>
            host.WriteAsync(new WorkerEvent { JobId = job.JobId, Log = new WorkerLog { Level = level, Message = message } }, cancellationToken);

        public ValueTask EmitTokenAsync(string text, int index, CancellationToken cancellationToken) =>
            host.WriteAsync(new WorkerEvent { JobId = job.JobId, Token = new WorkerToken { Text = text, Index = index } }, cancellationToken);
    }
}

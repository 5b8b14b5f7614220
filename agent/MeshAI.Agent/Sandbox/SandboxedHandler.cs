using System.Collections.Concurrent;
using Google.Protobuf;
using MeshAI.Agent.Sandbox.V1;
using MeshAI.Agent.Workloads;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Sandbox;

/// <summary>
/// Runs a workload class in its own worker processes instead of the agent: a small pool per class, each worker
/// reused between jobs while healthy, killed (and replaced on the next job) on cancel, timeout or crash.
/// </summary>
public sealed class SandboxedHandler : IWorkloadHandler, IAsyncDisposable, IDisposable
{
    private readonly SandboxOptions _options;
    private readonly SemaphoreSlim _slots;
    private readonly ConcurrentBag<WorkerProcess> _idle = [];

    /// <summary>Wraps the class served by <paramref name="inner"/> (which only says what it serves; it is not run here).</summary>
    public SandboxedHandler(IWorkloadHandler inner, SandboxOptions options)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(options);
        Workload = inner.Workload;
        InputCase = inner.InputCase;
        _options = options;
        _slots = new SemaphoreSlim(Math.Max(1, options.MaxWorkersPerClass));
    }

    /// <inheritdoc />
    public WorkloadClass Workload { get; }

    /// <inheritdoc />
    public WorkloadInput.InputOneofCase InputCase { get; }

    /// <inheritdoc />
    public async Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(context);
        await _slots.WaitAsync(cancellationToken);
        WorkerProcess? worker = null;
        try
        {
            while (_idle.TryTake(out var candidate))
            {
                if (candidate.IsReusable)
                {
                    worker = candidate;
                    break;
                }

                await candidate.DisposeAsync();
            }

            worker ??= await WorkerProcess.StartAsync(Workload, _options, cancellationToken);
            var job = new WorkerJob { JobId = Guid.NewGuid().ToString("N"), Input = input.ToByteString(), Traceparent = MeshAI.Common.Observability.MeshTelemetry.CurrentTraceParent() };
            job.Blobs.AddRange(context.Blobs);
            foreach (var (name, path) in context.BlobPaths)
            {
                job.BlobPaths[name] = path; // fetched blobs travel as file paths, not bytes
            }
            var output = await worker.RunAsync(job, context, cancellationToken);
            _idle.Add(worker);
            worker = null;
            return output;
        }
        catch (Exception ex) when (ex is InvalidWorkloadInputException or WorkerJobFailedException && worker is { IsReusable: true })
        {
            _idle.Add(worker);
            worker = null;
            throw;
        }
        finally
        {
            if (worker is not null)
            {
                await worker.DisposeAsync();
            }

            _slots.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        while (_idle.TryTake(out var worker))
        {
            await worker.DisposeAsync();
        }

        _slots.Dispose();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        while (_idle.TryTake(out var worker))
        {
            worker.Kill();
        }

        _slots.Dispose();
    }
}

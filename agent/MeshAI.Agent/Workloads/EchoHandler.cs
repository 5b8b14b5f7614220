using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Workloads;

/// <summary>Diagnostic echo: returns its input after the requested delay (health checks, relay latency benchmark); with <c>hash_blob</c>, also the SHA-256 and size of that input blob as read here (the blob path's end-to-end check).</summary>
public sealed class EchoHandler : IWorkloadHandler
{
    /// <summary>Longest delay honoured, whatever the input asks.</summary>
    public const int MaxDelayMs = 600_000;

    /// <inheritdoc />
    public WorkloadClass Workload => WorkloadClass.DiagnosticEcho;

    /// <inheritdoc />
    public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Echo;

    /// <inheritdoc />
    public async Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(context);
        var echo = input.Echo ?? throw new InvalidWorkloadInputException("echo input missing");
        if (echo.DelayMs > 0)
        {
            await context.ReportProgressAsync(0, "waiting " + echo.DelayMs + " ms", cancellationToken);
            await Task.Delay(Math.Min(echo.DelayMs, MaxDelayMs), cancellationToken);
        }

        var output = new EchoOutput { Data = echo.Data };
        if (echo.HashBlob.Length > 0)
        {
            // The blob path's end-to-end check: hash what the worker reads (a fetched blob is streamed from its file).
            await using var blob = context.OpenBlob(echo.HashBlob);
            using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 20);
            try
            {
                int n;
                while ((n = await blob.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    sha.AppendData(buffer, 0, n);
                    output.BlobSizeBytes += n;
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }

            output.BlobSha256 = Convert.ToHexStringLower(sha.GetHashAndReset());
        }

        return new WorkloadOutput { Echo = output };
    }
}

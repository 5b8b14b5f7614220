using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Workloads;

/// <summary>Diagnostic echo: returns its input after the requested delay (health checks, relay latency benchmark).</summary>
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

        return new WorkloadOutput { Echo = new EchoOutput { Data = echo.Data } };
    }
}

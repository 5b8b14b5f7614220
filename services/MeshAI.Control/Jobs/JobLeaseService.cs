using MeshAI.Control.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Jobs;

/// <summary>
/// Keeps this instance's jobs leased and carries on the jobs of instances that stopped: at start it resumes its unfinished
/// jobs (the embedded store has one owner: all of them; PostgreSQL: those whose lease expired), then renews its leases every
/// <see cref="JobPlaneOptions.LeaseRenewIntervalMs"/> and claims expired ones every <see cref="JobPlaneOptions.ClaimIntervalMs"/>.
/// Stopping awaits every running execution.
/// </summary>
public sealed partial class JobLeaseService(JobRunner runner, Database database, IOptions<ControlPlaneOptions> options, TimeProvider clock, ILogger<JobLeaseService> logger) : BackgroundService
{
    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value.Jobs;
        try
        {
            var resumed = await runner.ClaimAsync(all: database.Dialect.SingleOwner, stoppingToken);
            if (resumed > 0)
            {
                LogResumed(resumed, runner.InstanceId);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogRoundFailed(ex, "resume");
        }

        var nextRenew = clock.GetUtcNow().AddMilliseconds(o.LeaseRenewIntervalMs);
        var nextClaim = clock.GetUtcNow().AddMilliseconds(o.ClaimIntervalMs);
        while (!stoppingToken.IsCancellationRequested)
        {
            var wait = (nextRenew < nextClaim ? nextRenew : nextClaim) - clock.GetUtcNow();
            try
            {
                await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            var now = clock.GetUtcNow();
            try
            {
                if (now >= nextRenew)
                {
                    nextRenew = now.AddMilliseconds(o.LeaseRenewIntervalMs);
                    await runner.RenewLeasesAsync(stoppingToken);
                }

                if (now >= nextClaim)
                {
                    nextClaim = now.AddMilliseconds(o.ClaimIntervalMs);
                    if (await runner.ClaimAsync(all: false, stoppingToken) is > 0 and var claimed)
                    {
                        LogClaimed(claimed, runner.InstanceId);
                    }
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // A store outage: keep going, the next round tries again (executions keep their in-memory state).
                LogRoundFailed(ex, "lease");
            }
        }
    }

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await runner.StopAsync();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Resumed {Count} unfinished job(s) as {InstanceId}")]
    private partial void LogResumed(int count, string instanceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Claimed {Count} job(s) whose owner stopped renewing, as {InstanceId}")]
    private partial void LogClaimed(int count, string instanceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {What} round failed; retrying next round")]
    private partial void LogRoundFailed(Exception exception, string what);
}

using MeshAI.Control.Jobs;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Networks;

/// <summary>
/// At the start of a control instance: pushes changed agent settings (relay addresses, heartbeat interval) to every
/// network's agents (<see cref="NetworkUpdates.PublishAgentSettingsIfChangedAsync"/>), on the one instance that takes the
/// <see cref="LeaseName"/> lease; retried while the store is unavailable.
/// </summary>
public sealed partial class AgentSettingsPublisher(NetworkUpdates updates, ControlLeases leases, ControlInstance instance, TimeProvider clock, ILogger<AgentSettingsPublisher> logger) : BackgroundService
{
    /// <summary>The control lease that makes one instance publish.</summary>
    public const string LeaseName = "agent-settings";

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (await leases.TryAcquireAsync(LeaseName, instance.Id, TimeSpan.FromMinutes(1), stoppingToken))
                {
                    var told = await updates.PublishAgentSettingsIfChangedAsync(stoppingToken);
                    await leases.ReleaseAsync(LeaseName, instance.Id, stoppingToken);
                    if (told > 0)
                    {
                        LogPublished(told);
                    }
                }

                return; // done here, or another instance holds the lease and does it
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogFailed(ex);
            }

            try
            {
                await Task.Delay(TimeSpan.FromSeconds(5), clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent settings changed: pushed them to {Count} network(s)")]
    private partial void LogPublished(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing the agent settings failed; retrying")]
    private partial void LogFailed(Exception exception);
}

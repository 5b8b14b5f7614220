using Dapper;
using MeshAI.Contracts.Job.V1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Storage;

/// <summary>Applies migrations before the server accepts calls, and fails jobs a previous process left running (their live state was in memory).</summary>
public sealed class StoreStartup(Migrator migrator, Database database, MasterKey masterKey, TimeProvider clock, ILogger<StoreStartup> logger) : IHostedService
{
    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(masterKey); // resolving it creates <data-dir>/master.key (0600) on first start
        await migrator.MigrateAsync(cancellationToken);
        var interrupted = await database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE jobs SET state = @failed, error_message = 'interrupted by a control-plane restart', end_time_ms = @now WHERE state IN (@queued, @placed, @running)",
            new { failed = (int)JobState.Failed, queued = (int)JobState.Queued, placed = (int)JobState.Placed, running = (int)JobState.Running, now = clock.GetUtcNow().ToUnixTimeMilliseconds() },
            cancellationToken)), cancellationToken);
        if (interrupted > 0)
        {
            logger.LogWarning("Marked {Count} interrupted job(s) failed", interrupted);
        }
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

using Microsoft.Extensions.Hosting;

namespace MeshAI.Control.Storage;

/// <summary>
/// Applies migrations before the server accepts calls. Jobs a previous process left running are not touched here: they are
/// durable and leased, and <see cref="Jobs.JobLeaseService"/> resumes them (docs/job-plane.md).
/// </summary>
public sealed class StoreStartup(Migrator migrator, MasterKey masterKey) : IHostedService
{
    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(masterKey); // resolving it creates <data-dir>/master.key (0600) on first start
        await migrator.MigrateAsync(cancellationToken);
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

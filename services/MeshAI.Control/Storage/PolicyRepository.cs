using Dapper;

namespace MeshAI.Control.Storage;

/// <summary>Per-network policies (policy engine v1), versioned for optimistic concurrency.</summary>
public sealed class PolicyRepository(Database database)
{
    /// <summary>The stored policy of the network, or null (the defaults apply).</summary>
    public Task<PolicyRow?> GetAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<PolicyRow>(Database.Command(
            "SELECT network_id, version, policy, update_time_ms, updated_by FROM policies WHERE network_id = @networkId", new { networkId }, ct)), ct);

    /// <summary>Stores version <c>expected + 1</c> when the stored version is <paramref name="expectedVersion"/> (0 = none stored yet); false on a conflict.</summary>
    public Task<bool> SaveAsync(PolicyRow row, long expectedVersion, CancellationToken ct) =>
        database.InTransactionAsync(async (c, tx) =>
        {
            if (expectedVersion == 0)
            {
                return await c.ExecuteAsync(Database.Command(
                    "INSERT INTO policies (network_id, version, policy, update_time_ms, updated_by) VALUES (@NetworkId, @Version, @Policy, @UpdateTimeMs, @UpdatedBy) " +
                    "ON CONFLICT (network_id) DO NOTHING", row, ct, tx)) > 0;
            }

            return await c.ExecuteAsync(Database.Command(
                "UPDATE policies SET version = @Version, policy = @Policy, update_time_ms = @UpdateTimeMs, updated_by = @UpdatedBy " +
                "WHERE network_id = @NetworkId AND version = @expectedVersion",
                new { row.NetworkId, row.Version, row.Policy, row.UpdateTimeMs, row.UpdatedBy, expectedVersion }, ct, tx)) > 0;
        }, ct);
}

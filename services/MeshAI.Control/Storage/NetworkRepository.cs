using System.Data.Common;
using Dapper;

namespace MeshAI.Control.Storage;

/// <summary>Networks, their keys and members.</summary>
public sealed class NetworkRepository(Database database, Security.AccessCache? access = null)
{
    internal const string NetworkColumns = "n.network_id, n.name, n.visibility, n.billing_mode, n.created_by_user_id, n.create_time_ms, n.settings_json";
    private const string MemberColumns = "m.network_id, m.user_id, m.role, m.state, m.join_time_ms, u.email, u.display_name";

    /// <summary>Inserts a network.</summary>
    public static Task InsertNetworkAsync(DbConnection c, DbTransaction tx, NetworkRow network, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            "INSERT INTO networks (network_id, name, visibility, billing_mode, created_by_user_id, create_time_ms, settings_json) " +
            "VALUES (@NetworkId, @Name, @Visibility, @BillingMode, @CreatedByUserId, @CreateTimeMs, @SettingsJson)", network, ct, tx));

    /// <summary>Inserts a network key.</summary>
    public static Task InsertKeyAsync(DbConnection c, DbTransaction tx, NetworkKeyRow key, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            "INSERT INTO network_keys (key_id, network_id, purpose, public_key, private_key_enc, create_time_ms, not_after_ms) " +
            "VALUES (@KeyId, @NetworkId, @Purpose, @PublicKey, @PrivateKeyEnc, @CreateTimeMs, @NotAfterMs)", key, ct, tx));

    /// <summary>Inserts a member.</summary>
    public static Task InsertMemberAsync(DbConnection c, DbTransaction tx, MemberRow member, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            "INSERT INTO members (network_id, user_id, role, state, join_time_ms) VALUES (@NetworkId, @UserId, @Role, @State, @JoinTimeMs)",
            member, ct, tx));

    /// <summary>The network, or null.</summary>
    public Task<NetworkRow?> GetNetworkAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<NetworkRow>(Database.Command(
            $"SELECT {NetworkColumns} FROM networks n WHERE n.network_id = @networkId", new { networkId }, ct)), ct);

    /// <summary>Networks where the user is a member in the given state, ordered by creation, after the cursor.</summary>
    public Task<IEnumerable<NetworkRow>> ListNetworksForUserAsync(string userId, int memberState, long afterCreateTimeMs, string afterNetworkId, int limit, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<NetworkRow>(Database.Command(
            $"SELECT {NetworkColumns} FROM networks n JOIN members m ON m.network_id = n.network_id " +
            "WHERE m.user_id = @userId AND m.state = @memberState AND (n.create_time_ms > @afterCreateTimeMs OR (n.create_time_ms = @afterCreateTimeMs AND n.network_id > @afterNetworkId)) " +
            "ORDER BY n.create_time_ms, n.network_id LIMIT @limit",
            new { userId, memberState, afterCreateTimeMs, afterNetworkId, limit }, ct)), ct);

    /// <summary>The membership of a user in a network, or null.</summary>
    public Task<MemberRow?> GetMemberAsync(string networkId, string userId, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<MemberRow>(Database.Command(
            $"SELECT {MemberColumns} FROM members m JOIN users u ON u.user_id = m.user_id WHERE m.network_id = @networkId AND m.user_id = @userId",
            new { networkId, userId }, ct)), ct);

    /// <summary>All members of a network.</summary>
    public Task<IEnumerable<MemberRow>> ListMembersAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<MemberRow>(Database.Command(
            $"SELECT {MemberColumns} FROM members m JOIN users u ON u.user_id = m.user_id WHERE m.network_id = @networkId ORDER BY m.join_time_ms, m.user_id",
            new { networkId }, ct)), ct);

    /// <summary>The network's keys that are still valid at <paramref name="nowMs"/>, newest first.</summary>
    public Task<IEnumerable<NetworkKeyRow>> ListKeysAsync(string networkId, long nowMs, CancellationToken ct) =>
        database.RunAsync(c => ListKeysAsync(c, null, networkId, nowMs, ct), ct);

    /// <summary>The network's keys valid at <paramref name="nowMs"/>, newest first, on the caller's connection (and transaction).</summary>
    public static Task<IEnumerable<NetworkKeyRow>> ListKeysAsync(DbConnection c, DbTransaction? tx, string networkId, long nowMs, CancellationToken ct) =>
        c.QueryAsync<NetworkKeyRow>(Database.Command(
            "SELECT key_id, network_id, purpose, public_key, private_key_enc, create_time_ms, not_after_ms FROM network_keys " +
            "WHERE network_id = @networkId AND (not_after_ms IS NULL OR not_after_ms > @nowMs) ORDER BY create_time_ms DESC, key_id",
            new { networkId, nowMs }, ct, tx));

    /// <summary>Replaces the network's settings JSON when it still equals <paramref name="expectedJson"/>; false on a concurrent change.</summary>
    public async Task<bool> UpdateSettingsAsync(string networkId, string expectedJson, string settingsJson, CancellationToken ct)
    {
        var updated = await database.RunAsync(async c => await c.ExecuteAsync(Database.Command(
            "UPDATE networks SET settings_json = @settingsJson WHERE network_id = @networkId AND settings_json = @expectedJson",
            new { networkId, expectedJson, settingsJson }, ct)) > 0, ct);
        access?.MembershipsChanged(); // cached memberships carry the settings: the next job reads the new ones
        return updated;
    }
}

using System.Data.Common;
using Dapper;

namespace MeshAI.Control.Storage;

/// <summary>A kept NetworkUpdate delta (serialized) and the control key it told devices to trust, if any.</summary>
public sealed class NetworkUpdateRow
{
    /// <summary>The network.</summary>
    public string NetworkId { get; set; } = "";

    /// <summary>The delta's serial (per network, increasing).</summary>
    public long Serial { get; set; }

    /// <summary>The serialized NetworkUpdate.</summary>
    public byte[] Payload { get; set; } = [];

    /// <summary>The newest control signing key of the delta's key set; null when the delta carried no keys.</summary>
    public string? ControlKeyId { get; set; }

    /// <summary>When it was recorded.</summary>
    public long CreateTimeMs { get; set; }
}

/// <summary>The per-network serial of pushed NetworkUpdates, the newest deltas, and what each device acknowledged (migration 0013).</summary>
public sealed class NetworkUpdateRepository(Database database)
{
    /// <summary>
    /// Hands out the network's next serial (the networks row is locked until the caller's transaction ends, so serials are
    /// gap-free and ordered across instances), keeps the delta under it and drops deltas older than the newest
    /// <paramref name="keep"/>. Returns the serial.
    /// </summary>
    public static async Task<long> AppendAsync(DbConnection c, DbTransaction tx, string networkId, Func<long, byte[]> payload, string? controlKeyId, long nowMs, int keep, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(payload);
        var serial = await c.ExecuteScalarAsync<long>(Database.Command(
            "UPDATE networks SET update_serial = update_serial + 1 WHERE network_id = @networkId RETURNING update_serial", new { networkId }, ct, tx));
        await c.ExecuteAsync(Database.Command(
            "INSERT INTO network_updates (network_id, serial, payload, control_key_id, create_time_ms) VALUES (@networkId, @serial, @payload, @controlKeyId, @nowMs)",
            new { networkId, serial, payload = payload(serial), controlKeyId, nowMs }, ct, tx));
        await c.ExecuteAsync(Database.Command(
            "DELETE FROM network_updates WHERE network_id = @networkId AND serial <= @oldest", new { networkId, oldest = serial - keep }, ct, tx));
        return serial;
    }

    /// <summary>The network's last serial (0 before its first update).</summary>
    public Task<long> LatestSerialAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT COALESCE(MAX(update_serial), 0) FROM networks WHERE network_id = @networkId", new { networkId }, ct)), ct);

    /// <summary>The kept deltas after <paramref name="afterSerial"/>, oldest first.</summary>
    public Task<IEnumerable<NetworkUpdateRow>> ListAfterAsync(string networkId, long afterSerial, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<NetworkUpdateRow>(Database.Command(
            "SELECT network_id, serial, payload, control_key_id, create_time_ms FROM network_updates WHERE network_id = @networkId AND serial > @afterSerial ORDER BY serial",
            new { networkId, afterSerial }, ct)), ct);

    /// <summary>The control key the newest kept delta up to <paramref name="serial"/> told devices to trust; null when none did.</summary>
    public Task<string?> ControlKeyAtAsync(string networkId, long serial, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteScalarAsync<string?>(Database.Command(
            "SELECT control_key_id FROM network_updates WHERE network_id = @networkId AND serial <= @serial AND control_key_id IS NOT NULL ORDER BY serial DESC LIMIT 1",
            new { networkId, serial }, ct)), ct);

    /// <summary>Records that the device applied <paramref name="serial"/> (never moves backwards).</summary>
    public Task RecordAcknowledgedAsync(string deviceId, long serial, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE devices SET network_serial = @serial WHERE device_id = @deviceId AND network_serial < @serial", new { deviceId, serial }, ct)), ct);

    /// <summary>The serial the device acknowledged last (0: none).</summary>
    public Task<long> AcknowledgedAsync(string deviceId, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT COALESCE(MAX(network_serial), 0) FROM devices WHERE device_id = @deviceId", new { deviceId }, ct)), ct);

    /// <summary>A deployment setting as last pushed to agents (null: never recorded).</summary>
    public Task<string?> GetDeploymentSettingAsync(string name, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<string?>(Database.Command(
            "SELECT value FROM deployment_settings WHERE name = @name", new { name }, ct)), ct);

    /// <summary>Records a deployment setting as pushed.</summary>
    public Task SetDeploymentSettingAsync(string name, string value, long nowMs, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "INSERT INTO deployment_settings (name, value, update_time_ms) VALUES (@name, @value, @nowMs) " +
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, update_time_ms = excluded.update_time_ms",
            new { name, value, nowMs }, ct)), ct);

    /// <summary>Every network's id (a deployment-wide update goes to each).</summary>
    public Task<IEnumerable<string>> ListNetworkIdsAsync(CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<string>(Database.Command("SELECT network_id FROM networks ORDER BY network_id", null, ct)), ct);

    /// <summary>The network's revoked devices, most recently revoked first, at most <paramref name="limit"/>.</summary>
    public Task<IEnumerable<string>> ListRevokedAsync(string networkId, int limit, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<string>(Database.Command(
            "SELECT device_id FROM devices WHERE network_id = @networkId AND revoked ORDER BY revoke_time_ms DESC, device_id LIMIT @limit",
            new { networkId, limit }, ct)), ct);
}

/// <summary>
/// Leases on store-wide chores (migration 0013's control_leases): a chore runs on the one control instance that holds its
/// lease, so two instances never run it at the same time (today: the scheduled key rotation). A lease is taken
/// when free or expired, renewed by its holder, and expires on its own when the holder dies.
/// </summary>
public sealed class ControlLeases(Database database, TimeProvider clock)
{
    /// <summary>Takes or renews <paramref name="name"/> for <paramref name="holder"/> until now + <paramref name="ttl"/>; false when another instance holds it.</summary>
    public Task<bool> TryAcquireAsync(string name, string holder, TimeSpan ttl, CancellationToken ct)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var expire = now + (long)ttl.TotalMilliseconds;
        // One statement on both stores: the row lock (PostgreSQL) / write lock (SQLite) makes concurrent takers wait for each
        // other, and the second sees the first's unexpired lease and updates nothing.
        return database.RunAsync(async c => await c.ExecuteAsync(Database.Command(
            "INSERT INTO control_leases (name, holder, expire_time_ms) VALUES (@name, @holder, @expire) " +
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expire_time_ms = excluded.expire_time_ms " +
            "WHERE control_leases.expire_time_ms < @now OR control_leases.holder = @holder",
            new { name, holder, expire, now }, ct)) > 0, ct);
    }

    /// <summary>Gives the lease up (only its holder can).</summary>
    public Task ReleaseAsync(string name, string holder, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE control_leases SET expire_time_ms = 0 WHERE name = @name AND holder = @holder", new { name, holder }, ct)), ct);
}

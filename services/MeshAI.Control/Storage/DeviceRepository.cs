using System.Data.Common;
using Dapper;

namespace MeshAI.Control.Storage;

/// <summary>Join tokens, device pairings, devices and the certificate denylist.</summary>
public sealed class DeviceRepository(Database database)
{
    internal const string DeviceColumns =
        "device_id, network_id, owner_user_id, name, platform, installation_id, signing_public_key, encryption_public_key, capabilities, " +
        "contribution_mode, contribution_enabled, pinned_workloads, trust_level, certificate_serial, create_time_ms, last_seen_time_ms, revoked, revoke_time_ms, revoke_reason";

    private const string PairingColumns =
        "pairing_id, secret_hash, user_code, device_name, installation_id, state, network_id, approved_by_user_id, delivered, create_time_ms, expire_time_ms";

    /// <summary>Inserts a join token.</summary>
    public Task InsertJoinTokenAsync(JoinTokenRow token, CancellationToken ct) =>
        database.RunAsync(c => InsertJoinTokenAsync(c, null, token, ct), ct);

    /// <summary>Inserts a join token inside a transaction.</summary>
    public static Task<int> InsertJoinTokenAsync(DbConnection c, DbTransaction? tx, JoinTokenRow token, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            "INSERT INTO join_tokens (join_token_id, network_id, token_hash, created_by_user_id, create_time_ms, expire_time_ms, max_uses, uses) " +
            "VALUES (@JoinTokenId, @NetworkId, @TokenHash, @CreatedByUserId, @CreateTimeMs, @ExpireTimeMs, @MaxUses, @Uses)", token, ct, tx));

    /// <summary>The join token with this secret hash, or null.</summary>
    public static Task<JoinTokenRow?> FindJoinTokenAsync(DbConnection c, DbTransaction tx, string tokenHash, CancellationToken ct) =>
        c.QuerySingleOrDefaultAsync<JoinTokenRow>(Database.Command(
            "SELECT join_token_id, network_id, token_hash, created_by_user_id, create_time_ms, expire_time_ms, max_uses, uses FROM join_tokens WHERE token_hash = @tokenHash",
            new { tokenHash }, ct, tx));

    /// <summary>Counts one use of the token if any are left; false when exhausted (race-safe).</summary>
    public static async Task<bool> UseJoinTokenAsync(DbConnection c, DbTransaction tx, string joinTokenId, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            "UPDATE join_tokens SET uses = uses + 1 WHERE join_token_id = @joinTokenId AND uses < max_uses", new { joinTokenId }, ct, tx)) > 0;

    /// <summary>Inserts a device.</summary>
    public static Task InsertDeviceAsync(DbConnection c, DbTransaction tx, DeviceRow d, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            $"INSERT INTO devices ({DeviceColumns}) VALUES (@DeviceId, @NetworkId, @OwnerUserId, @Name, @Platform, @InstallationId, @SigningPublicKey, " +
            "@EncryptionPublicKey, @Capabilities, @ContributionMode, @ContributionEnabled, @PinnedWorkloads, @TrustLevel, @CertificateSerial, @CreateTimeMs, " +
            "@LastSeenTimeMs, @Revoked, @RevokeTimeMs, @RevokeReason)", d, ct, tx));

    /// <summary>The device in the network, or null.</summary>
    public Task<DeviceRow?> GetDeviceAsync(string networkId, string deviceId, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<DeviceRow>(Database.Command(
            $"SELECT {DeviceColumns} FROM devices WHERE network_id = @networkId AND device_id = @deviceId", new { networkId, deviceId }, ct)), ct);

    /// <summary>The device by id alone (for the relay seams), or null.</summary>
    public Task<DeviceRow?> GetDeviceByIdAsync(string deviceId, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<DeviceRow>(Database.Command(
            $"SELECT {DeviceColumns} FROM devices WHERE device_id = @deviceId", new { deviceId }, ct)), ct);

    /// <summary>Devices of the network ordered by id, after the cursor.</summary>
    public Task<IEnumerable<DeviceRow>> ListDevicesAsync(string networkId, string afterDeviceId, int limit, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<DeviceRow>(Database.Command(
            $"SELECT {DeviceColumns} FROM devices WHERE network_id = @networkId AND device_id > @afterDeviceId ORDER BY device_id LIMIT @limit",
            new { networkId, afterDeviceId, limit }, ct)), ct);

    /// <summary>Devices by id within a network (any that exist).</summary>
    public Task<IEnumerable<DeviceRow>> GetDevicesAsync(string networkId, IReadOnlyCollection<string> deviceIds, CancellationToken ct) =>
        deviceIds.Count == 0
            ? Task.FromResult(Enumerable.Empty<DeviceRow>())
            : database.RunAsync(async c =>
            {
                var rows = new List<DeviceRow>();
                foreach (var deviceId in deviceIds)
                {
                    var row = await c.QuerySingleOrDefaultAsync<DeviceRow>(Database.Command(
                        $"SELECT {DeviceColumns} FROM devices WHERE network_id = @networkId AND device_id = @deviceId", new { networkId, deviceId }, ct));
                    if (row is not null)
                    {
                        rows.Add(row);
                    }
                }

                return rows.AsEnumerable();
            }, ct);

    /// <summary>Replaces the mutable fields of a device (name, contribution, pins).</summary>
    public Task UpdateDeviceSettingsAsync(DeviceRow d, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE devices SET name = @Name, contribution_mode = @ContributionMode, contribution_enabled = @ContributionEnabled, pinned_workloads = @PinnedWorkloads " +
            "WHERE network_id = @NetworkId AND device_id = @DeviceId", d, ct)), ct);

    /// <summary>Marks the device revoked and denylists its current serial, in one transaction.</summary>
    public Task<bool> RevokeDeviceAsync(string networkId, string deviceId, string serial, string reason, long nowMs, CancellationToken ct) =>
        database.InTransactionAsync(async (c, tx) =>
        {
            // Only the first revocation writes the time and reason; a repeat (or a concurrent one) changes nothing and says so.
            var revokedNow = await c.ExecuteAsync(Database.Command(
                "UPDATE devices SET revoked = TRUE, revoke_time_ms = @nowMs, revoke_reason = @reason WHERE network_id = @networkId AND device_id = @deviceId AND revoked = FALSE",
                new { networkId, deviceId, reason, nowMs }, ct, tx)) > 0;
            await c.ExecuteAsync(Database.Command(
                "INSERT INTO revoked_serials (serial, network_id, device_id, revoke_time_ms) VALUES (@serial, @networkId, @deviceId, @nowMs) ON CONFLICT (serial) DO NOTHING",
                new { serial, networkId, deviceId, nowMs }, ct, tx));
            return revokedNow;
        }, ct);

    /// <summary>True when the serial is denylisted or the device is revoked.</summary>
    public Task<bool> IsRevokedAsync(string deviceId, string serial, CancellationToken ct) =>
        database.RunAsync(async c => await c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT (SELECT COUNT(*) FROM revoked_serials WHERE serial = @serial) + (SELECT COUNT(*) FROM devices WHERE device_id = @deviceId AND revoked = TRUE)",
            new { deviceId, serial }, ct)) > 0, ct);

    /// <summary>Inserts a pairing.</summary>
    public Task InsertPairingAsync(PairingRow p, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            $"INSERT INTO device_pairings ({PairingColumns}) VALUES (@PairingId, @SecretHash, @UserCode, @DeviceName, @InstallationId, @State, @NetworkId, " +
            "@ApprovedByUserId, @Delivered, @CreateTimeMs, @ExpireTimeMs)", p, ct)), ct);

    /// <summary>Approves a pending, unexpired pairing by user code into a network; false when none matched.</summary>
    public async Task<bool> ApprovePairingAsync(string userCode, string networkId, string userId, int approvedState, int pendingState, long nowMs, CancellationToken ct) =>
        await database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE device_pairings SET state = @approvedState, network_id = @networkId, approved_by_user_id = @userId " +
            "WHERE user_code = @userCode AND state = @pendingState AND expire_time_ms > @nowMs",
            new { userCode, networkId, userId, approvedState, pendingState, nowMs }, ct)), ct) > 0;

    /// <summary>The pairing by its secret hash, or null.</summary>
    public Task<PairingRow?> FindPairingAsync(string secretHash, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<PairingRow>(Database.Command(
            $"SELECT {PairingColumns} FROM device_pairings WHERE secret_hash = @secretHash", new { secretHash }, ct)), ct);

    /// <summary>Marks an approved pairing delivered and inserts its join token, once; false when already delivered.</summary>
    public Task<bool> DeliverPairingAsync(string pairingId, JoinTokenRow token, CancellationToken ct) =>
        database.InTransactionAsync(async (c, tx) =>
        {
            var marked = await c.ExecuteAsync(Database.Command(
                "UPDATE device_pairings SET delivered = TRUE WHERE pairing_id = @pairingId AND delivered = FALSE", new { pairingId }, ct, tx));
            if (marked == 0)
            {
                return false;
            }

            await InsertJoinTokenAsync(c, tx, token, ct);
            return true;
        }, ct);
}

using Dapper;

namespace MeshAI.Control.Storage;

/// <summary>The security tables of migration 0003: audit log, invites, member changes, API keys, passkeys, ceremonies.</summary>
public sealed class SecurityRepository(Database database, Security.AccessCache? access = null)
{
    /// <summary>The store.</summary>
    public Database Database => database;

    private const string AuditColumns = "sequence, event_id, network_id, actor_user_id, action, target, details_json, time_ms, remote_address";
    private const string InviteColumns = "invite_id, network_id, invite_type, invitee, role, token_hash, created_by_user_id, create_time_ms, expire_time_ms, revoked, uses";
    private const string ApiKeyColumns = "api_key_id, network_id, user_id, name, scopes, prefix, secret_hash, create_time_ms, revoked, revoke_time_ms";
    private const string PasskeyColumns = "passkey_id, user_id, name, credential_id, public_key, user_handle, sign_count, create_time_ms";

    /// <summary>Appends an audit event.</summary>
    public Task AppendAuditAsync(AuditEventRow row, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "INSERT INTO audit_events (event_id, network_id, actor_user_id, action, target, details_json, time_ms, remote_address) " +
            "VALUES (@EventId, @NetworkId, @ActorUserId, @Action, @Target, @DetailsJson, @TimeMs, @RemoteAddress)", row, ct)), ct);

    /// <summary>Audit events of a network after a sequence, oldest first.</summary>
    public Task<IEnumerable<AuditEventRow>> ListAuditAsync(string networkId, long afterSequence, int limit, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<AuditEventRow>(Database.Command(
            $"SELECT {AuditColumns} FROM audit_events WHERE network_id = @networkId AND sequence > @afterSequence ORDER BY sequence LIMIT @limit",
            new { networkId, afterSequence, limit }, ct)), ct);

    /// <summary>Inserts an invite.</summary>
    public Task InsertInviteAsync(InviteRow row, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            $"INSERT INTO invites ({InviteColumns}) VALUES (@InviteId, @NetworkId, @InviteType, @Invitee, @Role, @TokenHash, @CreatedByUserId, @CreateTimeMs, @ExpireTimeMs, @Revoked, @Uses)",
            row, ct)), ct);

    /// <summary>The invite with this secret hash, or null.</summary>
    public Task<InviteRow?> FindInviteAsync(string tokenHash, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<InviteRow>(Database.Command(
            $"SELECT {InviteColumns} FROM invites WHERE token_hash = @tokenHash", new { tokenHash }, ct)), ct);

    /// <summary>The network's invites, newest first.</summary>
    public Task<IEnumerable<InviteRow>> ListInvitesAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<InviteRow>(Database.Command(
            $"SELECT {InviteColumns} FROM invites WHERE network_id = @networkId ORDER BY create_time_ms DESC, invite_id", new { networkId }, ct)), ct);

    /// <summary>Counts a use of an invite; email and username invites are single-use (false when already used).</summary>
    public async Task<bool> UseInviteAsync(string inviteId, bool singleUse, CancellationToken ct) =>
        await database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE invites SET uses = uses + 1 WHERE invite_id = @inviteId AND revoked = FALSE AND (@singleUse = FALSE OR uses = 0)",
            new { inviteId, singleUse }, ct)), ct) > 0;

    /// <summary>Adds the user to the network or re-admits a removed member with a new state and role; false when already an active or pending member.</summary>
    public async Task<bool> UpsertMemberAsync(MemberRow member, int removedState, CancellationToken ct) =>
        MembershipChanged(await database.InTransactionAsync(async (c, tx) =>
        {
            var existing = await c.QuerySingleOrDefaultAsync<int?>(Database.Command(
                "SELECT state FROM members WHERE network_id = @NetworkId AND user_id = @UserId", member, ct, tx));
            if (existing is null)
            {
                await NetworkRepository.InsertMemberAsync(c, tx, member, ct);
                return true;
            }

            if (existing != removedState)
            {
                return false;
            }

            await c.ExecuteAsync(Database.Command(
                "UPDATE members SET role = @Role, state = @State, join_time_ms = @JoinTimeMs WHERE network_id = @NetworkId AND user_id = @UserId", member, ct, tx));
            return true;
        }, ct));

    /// <summary>Sets a member's state when it is currently <paramref name="fromState"/>; false otherwise.</summary>
    public async Task<bool> SetMemberStateAsync(string networkId, string userId, int fromState, int toState, CancellationToken ct) =>
        MembershipChanged(await database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE members SET state = @toState WHERE network_id = @networkId AND user_id = @userId AND state = @fromState",
            new { networkId, userId, fromState, toState }, ct)), ct) > 0);

    /// <summary>Sets a member's role.</summary>
    public async Task<bool> SetMemberRoleAsync(string networkId, string userId, int role, CancellationToken ct) =>
        MembershipChanged(await database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE members SET role = @role WHERE network_id = @networkId AND user_id = @userId", new { networkId, userId, role }, ct)), ct) > 0);

    /// <summary>Devices of a user in a network that are not revoked yet.</summary>
    public Task<IEnumerable<(string DeviceId, string Serial)>> ListLiveDevicesOfOwnerAsync(string networkId, string ownerUserId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<(string, string)>(Database.Command(
            "SELECT device_id, certificate_serial FROM devices WHERE network_id = @networkId AND owner_user_id = @ownerUserId AND revoked = FALSE ORDER BY device_id",
            new { networkId, ownerUserId }, ct)), ct);

    /// <summary>Inserts an API key.</summary>
    public Task InsertApiKeyAsync(ApiKeyRow row, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            $"INSERT INTO api_keys ({ApiKeyColumns}) VALUES (@ApiKeyId, @NetworkId, @UserId, @Name, @Scopes, @Prefix, @SecretHash, @CreateTimeMs, @Revoked, @RevokeTimeMs)",
            row, ct)), ct);

    /// <summary>The unrevoked API key with this secret hash, or null.</summary>
    public Task<ApiKeyRow?> FindLiveApiKeyAsync(string secretHash, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<ApiKeyRow>(Database.Command(
            $"SELECT {ApiKeyColumns} FROM api_keys WHERE secret_hash = @secretHash AND revoked = FALSE", new { secretHash }, ct)), ct);

    /// <summary>An API key by id, or null.</summary>
    public Task<ApiKeyRow?> GetApiKeyAsync(string apiKeyId, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<ApiKeyRow>(Database.Command(
            $"SELECT {ApiKeyColumns} FROM api_keys WHERE api_key_id = @apiKeyId", new { apiKeyId }, ct)), ct);

    /// <summary>API keys of a network, optionally only one user's.</summary>
    public Task<IEnumerable<ApiKeyRow>> ListApiKeysAsync(string networkId, string? userId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<ApiKeyRow>(Database.Command(
            $"SELECT {ApiKeyColumns} FROM api_keys WHERE network_id = @networkId" + (userId is null ? "" : " AND user_id = @userId") + " ORDER BY create_time_ms, api_key_id",
            new { networkId, userId = userId ?? "" }, ct)), ct);

    /// <summary>Revokes an API key.</summary>
    public async Task<bool> RevokeApiKeyAsync(string apiKeyId, long nowMs, CancellationToken ct)
    {
        var revoked = await database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE api_keys SET revoked = TRUE, revoke_time_ms = @nowMs WHERE api_key_id = @apiKeyId AND revoked = FALSE", new { apiKeyId, nowMs }, ct)), ct) > 0;
        access?.CallersChanged(); // committed: no instance answers for the key from its cache any more
        return revoked;
    }

    // After a committed membership write: no instance answers for a membership from its cache any more (AccessCache).
    private bool MembershipChanged(bool result)
    {
        access?.MembershipsChanged();
        return result;
    }

    /// <summary>Inserts a passkey.</summary>
    public Task InsertPasskeyAsync(PasskeyRow row, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            $"INSERT INTO passkeys ({PasskeyColumns}) VALUES (@PasskeyId, @UserId, @Name, @CredentialId, @PublicKey, @UserHandle, @SignCount, @CreateTimeMs)", row, ct)), ct);

    /// <summary>The user's passkeys.</summary>
    public Task<IEnumerable<PasskeyRow>> ListPasskeysAsync(string userId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<PasskeyRow>(Database.Command(
            $"SELECT {PasskeyColumns} FROM passkeys WHERE user_id = @userId ORDER BY create_time_ms", new { userId }, ct)), ct);

    /// <summary>The passkey with this credential id, or null.</summary>
    public Task<PasskeyRow?> FindPasskeyAsync(byte[] credentialId, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<PasskeyRow>(Database.Command(
            $"SELECT {PasskeyColumns} FROM passkeys WHERE credential_id = @credentialId", new { credentialId }, ct)), ct);

    /// <summary>Records the authenticator's new signature counter.</summary>
    public Task UpdatePasskeyCounterAsync(string passkeyId, long signCount, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE passkeys SET sign_count = @signCount WHERE passkey_id = @passkeyId", new { passkeyId, signCount }, ct)), ct);

    /// <summary>Inserts a pending ceremony.</summary>
    public Task InsertCeremonyAsync(CeremonyRow row, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "INSERT INTO auth_ceremonies (ceremony_id, kind, user_id, data_json, create_time_ms, expire_time_ms, used) " +
            "VALUES (@CeremonyId, @Kind, @UserId, @DataJson, @CreateTimeMs, @ExpireTimeMs, @Used)", row, ct)), ct);

    /// <summary>Consumes a live ceremony of the kind exactly once; null when unknown, used or expired.</summary>
    public Task<CeremonyRow?> ConsumeCeremonyAsync(string ceremonyId, string kind, long nowMs, CancellationToken ct) =>
        database.InTransactionAsync(async (c, tx) =>
        {
            var used = await c.ExecuteAsync(Database.Command(
                "UPDATE auth_ceremonies SET used = TRUE WHERE ceremony_id = @ceremonyId AND kind = @kind AND used = FALSE AND expire_time_ms > @nowMs",
                new { ceremonyId, kind, nowMs }, ct, tx));
            return used == 0 ? null : await c.QuerySingleAsync<CeremonyRow>(Database.Command(
                "SELECT ceremony_id, kind, user_id, data_json, create_time_ms, expire_time_ms, used FROM auth_ceremonies WHERE ceremony_id = @ceremonyId",
                new { ceremonyId }, ct, tx));
        }, ct);

    /// <summary>Records which control key a device was last given (tickets to it are signed with that key while it is valid).</summary>
    public async Task SetDeviceControlKeyAsync(string deviceId, string controlKeyId, CancellationToken ct)
    {
        await database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE devices SET control_key_id = @controlKeyId WHERE device_id = @deviceId", new { deviceId, controlKeyId }, ct)), ct);
        access?.KeysChanged(); // committed: tickets to this device are signed with the key it now holds, on every instance
    }

    /// <summary>The control key id a device was last given, or null (original registration).</summary>
    public Task<string?> GetDeviceControlKeyAsync(string deviceId, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteScalarAsync<string?>(Database.Command(
            "SELECT control_key_id FROM devices WHERE device_id = @deviceId", new { deviceId }, ct)), ct);
}

/// <summary>Network key rotation writes (inside the caller's transaction).</summary>
public static class NetworkKeyRotationStore
{
    /// <summary>Gives every open-ended key of the network an end (the grace window); returns how many keys were retired.</summary>
    public static Task<int> RetireCurrentKeysAsync(System.Data.Common.DbConnection c, System.Data.Common.DbTransaction tx, string networkId, long graceEndMs, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            "UPDATE network_keys SET not_after_ms = @graceEndMs WHERE network_id = @networkId AND not_after_ms IS NULL", new { networkId, graceEndMs }, ct, tx));

    /// <summary>Networks and the creation time of their newest CA key (for scheduled rotation).</summary>
    public static Task<IEnumerable<(string NetworkId, string SettingsJson, long NewestKeyMs)>> ListKeyAgesAsync(Database database, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<(string, string, long)>(Database.Command(
            "SELECT n.network_id, n.settings_json, COALESCE(MAX(k.create_time_ms), 0) FROM networks n LEFT JOIN network_keys k ON k.network_id = n.network_id " +
            "GROUP BY n.network_id, n.settings_json", null, ct)), ct);
}

/// <summary>Device certificate bookkeeping for renewal.</summary>
public static class DeviceCertificateStore
{
    /// <summary>Records the serial of a device's newest certificate.</summary>
    public static Task SetDeviceSerialAsync(this SecurityRepository store, string deviceId, string serial, CancellationToken ct) =>
        store.Database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE devices SET certificate_serial = @serial WHERE device_id = @deviceId", new { deviceId, serial }, ct)), ct);
}

using System.Data.Common;
using Dapper;

namespace MeshAI.Control.Storage;

/// <summary>Users, sessions, magic links and device-code logins.</summary>
public sealed class IdentityRepository(Database database, Security.AccessCache? access = null)
{
    private const string UserColumns = "user_id, email, display_name, username, create_time_ms";

    /// <summary>The user with this id, or null.</summary>
    public Task<UserRow?> GetUserAsync(string userId, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<UserRow>(Database.Command(
            $"SELECT {UserColumns} FROM users WHERE user_id = @userId", new { userId }, ct)), ct);

    /// <summary>The user with this (normalised) email, or null.</summary>
    public static Task<UserRow?> FindUserByEmailAsync(DbConnection c, DbTransaction tx, string email, CancellationToken ct) =>
        c.QuerySingleOrDefaultAsync<UserRow>(Database.Command(
            $"SELECT {UserColumns} FROM users WHERE email = @email", new { email }, ct, tx));

    /// <summary>Inserts a user.</summary>
    public static Task InsertUserAsync(DbConnection c, DbTransaction tx, UserRow user, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            "INSERT INTO users (user_id, email, display_name, username, create_time_ms) VALUES (@UserId, @Email, @DisplayName, @Username, @CreateTimeMs)",
            user, ct, tx));

    /// <summary>Inserts a session.</summary>
    public static Task InsertSessionAsync(DbConnection c, DbTransaction? tx, SessionRow session, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            "INSERT INTO sessions (session_id, user_id, token_hash, client_name, create_time_ms, expire_time_ms, revoked) " +
            "VALUES (@SessionId, @UserId, @TokenHash, @ClientName, @CreateTimeMs, @ExpireTimeMs, @Revoked)", session, ct, tx));

    /// <summary>The live session with this token hash and its user, or null.</summary>
    public async Task<(SessionRow Session, UserRow User)?> FindLiveSessionAsync(string tokenHash, long nowMs, CancellationToken ct)
    {
        var rows = await database.RunAsync(c => c.QueryAsync<SessionRow, UserRow, (SessionRow, UserRow)>(
            new CommandDefinition(
                "SELECT s.session_id, s.user_id, s.token_hash, s.client_name, s.create_time_ms, s.expire_time_ms, s.revoked, " +
                $"u.user_id, u.email, u.display_name, u.username, u.create_time_ms FROM sessions s JOIN users u ON u.user_id = s.user_id " +
                "WHERE s.token_hash = @tokenHash AND s.revoked = FALSE AND s.expire_time_ms > @nowMs",
                new { tokenHash, nowMs }, cancellationToken: ct),
            (s, u) => (s, u), splitOn: "user_id"), ct);
        foreach (var row in rows)
        {
            return row;
        }

        return null;
    }

    /// <summary>The user's sessions, newest first.</summary>
    public Task<IEnumerable<SessionRow>> ListSessionsAsync(string userId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<SessionRow>(Database.Command(
            "SELECT session_id, user_id, token_hash, client_name, create_time_ms, expire_time_ms, revoked FROM sessions WHERE user_id = @userId ORDER BY create_time_ms DESC",
            new { userId }, ct)), ct);

    /// <summary>Revokes one of the user's sessions; false when it is not theirs.</summary>
    public async Task<bool> RevokeSessionAsync(string userId, string sessionId, CancellationToken ct)
    {
        var revoked = await database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE sessions SET revoked = TRUE WHERE session_id = @sessionId AND user_id = @userId", new { sessionId, userId }, ct)), ct) > 0;
        access?.CallersChanged(); // committed: no instance answers for the session from its cache any more
        return revoked;
    }

    /// <summary>Inserts a magic link.</summary>
    public Task InsertMagicLinkAsync(MagicLinkRow link, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "INSERT INTO magic_links (token_hash, email, device_login_id, create_time_ms, expire_time_ms, used_time_ms) " +
            "VALUES (@TokenHash, @Email, @DeviceLoginId, @CreateTimeMs, @ExpireTimeMs, @UsedTimeMs)", link, ct)), ct);

    /// <summary>An unused, unexpired magic link without consuming it; null when there is none.</summary>
    public Task<MagicLinkRow?> FindUsableMagicLinkAsync(string tokenHash, long nowMs, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<MagicLinkRow>(Database.Command(
            "SELECT token_hash, email, device_login_id, create_time_ms, expire_time_ms, used_time_ms FROM magic_links " +
            "WHERE token_hash = @tokenHash AND used_time_ms IS NULL AND expire_time_ms > @nowMs", new { tokenHash, nowMs }, ct)), ct);

    /// <summary>Marks an unused, unexpired magic link used and returns it; null when there is none.</summary>
    public static async Task<MagicLinkRow?> ConsumeMagicLinkAsync(DbConnection c, DbTransaction tx, string tokenHash, long nowMs, CancellationToken ct)
    {
        var updated = await c.ExecuteAsync(Database.Command(
            "UPDATE magic_links SET used_time_ms = @nowMs WHERE token_hash = @tokenHash AND used_time_ms IS NULL AND expire_time_ms > @nowMs",
            new { tokenHash, nowMs }, ct, tx));
        if (updated == 0)
        {
            return null;
        }

        return await c.QuerySingleAsync<MagicLinkRow>(Database.Command(
            "SELECT token_hash, email, device_login_id, create_time_ms, expire_time_ms, used_time_ms FROM magic_links WHERE token_hash = @tokenHash",
            new { tokenHash }, ct, tx));
    }

    /// <summary>Inserts a device login.</summary>
    public Task InsertDeviceLoginAsync(DeviceLoginRow login, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "INSERT INTO device_logins (device_login_id, device_code_hash, user_code, email, client_name, state, approved_user_id, delivered, create_time_ms, expire_time_ms) " +
            "VALUES (@DeviceLoginId, @DeviceCodeHash, @UserCode, @Email, @ClientName, @State, @ApprovedUserId, @Delivered, @CreateTimeMs, @ExpireTimeMs)", login, ct)), ct);

    /// <summary>The device login by the hash of its device code.</summary>
    public Task<DeviceLoginRow?> FindDeviceLoginByCodeHashAsync(string deviceCodeHash, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<DeviceLoginRow>(Database.Command(
            "SELECT * FROM device_logins WHERE device_code_hash = @deviceCodeHash", new { deviceCodeHash }, ct)), ct);

    /// <summary>Approves a pending, unexpired device login (by id or user code) for a user; false when none matched.</summary>
    public static async Task<bool> ApproveDeviceLoginAsync(DbConnection c, DbTransaction? tx, string? deviceLoginId, string? userCode, string userId, int approvedState, int pendingState, long nowMs, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            "UPDATE device_logins SET state = @approvedState, approved_user_id = @userId " +
            "WHERE (device_login_id = @deviceLoginId OR user_code = @userCode) AND state = @pendingState AND expire_time_ms > @nowMs",
            new { deviceLoginId, userCode, userId, approvedState, pendingState, nowMs }, ct, tx)) > 0;

    /// <summary>Marks an approved login delivered (its session handed out) exactly once; false when it already was.</summary>
    public static async Task<bool> MarkDeviceLoginDeliveredAsync(DbConnection c, DbTransaction tx, string deviceLoginId, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            "UPDATE device_logins SET delivered = TRUE WHERE device_login_id = @deviceLoginId AND delivered = FALSE",
            new { deviceLoginId }, ct, tx)) > 0;
}

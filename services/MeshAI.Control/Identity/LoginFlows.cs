using System.Data.Common;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Identity;

/// <summary>A new session: the user, the one-time token and the stored session.</summary>
public sealed record IssuedSession(User User, string Token, Session Session);

/// <summary>What opening a magic link in a browser did.</summary>
public sealed record BrowserCompletion(User User, bool ApprovedDeviceLogin, string? SessionToken);

/// <summary>Magic links, device-code logins and sessions (the spec's magic_link method plus the CLI flow).</summary>
public sealed class LoginFlows(
    Database database,
    IdentityRepository identity,
    IMagicLinkSender sender,
    ServerEndpoint endpoint,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock)
{
    private ControlLimits Limits => options.Value.Limits;

    private long NowMs => clock.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Mails a magic link to the address; returns when it expires.</summary>
    public async Task<DateTimeOffset> StartMagicLinkAsync(string email, CancellationToken ct) =>
        await SendLinkAsync(NormaliseEmail(email, "email"), null, null, ct);

    /// <summary>Exchanges a magic-link token for a session (signing up unknown addresses).</summary>
    public async Task<IssuedSession> CompleteMagicLinkAsync(string token, string clientName, CancellationToken ct)
    {
        return await database.InTransactionAsync(async (c, tx) =>
        {
            var (user, _) = await ConsumeLinkAsync(c, tx, token, ct);
            return await NewSessionAsync(c, tx, user, clientName, ct);
        }, ct);
    }

    /// <summary>The GET /auth/magic flow: approves the device login the link belongs to, or starts a browser session.</summary>
    public async Task<BrowserCompletion> CompleteFromBrowserAsync(string token, CancellationToken ct)
    {
        return await database.InTransactionAsync(async (c, tx) =>
        {
            var (user, deviceLoginId) = await ConsumeLinkAsync(c, tx, token, ct);
            if (deviceLoginId is not null)
            {
                var approved = await IdentityRepository.ApproveDeviceLoginAsync(c, tx, deviceLoginId, null, user.UserId,
                    (int)DeviceLoginState.Approved, (int)DeviceLoginState.Pending, NowMs, ct);
                return new BrowserCompletion(ToProto(user), approved, null);
            }

            var session = await NewSessionAsync(c, tx, user, "browser", ct);
            return new BrowserCompletion(session.User, false, session.Token);
        }, ct);
    }

    /// <summary>True when the token is a usable magic link that approves a terminal's device-code login (not a browser sign-in).</summary>
    public async Task<bool> IsDeviceLoginLinkAsync(string token, CancellationToken ct) =>
        !string.IsNullOrEmpty(token) && await identity.FindUsableMagicLinkAsync(Secrets.Hash(token), NowMs, ct) is { DeviceLoginId: not null };

    /// <summary>
    /// A one-time link that signs a browser in as the caller (`meshnet dashboard`): a magic link for the caller's address
    /// that is returned instead of mailed. <paramref name="nextPath"/> is a path on this server the browser opens afterwards.
    /// </summary>
    public async Task<(string Link, DateTimeOffset Expires)> CreateSignInLinkAsync(Caller caller, string nextPath, CancellationToken ct)
    {
        var next = (nextPath ?? "").Trim();
        if (next.Length > 512 || (next.Length > 0 && (!next.StartsWith('/') || next.StartsWith("//", StringComparison.Ordinal) || next.Contains('\\', StringComparison.Ordinal))))
        {
            throw RpcErrors.InvalidArgument("next_path", "a path on this server starting with a single '/', at most 512 characters");
        }

        var user = await GetUserAsync(caller, ct);
        var token = Secrets.NewToken("mlt");
        var now = clock.GetUtcNow();
        var expires = now.AddMinutes(Limits.MagicLinkTtlMinutes);
        await identity.InsertMagicLinkAsync(new MagicLinkRow
        {
            TokenHash = Secrets.Hash(token),
            Email = user.Email,
            CreateTimeMs = now.ToUnixTimeMilliseconds(),
            ExpireTimeMs = expires.ToUnixTimeMilliseconds(),
        }, ct);
        var link = endpoint.PublicUrl + MagicLinkEndpoint.Path + "?token=" + Uri.EscapeDataString(token) + (next.Length > 0 ? "&next=" + Uri.EscapeDataString(next) : "");
        return (link, expires);
    }

    /// <summary>Starts a device-code login: mails a magic link bound to it and returns the codes.</summary>
    public async Task<StartDeviceLoginResponse> StartDeviceLoginAsync(string email, string clientName, CancellationToken ct)
    {
        var normalised = NormaliseEmail(email, "email");
        var deviceCode = Secrets.NewToken("mdc");
        var now = clock.GetUtcNow();
        var expires = now.AddMinutes(Limits.DeviceCodeTtlMinutes);
        var row = new DeviceLoginRow
        {
            DeviceLoginId = Ids.New("dlg"),
            DeviceCodeHash = Secrets.Hash(deviceCode),
            UserCode = Secrets.NewUserCode(),
            Email = normalised,
            ClientName = string.IsNullOrWhiteSpace(clientName) ? "cli" : clientName.Trim(),
            State = (int)DeviceLoginState.Pending,
            CreateTimeMs = now.ToUnixTimeMilliseconds(),
            ExpireTimeMs = expires.ToUnixTimeMilliseconds(),
        };
        await identity.InsertDeviceLoginAsync(row, ct);
        await SendLinkAsync(normalised, row.DeviceLoginId, row.UserCode, ct);
        return new StartDeviceLoginResponse
        {
            DeviceCode = deviceCode,
            UserCode = row.UserCode,
            ExpireTime = Timestamp.FromDateTimeOffset(expires),
            PollIntervalMs = Limits.DeviceCodePollIntervalMs,
        };
    }

    /// <summary>Polls a device-code login; hands out the session token exactly once after approval.</summary>
    public async Task<PollDeviceLoginResponse> PollDeviceLoginAsync(string deviceCode, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(deviceCode))
        {
            throw RpcErrors.Required("device_code");
        }

        var login = await identity.FindDeviceLoginByCodeHashAsync(Secrets.Hash(deviceCode), ct)
                    ?? throw RpcErrors.NotFound("device_login", "device_code");
        var state = (DeviceLoginState)login.State;
        if (state == DeviceLoginState.Pending && login.ExpireTimeMs <= NowMs)
        {
            return new PollDeviceLoginResponse { State = DeviceLoginState.Expired };
        }

        if (state != DeviceLoginState.Approved || login.ApprovedUserId is null)
        {
            return new PollDeviceLoginResponse { State = state };
        }

        return await database.InTransactionAsync(async (c, tx) =>
        {
            var user = await c.QuerySingleAsync<UserRow>(Database.Command(
                "SELECT user_id, email, display_name, username, create_time_ms FROM users WHERE user_id = @id", new { id = login.ApprovedUserId }, ct, tx));
            var response = new PollDeviceLoginResponse { State = DeviceLoginState.Approved, User = ToProto(user) };
            if (await IdentityRepository.MarkDeviceLoginDeliveredAsync(c, tx, login.DeviceLoginId, ct))
            {
                response.SessionToken = (await NewSessionAsync(c, tx, user, login.ClientName, ct)).Token;
            }

            return response;
        }, ct);
    }

    /// <summary>Approves a pending device-code login (by its user code) as the caller.</summary>
    public async Task ApproveDeviceLoginAsync(Caller caller, string userCode, CancellationToken ct)
    {
        var code = (userCode ?? "").Trim().ToUpperInvariant();
        if (code.Length == 0)
        {
            throw RpcErrors.Required("user_code");
        }

        var approved = await database.RunAsync(c => IdentityRepository.ApproveDeviceLoginAsync(c, null, null, code, caller.UserId,
            (int)DeviceLoginState.Approved, (int)DeviceLoginState.Pending, NowMs, ct), ct);
        if (!approved)
        {
            throw RpcErrors.NotFound("device_login", code);
        }
    }

    /// <summary>The caller's sessions.</summary>
    public async Task<IReadOnlyList<Session>> ListSessionsAsync(Caller caller, CancellationToken ct) =>
        (await identity.ListSessionsAsync(caller.UserId, ct)).Select(ToProto).ToList();

    /// <summary>Revokes one of the caller's sessions.</summary>
    public async Task RevokeSessionAsync(Caller caller, string sessionId, CancellationToken ct)
    {
        if (!await identity.RevokeSessionAsync(caller.UserId, sessionId, ct))
        {
            throw RpcErrors.NotFound("session", sessionId);
        }
    }

    /// <summary>The caller as a User.</summary>
    public async Task<User> GetUserAsync(Caller caller, CancellationToken ct) =>
        ToProto(await identity.GetUserAsync(caller.UserId, ct) ?? throw RpcErrors.Unauthenticated("user no longer exists", ErrorReasons.SessionInvalid));

    /// <summary>Maps a stored user.</summary>
    public static User ToProto(UserRow u) => new()
    {
        UserId = u.UserId,
        Email = u.Email,
        DisplayName = u.DisplayName,
        Username = u.Username,
        CreateTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(u.CreateTimeMs)),
    };

    private static Session ToProto(SessionRow s) => new()
    {
        SessionId = s.SessionId,
        UserId = s.UserId,
        ClientName = s.ClientName,
        CreateTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(s.CreateTimeMs)),
        ExpireTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(s.ExpireTimeMs)),
        Revoked = s.Revoked,
    };

    private async Task<DateTimeOffset> SendLinkAsync(string email, string? deviceLoginId, string? userCode, CancellationToken ct)
    {
        var token = Secrets.NewToken("mlt");
        var now = clock.GetUtcNow();
        var expires = now.AddMinutes(Limits.MagicLinkTtlMinutes);
        await identity.InsertMagicLinkAsync(new MagicLinkRow
        {
            TokenHash = Secrets.Hash(token),
            Email = email,
            DeviceLoginId = deviceLoginId,
            CreateTimeMs = now.ToUnixTimeMilliseconds(),
            ExpireTimeMs = expires.ToUnixTimeMilliseconds(),
        }, ct);
        var link = endpoint.PublicUrl + "/auth/magic?token=" + Uri.EscapeDataString(token);
        await sender.SendAsync(email, link, userCode, ct);
        return expires;
    }

    private async Task<(UserRow User, string? DeviceLoginId)> ConsumeLinkAsync(DbConnection c, DbTransaction tx, string token, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(token))
        {
            throw RpcErrors.Required("token");
        }

        var link = await IdentityRepository.ConsumeMagicLinkAsync(c, tx, Secrets.Hash(token), NowMs, ct)
                   ?? throw RpcErrors.Unauthenticated("magic link is unknown, already used or expired; request a new one", ErrorReasons.MagicLinkInvalid);
        var user = await IdentityRepository.FindUserByEmailAsync(c, tx, link.Email, ct) ?? await CreateUserAsync(c, tx, link.Email, ct);

        return (user, link.DeviceLoginId);
    }

    /// <summary>A new session for a user another login method (passkey, OIDC) has authenticated.</summary>
    public Task<IssuedSession> IssueSessionAsync(UserRow user, string clientName, CancellationToken ct) =>
        database.InTransactionAsync((c, tx) => NewSessionAsync(c, tx, user, clientName, ct), ct);

    /// <summary>The user with this address, created when unknown (the first login signs up, as with magic links).</summary>
    public Task<UserRow> FindOrCreateUserAsync(string email, CancellationToken ct)
    {
        var normalised = NormaliseEmail(email, "email");
        return database.InTransactionAsync(async (c, tx) =>
        {
            return await IdentityRepository.FindUserByEmailAsync(c, tx, normalised, ct) ?? await CreateUserAsync(c, tx, normalised, ct);
        }, ct);
    }

    /// <summary>The user with this address, or null (no sign-up).</summary>
    public Task<UserRow?> FindUserAsync(string email, CancellationToken ct)
    {
        var normalised = NormaliseEmail(email, "email");
        return database.InTransactionAsync((c, tx) => IdentityRepository.FindUserByEmailAsync(c, tx, normalised, ct), ct);
    }

    private async Task<UserRow> CreateUserAsync(DbConnection c, DbTransaction tx, string email, CancellationToken ct)
    {
        var localPart = email.Split('@')[0];
        var username = string.Concat(localPart.Where(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.'));
        var taken = await c.ExecuteScalarAsync<long>(Database.Command("SELECT COUNT(*) FROM users WHERE username = @username", new { username }, ct, tx));
        var user = new UserRow
        {
            UserId = Ids.New("usr"),
            Email = email,
            DisplayName = localPart,
            Username = taken > 0 || username.Length == 0 ? username + "-" + Ids.RandomString(6) : username,
            CreateTimeMs = NowMs,
        };
        await IdentityRepository.InsertUserAsync(c, tx, user, ct);
        return user;
    }

    private async Task<IssuedSession> NewSessionAsync(DbConnection c, DbTransaction tx, UserRow user, string clientName, CancellationToken ct)
    {
        var token = Secrets.NewToken("mss");
        var now = clock.GetUtcNow();
        var row = new SessionRow
        {
            SessionId = Ids.New("ses"),
            UserId = user.UserId,
            TokenHash = Secrets.Hash(token),
            ClientName = string.IsNullOrWhiteSpace(clientName) ? "client" : clientName.Trim(),
            CreateTimeMs = now.ToUnixTimeMilliseconds(),
            ExpireTimeMs = now.AddDays(Limits.SessionLifetimeDays).ToUnixTimeMilliseconds(),
        };
        await IdentityRepository.InsertSessionAsync(c, tx, row, ct);
        return new IssuedSession(ToProto(user), token, ToProto(row));
    }

    private static string NormaliseEmail(string? email, string field)
    {
        var trimmed = (email ?? "").Trim().ToLowerInvariant();
        if (trimmed.Length is 0 or > 254 || !System.Net.Mail.MailAddress.TryCreate(trimmed, out var parsed) || parsed.Address != trimmed)
        {
            throw RpcErrors.InvalidArgument(field, "a valid email address is required");
        }

        return trimmed;
    }
}

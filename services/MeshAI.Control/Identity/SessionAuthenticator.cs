using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Identity;

/// <summary>
/// The authenticated user behind a call. Calls made with an API key carry its id, the one network it is scoped to and its
/// scopes; <see cref="MeshAI.Control.Networks.NetworkAccess"/> refuses every other network for them.
/// </summary>
public sealed record Caller(string UserId, string Email, string SessionId, string? ApiKeyId = null, string? ApiKeyNetworkId = null, IReadOnlyList<string>? Scopes = null)
{
    /// <summary>True when the call was made with an API key rather than a session.</summary>
    public bool IsApiKey => ApiKeyId is not null;
}

/// <summary>Resolves "authorization: Bearer &lt;session token or API key&gt;" to a user; anything else is UNAUTHENTICATED. The result is cached on the call.</summary>
public sealed class SessionAuthenticator(IdentityRepository identity, SecurityRepository security, TimeProvider clock, MeshAI.Control.Security.AccessCache cache)
{
    private const string Scheme = "Bearer ";

    /// <summary>The caller of a gRPC call, or UNAUTHENTICATED.</summary>
    public async Task<Caller> RequireAsync(ServerCallContext context)
    {
        if (context.UserState.TryGetValue(CallerKey, out var cached) && cached is Caller known)
        {
            return known;
        }

        var caller = await RequireAsync(context.RequestHeaders.GetValue("authorization"), context.CancellationToken);
        context.UserState[CallerKey] = caller;
        return caller;
    }

    /// <summary>Key of the authenticated caller in ServerCallContext.UserState.</summary>
    public static readonly object CallerKey = new();

    /// <summary>The caller for a raw authorization header value, or UNAUTHENTICATED.</summary>
    public async Task<Caller> RequireAsync(string? authorizationHeader, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(authorizationHeader) || !authorizationHeader.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            throw RpcErrors.Unauthenticated("sign in first: send 'authorization: Bearer <session token>'", ErrorReasons.SessionRequired);
        }

        var token = authorizationHeader[Scheme.Length..].Trim();
        var tokenHash = Secrets.Hash(token);
        if (token.StartsWith(ApiKeys.SecretPrefix, StringComparison.Ordinal))
        {
            return await cache.CallerAsync(tokenHash, async () =>
                   {
                       var key = await security.FindLiveApiKeyAsync(tokenHash, cancellationToken)
                                 ?? throw RpcErrors.Unauthenticated("API key is unknown or revoked", ErrorReasons.ApiKeyInvalid);
                       var owner = await identity.GetUserAsync(key.UserId, cancellationToken) ?? throw RpcErrors.Unauthenticated("API key owner no longer exists", ErrorReasons.ApiKeyInvalid);
                       return (new Caller(owner.UserId, owner.Email, "", key.ApiKeyId, key.NetworkId, key.Scopes.Split(',', StringSplitOptions.RemoveEmptyEntries)), long.MaxValue);
                   })
                   ?? throw RpcErrors.Unauthenticated("API key is unknown or revoked", ErrorReasons.ApiKeyInvalid);
        }

        // A cached session is kept no longer than it lives; a revoked one is forgotten at once (AccessCache.CallersChanged).
        return await cache.CallerAsync(tokenHash, async () =>
               {
                   var found = await identity.FindLiveSessionAsync(tokenHash, clock.GetUtcNow().ToUnixTimeMilliseconds(), cancellationToken);
                   return found is { } f ? (new Caller(f.User.UserId, f.User.Email, f.Session.SessionId), f.Session.ExpireTimeMs) : null;
               })
               ?? throw RpcErrors.Unauthenticated("session is unknown, expired or revoked; sign in again", ErrorReasons.SessionInvalid);
    }
}

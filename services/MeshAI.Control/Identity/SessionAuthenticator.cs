using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Identity;

/// <summary>The authenticated user behind a call.</summary>
public sealed record Caller(string UserId, string Email, string SessionId);

/// <summary>Resolves "authorization: Bearer &lt;session token&gt;" to a user; anything else is UNAUTHENTICATED.</summary>
public sealed class SessionAuthenticator(IdentityRepository identity, TimeProvider clock)
{
    private const string Scheme = "Bearer ";

    /// <summary>The caller of a gRPC call, or UNAUTHENTICATED.</summary>
    public Task<Caller> RequireAsync(ServerCallContext context)
    {
        var header = context.RequestHeaders.GetValue("authorization");
        return RequireAsync(header, context.CancellationToken);
    }

    /// <summary>The caller for a raw authorization header value, or UNAUTHENTICATED.</summary>
    public async Task<Caller> RequireAsync(string? authorizationHeader, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(authorizationHeader) || !authorizationHeader.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            throw RpcErrors.Unauthenticated("sign in first: send 'authorization: Bearer <session token>'");
        }

        var token = authorizationHeader[Scheme.Length..].Trim();
        var found = await identity.FindLiveSessionAsync(Secrets.Hash(token), clock.GetUtcNow().ToUnixTimeMilliseconds(), cancellationToken);
        if (found is null)
        {
            throw RpcErrors.Unauthenticated("session is unknown, expired or revoked; sign in again");
        }

        return new Caller(found.Value.User.UserId, found.Value.User.Email, found.Value.Session.SessionId);
    }
}

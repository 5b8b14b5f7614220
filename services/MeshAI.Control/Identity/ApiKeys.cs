using Google.Protobuf.WellKnownTypes;
using MeshAI.Common;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Audit.V1;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Security;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Identity;

/// <summary>
/// API keys for SDK use: scoped to one network and a set of scopes, shown once, stored as a SHA-256 hash, revocable (the
/// next call with a revoked key is UNAUTHENTICATED). A key acts as its user, so removing the user from the network also
/// ends the key's access.
/// </summary>
public sealed class ApiKeys(SecurityRepository store, NetworkAccess access, AuditLog audit, IOptions<SecurityOptions> options, TimeProvider clock)
{
    /// <summary>Prefix of every API key secret (how the authenticator tells them from session tokens).</summary>
    public const string SecretPrefix = "mak_";

    /// <summary>
    /// Scopes a key may carry; "jobs" covers plan/estimate/submit/watch/get/list/cancel/explain and the OpenAI-compatible
    /// gateway; "metrics:read" lets an admin's key scrape the network's own metrics (not granted by default).
    /// </summary>
    public static readonly IReadOnlySet<string> KnownScopes = new HashSet<string>(StringComparer.Ordinal) { "jobs", "devices:read", "ledger:read", "metrics:read" };

    /// <summary>Creates a key (sessions only: a key cannot mint keys) for a network the caller is an admin or member of.</summary>
    public async Task<CreateApiKeyResponse> CreateAsync(Caller caller, CreateApiKeyRequest request, CancellationToken ct)
    {
        if (caller.IsApiKey)
        {
            throw RpcErrors.PermissionDenied("API keys cannot create API keys; sign in", ErrorReasons.SessionOnly);
        }

        await access.RequireMemberOrAdminAsync(caller, request.NetworkId, "create API keys", ct);
        var name = (request.Name ?? "").Trim();
        if (name.Length == 0)
        {
            throw RpcErrors.Required("name");
        }

        var scopes = request.Scopes.Count == 0 ? options.Value.DefaultApiKeyScopes.ToList() : request.Scopes.Distinct(StringComparer.Ordinal).ToList();
        var unknown = scopes.FirstOrDefault(s => !KnownScopes.Contains(s));
        if (unknown is not null)
        {
            throw RpcErrors.InvalidArgument("scopes", $"unknown scope '{unknown}'; known: {string.Join(", ", KnownScopes)}");
        }

        var secret = SecretPrefix + Secrets.NewToken("k")[2..];
        var row = new ApiKeyRow
        {
            ApiKeyId = Ids.New("key"),
            NetworkId = request.NetworkId,
            UserId = caller.UserId,
            Name = name,
            Scopes = string.Join(',', scopes),
            Prefix = secret[..12],
            SecretHash = Secrets.Hash(secret),
            CreateTimeMs = clock.GetUtcNow().ToUnixTimeMilliseconds(),
        };
        await store.InsertApiKeyAsync(row, ct);
        await audit.RecordAsync(row.NetworkId, caller.UserId, AuditAction.ApiKeyCreated, row.ApiKeyId, new Dictionary<string, string> { ["name"] = name, ["scopes"] = row.Scopes }, ct);
        return new CreateApiKeyResponse { ApiKey = ToProto(row), Secret = secret };
    }

    /// <summary>The caller's keys in the network (admins see everyone's).</summary>
    public async Task<IReadOnlyList<ApiKey>> ListAsync(Caller caller, string networkId, CancellationToken ct)
    {
        var membership = await access.RequireMemberAsync(caller, networkId, ct);
        return (await store.ListApiKeysAsync(networkId, membership.IsAdmin ? null : caller.UserId, ct)).Select(ToProto).ToList();
    }

    /// <summary>Revokes a key (its owner or an admin of its network).</summary>
    public async Task RevokeAsync(Caller caller, string apiKeyId, CancellationToken ct)
    {
        var row = string.IsNullOrEmpty(apiKeyId) ? null : await store.GetApiKeyAsync(apiKeyId, ct);
        if (row is null)
        {
            throw RpcErrors.NotFound("api_key", apiKeyId ?? "");
        }

        if (row.UserId != caller.UserId)
        {
            try
            {
                await access.RequireAdminAsync(caller, row.NetworkId, "revoke other people's API keys", ct);
            }
            catch (Grpc.Core.RpcException)
            {
                throw RpcErrors.NotFound("api_key", apiKeyId); // do not reveal other people's keys
            }
        }

        if (await store.RevokeApiKeyAsync(row.ApiKeyId, clock.GetUtcNow().ToUnixTimeMilliseconds(), ct))
        {
            await audit.RecordAsync(row.NetworkId, caller.UserId, AuditAction.ApiKeyRevoked, row.ApiKeyId, null, ct);
        }
    }

    private static ApiKey ToProto(ApiKeyRow row) => new()
    {
        ApiKeyId = row.ApiKeyId,
        NetworkId = row.NetworkId,
        UserId = row.UserId,
        Name = row.Name,
        Scopes = { row.Scopes.Split(',', StringSplitOptions.RemoveEmptyEntries) },
        CreateTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(row.CreateTimeMs)),
        Revoked = row.Revoked,
        Prefix = row.Prefix,
    };
}

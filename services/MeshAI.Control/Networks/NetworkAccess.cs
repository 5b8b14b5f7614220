using MeshAI.Common;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Networks;

/// <summary>An active membership: the network row and the caller's role in it.</summary>
public sealed record Membership(NetworkRow Network, NetworkSettings Settings, Role Role)
{
    /// <summary>True for admins.</summary>
    public bool IsAdmin => Role == Role.Admin;
}

/// <summary>Network-scoped authorisation: non-members get NOT_FOUND, so a network's existence is never revealed.</summary>
public sealed class NetworkAccess(NetworkRepository networks, MeshAI.Control.Security.AccessCache cache)
{
    /// <summary>The caller's active membership, or NOT_FOUND; read from the store (for reads that must see the latest write: settings edits, member administration, long-lived streams re-checking).</summary>
    public Task<Membership> RequireMemberAsync(Caller caller, string? networkId, CancellationToken ct) => RequireAsync(caller, networkId, cached: false, ct);

    /// <summary>
    /// The same check answered from the authorisation cache when it can be (<see cref="MeshAI.Control.Security.AccessCache"/>:
    /// at most <c>Control:Security:AccessCacheTtlMs</c> old, cleared at once by every membership or settings change): the
    /// authorisation layer and the job hot path (#11).
    /// </summary>
    public Task<Membership> RequireMemberCachedAsync(Caller caller, string? networkId, CancellationToken ct) => RequireAsync(caller, networkId, cached: true, ct);

    private async Task<Membership> RequireAsync(Caller caller, string? networkId, bool cached, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (string.IsNullOrEmpty(networkId))
        {
            throw RpcErrors.Required("network_id");
        }

        if (!Ids.IsValid(networkId, "net"))
        {
            throw RpcErrors.NotFound("network", networkId);
        }

        if (caller.ApiKeyNetworkId is not null && !string.Equals(caller.ApiKeyNetworkId, networkId, StringComparison.Ordinal))
        {
            throw RpcErrors.NotFound("network", networkId); // an API key sees exactly one network
        }

        var membership = cached
            ? await cache.MembershipAsync(networkId, caller.UserId, () => ReadAsync(networkId, caller.UserId, ct))
            : await ReadAsync(networkId, caller.UserId, ct);
        return membership ?? throw RpcErrors.NotFound("network", networkId);
    }

    private async Task<Membership?> ReadAsync(string networkId, string userId, CancellationToken ct)
    {
        var member = await networks.GetMemberAsync(networkId, userId, ct);
        if (member is null || member.State != (int)MemberState.Active)
        {
            return null;
        }

        var network = await networks.GetNetworkAsync(networkId, ct);
        return network is null ? null : new Membership(network, NetworkDefaults.FromJson(network.SettingsJson), (Role)member.Role);
    }

    /// <summary>The caller's membership when it is admin, else PERMISSION_DENIED (NOT_FOUND for non-members).</summary>
    public async Task<Membership> RequireAdminAsync(Caller caller, string? networkId, string action, CancellationToken ct)
    {
        var membership = await RequireMemberAsync(caller, networkId, ct);
        if (!membership.IsAdmin)
        {
            throw RpcErrors.PermissionDenied($"only admins can {action}", ErrorReasons.AdminRequired);
        }

        return membership;
    }

    /// <summary>The caller's membership when it is admin or member (not guest), else PERMISSION_DENIED.</summary>
    public async Task<Membership> RequireMemberOrAdminAsync(Caller caller, string? networkId, string action, CancellationToken ct)
    {
        var membership = await RequireMemberAsync(caller, networkId, ct);
        if (membership.Role is not (Role.Admin or Role.Member))
        {
            throw RpcErrors.PermissionDenied($"guests cannot {action}", ErrorReasons.MemberRequired);
        }

        return membership;
    }
}

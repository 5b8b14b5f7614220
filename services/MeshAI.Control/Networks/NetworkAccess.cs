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
public sealed class NetworkAccess(NetworkRepository networks)
{
    // Per call, not across calls: a Caller is built once per call (SessionAuthenticator keeps it in the call's UserState), so
    // the membership the authorisation interceptor read is reused by the service behind it (2 store reads and a settings
    // parse fewer per network-scoped call, #11). Keyed by the Caller object's identity; it goes with the call. A revoke or
    // role change is seen by the next call exactly as before.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<Caller, Tuple<string, Membership>> _thisCall = new();

    /// <summary>The caller's active membership, or NOT_FOUND.</summary>
    public async Task<Membership> RequireMemberAsync(Caller caller, string? networkId, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (networkId is not null && _thisCall.TryGetValue(caller, out var known) && string.Equals(known.Item1, networkId, StringComparison.Ordinal))
        {
            return known.Item2;
        }

        var membership = await ReadMembershipAsync(caller, networkId, ct);
        _thisCall.AddOrUpdate(caller, Tuple.Create(networkId!, membership));
        return membership;
    }

    private async Task<Membership> ReadMembershipAsync(Caller caller, string? networkId, CancellationToken ct)
    {
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

        var member = await networks.GetMemberAsync(networkId, caller.UserId, ct);
        if (member is null || member.State != (int)MemberState.Active)
        {
            throw RpcErrors.NotFound("network", networkId);
        }

        var network = await networks.GetNetworkAsync(networkId, ct) ?? throw RpcErrors.NotFound("network", networkId);
        return new Membership(network, NetworkDefaults.FromJson(network.SettingsJson), (Role)member.Role);
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

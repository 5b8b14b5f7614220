using Google.Protobuf.WellKnownTypes;
using MeshAI.Common;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Audit.V1;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Security;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Networks;

/// <summary>
/// Members of a network: invites (email, username, share link), acceptance with approval (admin by default, auto by
/// domain/allowlist when configured), role changes and removal. Removal takes effect on the removed user's next call
/// (every call re-reads the membership) and revokes their devices and API keys in the network at once.
/// </summary>
public sealed class MemberDirectory(
    NetworkRepository networks,
    SecurityRepository store,
    IdentityRepository identity,
    NetworkAccess access,
    DeviceRepository devices,
    IJobDispatcher dispatcher,
    IPresenceDirectory presence,
    AuditLog audit,
    ServerEndpoint endpoint,
    IOptions<SecurityOptions> options,
    TimeProvider clock,
    NetworkUpdates updates)
{
    /// <summary>Members of the network (admins and members; guests have limited visibility).</summary>
    public async Task<IReadOnlyList<Member>> ListAsync(Caller caller, string networkId, CancellationToken ct)
    {
        await access.RequireMemberOrAdminAsync(caller, networkId, "list members", ct);
        return (await networks.ListMembersAsync(networkId, ct)).Select(ToProto).ToList();
    }

    /// <summary>Admin: creates an invite and returns its secret link once.</summary>
    public async Task<InviteMemberResponse> InviteAsync(Caller caller, InviteMemberRequest request, CancellationToken ct)
    {
        var membership = await access.RequireAdminAsync(caller, request.NetworkId, "invite members", ct);
        var invitee = (request.Invitee ?? "").Trim();
        switch (request.InviteType)
        {
            case InviteType.Email when invitee.Length is < 3 or > 254 || !invitee.Contains('@', StringComparison.Ordinal):
                throw RpcErrors.InvalidArgument("invitee", "an email address is required for EMAIL invites");
            case InviteType.Username when invitee.Length is 0 or > 64:
                throw RpcErrors.InvalidArgument("invitee", "a username is required for USERNAME invites");
            case InviteType.ShareLinkWithApproval when invitee.Length > 0:
                throw RpcErrors.InvalidArgument("invitee", "share links name nobody; leave invitee empty");
            case InviteType.Unspecified:
                throw RpcErrors.InvalidArgument("invite_type", "EMAIL, USERNAME or SHARE_LINK_WITH_APPROVAL");
        }

        var role = request.Role == Role.Unspecified ? Role.Member : request.Role;
        if (!System.Enum.IsDefined(role))
        {
            throw RpcErrors.InvalidArgument("role", "admin, member or guest");
        }

        var secret = Secrets.NewToken("inv");
        var now = clock.GetUtcNow();
        var row = new InviteRow
        {
            InviteId = Ids.New("inv"),
            NetworkId = membership.Network.NetworkId,
            InviteType = (int)request.InviteType,
            Invitee = request.InviteType == InviteType.Email ? invitee.ToLowerInvariant() : invitee,
            Role = (int)role,
            TokenHash = Secrets.Hash(secret),
            CreatedByUserId = caller.UserId,
            CreateTimeMs = now.ToUnixTimeMilliseconds(),
            ExpireTimeMs = now.AddDays(options.Value.InviteTtlDays).ToUnixTimeMilliseconds(),
        };
        await store.InsertInviteAsync(row, ct);
        await audit.RecordAsync(row.NetworkId, caller.UserId, AuditAction.Invite, row.InviteId,
            new Dictionary<string, string> { ["invite_type"] = request.InviteType.ToString(), ["invitee"] = row.Invitee, ["role"] = role.ToString() }, ct);
        return new InviteMemberResponse { Invite = ToProto(row), InviteLink = $"{endpoint.PublicUrl}/invite?token={Uri.EscapeDataString(secret)}" };
    }

    /// <summary>Admin: the network's invites (secrets are never shown again).</summary>
    public async Task<IReadOnlyList<Invite>> ListInvitesAsync(Caller caller, string networkId, CancellationToken ct)
    {
        await access.RequireAdminAsync(caller, networkId, "list invites", ct);
        return (await store.ListInvitesAsync(networkId, ct)).Select(ToProto).ToList();
    }

    /// <summary>
    /// Accepts an invite as the caller. Email and username invites name one person (the admin's choice is the approval):
    /// the caller becomes active. Share links leave the caller pending approval unless the network auto-approves their
    /// email domain or address.
    /// </summary>
    public async Task<Member> AcceptAsync(Caller caller, string inviteToken, CancellationToken ct)
    {
        var token = ExtractToken(inviteToken);
        if (token.Length == 0)
        {
            throw RpcErrors.Required("invite_token");
        }

        var invite = await store.FindInviteAsync(Secrets.Hash(token), ct);
        if (invite is null || invite.Revoked)
        {
            throw RpcErrors.NotFound("invite", "invite_token");
        }

        if (invite.ExpireTimeMs <= clock.GetUtcNow().ToUnixTimeMilliseconds())
        {
            throw RpcErrors.FailedPrecondition("INVITE", invite.InviteId, "invite expired; ask an admin for a new one", ErrorReasons.InviteExpired);
        }

        var user = await identity.GetUserAsync(caller.UserId, ct) ?? throw RpcErrors.Unauthenticated("unknown user", ErrorReasons.SessionInvalid);
        var type = (InviteType)invite.InviteType;
        if (type == InviteType.Email && !string.Equals(user.Email, invite.Invitee, StringComparison.OrdinalIgnoreCase))
        {
            throw RpcErrors.PermissionDenied("this invite is for another email address", ErrorReasons.InviteForAnotherUser);
        }

        if (type == InviteType.Username && !string.Equals(user.Username, invite.Invitee, StringComparison.Ordinal))
        {
            throw RpcErrors.PermissionDenied("this invite is for another username", ErrorReasons.InviteForAnotherUser);
        }

        var existing = await networks.GetMemberAsync(invite.NetworkId, caller.UserId, ct);
        if (existing is not null && existing.State is (int)MemberState.Active or (int)MemberState.PendingApproval)
        {
            return ToProto(existing);
        }

        if (!await store.UseInviteAsync(invite.InviteId, singleUse: type != InviteType.ShareLinkWithApproval, ct))
        {
            throw RpcErrors.FailedPrecondition("INVITE", invite.InviteId, "invite already used", ErrorReasons.InviteAlreadyUsed);
        }

        var network = await networks.GetNetworkAsync(invite.NetworkId, ct) ?? throw RpcErrors.NotFound("invite", "invite_token");
        var settings = NetworkDefaults.FromJson(network.SettingsJson);
        var autoApproved = type != InviteType.ShareLinkWithApproval || AutoApproves(settings, user.Email);
        var state = autoApproved ? MemberState.Active : MemberState.PendingApproval;
        await store.UpsertMemberAsync(new MemberRow
        {
            NetworkId = invite.NetworkId, UserId = caller.UserId, Role = invite.Role, State = (int)state, JoinTimeMs = clock.GetUtcNow().ToUnixTimeMilliseconds(),
        }, (int)MemberState.Removed, ct);
        if (autoApproved)
        {
            await audit.RecordAsync(invite.NetworkId, caller.UserId, AuditAction.Approval, caller.UserId,
                new Dictionary<string, string> { ["invite_id"] = invite.InviteId, ["approved_by"] = type == InviteType.ShareLinkWithApproval ? "auto_approve_allowlist" : "invite", ["role"] = ((Role)invite.Role).ToString() }, ct);
        }

        return ToProto((await networks.GetMemberAsync(invite.NetworkId, caller.UserId, ct))!);
    }

    /// <summary>Admin: activates a member pending approval.</summary>
    public async Task<Member> ApproveAsync(Caller caller, string networkId, string userId, CancellationToken ct)
    {
        await access.RequireAdminAsync(caller, networkId, "approve members", ct);
        var member = await RequireMemberRowAsync(networkId, userId, ct);
        if (member.State == (int)MemberState.Active)
        {
            return ToProto(member);
        }

        if (!await store.SetMemberStateAsync(networkId, userId, (int)MemberState.PendingApproval, (int)MemberState.Active, ct))
        {
            throw RpcErrors.FailedPrecondition("MEMBER", userId, "only members pending approval can be approved", ErrorReasons.MemberNotPending);
        }

        await audit.RecordAsync(networkId, caller.UserId, AuditAction.Approval, userId, new Dictionary<string, string> { ["approved_by"] = "admin" }, ct);
        return ToProto((await networks.GetMemberAsync(networkId, userId, ct))!);
    }

    /// <summary>Admin: changes a member's role; the last admin cannot be demoted.</summary>
    public async Task<Member> UpdateRoleAsync(Caller caller, UpdateMemberRoleRequest request, CancellationToken ct)
    {
        await access.RequireAdminAsync(caller, request.NetworkId, "change roles", ct);
        if (request.Role == Role.Unspecified || !System.Enum.IsDefined(request.Role))
        {
            throw RpcErrors.InvalidArgument("role", "admin, member or guest");
        }

        var member = await RequireMemberRowAsync(request.NetworkId, request.UserId, ct);
        if (member.Role == (int)Role.Admin && request.Role != Role.Admin)
        {
            await EnsureAnotherAdminAsync(request.NetworkId, request.UserId, ct);
        }

        await store.SetMemberRoleAsync(request.NetworkId, request.UserId, (int)request.Role, ct);
        await audit.RecordAsync(request.NetworkId, caller.UserId, AuditAction.RoleChange, request.UserId,
            new Dictionary<string, string> { ["from"] = ((Role)member.Role).ToString(), ["to"] = request.Role.ToString() }, ct);
        return ToProto((await networks.GetMemberAsync(request.NetworkId, request.UserId, ct))!);
    }

    /// <summary>Admin: removes a member, revoking their devices (streams cut now) and API keys in the network.</summary>
    public async Task<IReadOnlyList<string>> RemoveAsync(Caller caller, string networkId, string userId, CancellationToken ct)
    {
        await access.RequireAdminAsync(caller, networkId, "remove members", ct);
        var member = await RequireMemberRowAsync(networkId, userId, ct);
        if (member.State == (int)MemberState.Removed)
        {
            return [];
        }

        if (member.Role == (int)Role.Admin)
        {
            await EnsureAnotherAdminAsync(networkId, userId, ct);
        }

        await store.SetMemberStateAsync(networkId, userId, member.State, (int)MemberState.Removed, ct);
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var revoked = new List<string>();
        foreach (var (deviceId, serial) in await store.ListLiveDevicesOfOwnerAsync(networkId, userId, ct))
        {
            await devices.RevokeDeviceAsync(networkId, deviceId, serial, "owner removed from the network", now, ct);
            dispatcher.Cut(deviceId, CutReason.Revoked, "owner removed from the network");
            presence.Remove(deviceId);
            revoked.Add(deviceId);
            await audit.RecordAsync(networkId, caller.UserId, AuditAction.DeviceRevoked, deviceId, new Dictionary<string, string> { ["reason"] = "owner removed" }, ct);
        }

        await updates.PublishRevokedAsync(networkId, revoked, ct);
        foreach (var key in await store.ListApiKeysAsync(networkId, userId, ct))
        {
            await store.RevokeApiKeyAsync(key.ApiKeyId, now, ct);
        }

        await audit.RecordAsync(networkId, caller.UserId, AuditAction.MemberRemoved, userId,
            new Dictionary<string, string> { ["revoked_devices"] = string.Join(' ', revoked) }, ct);
        return revoked;
    }

    /// <summary>True when the network auto-approves <paramref name="email"/> (its address or "@domain"/"domain" is listed).</summary>
    public static bool AutoApproves(NetworkSettings settings, string email)
    {
        if (settings.MemberApprovalMode != MemberApprovalMode.AutoApproveDomainOrAllowlist)
        {
            return false;
        }

        var at = email.LastIndexOf('@');
        var domain = at >= 0 ? email[(at + 1)..] : "";
        return settings.AutoApproveAllowlist.Any(entry =>
        {
            var e = entry.Trim();
            return e.Contains('@', StringComparison.Ordinal) && !e.StartsWith('@')
                ? string.Equals(e, email, StringComparison.OrdinalIgnoreCase)
                : domain.Length > 0 && string.Equals(e.TrimStart('@'), domain, StringComparison.OrdinalIgnoreCase);
        });
    }

    private static string ExtractToken(string? tokenOrLink)
    {
        var text = (tokenOrLink ?? "").Trim();
        var at = text.IndexOf("token=", StringComparison.Ordinal);
        if (at < 0)
        {
            return text;
        }

        var value = text[(at + 6)..];
        var end = value.IndexOfAny(['&', '#']);
        return Uri.UnescapeDataString(end >= 0 ? value[..end] : value);
    }

    private async Task EnsureAnotherAdminAsync(string networkId, string userId, CancellationToken ct)
    {
        var admins = (await networks.ListMembersAsync(networkId, ct)).Count(m => m.Role == (int)Role.Admin && m.State == (int)MemberState.Active && m.UserId != userId);
        if (admins == 0)
        {
            throw RpcErrors.FailedPrecondition("LAST_ADMIN", userId, "a network needs at least one admin; promote someone else first", ErrorReasons.LastAdmin);
        }
    }

    private async Task<MemberRow> RequireMemberRowAsync(string networkId, string userId, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(userId))
        {
            throw RpcErrors.Required("user_id");
        }

        return await networks.GetMemberAsync(networkId, userId, ct) ?? throw RpcErrors.NotFound("member", userId);
    }

    private static Member ToProto(MemberRow m) => new()
    {
        NetworkId = m.NetworkId,
        UserId = m.UserId,
        Email = m.Email,
        DisplayName = m.DisplayName,
        Role = (Role)m.Role,
        State = (MemberState)m.State,
        JoinTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(m.JoinTimeMs)),
    };

    private static Invite ToProto(InviteRow r) => new()
    {
        InviteId = r.InviteId,
        NetworkId = r.NetworkId,
        InviteType = (InviteType)r.InviteType,
        Invitee = r.Invitee,
        Role = (Role)r.Role,
        ExpireTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(r.ExpireTimeMs)),
        CreatedByUserId = r.CreatedByUserId,
        Revoked = r.Revoked,
    };
}

using Grpc.Core;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Api;

/// <summary>meshai.network.v1.NetworkService: networks, members, invites and approvals, key rotation.</summary>
public sealed class NetworkApi(NetworkRegistry registry, NetworkSettingsEditor settingsEditor, MemberDirectory members, NetworkKeyRotation rotation, NetworkWatch watch, SessionAuthenticator auth, IOptions<ControlPlaneOptions> options) : NetworkService.NetworkServiceBase
{
    /// <inheritdoc />
    public override async Task<CreateNetworkResponse> CreateNetwork(CreateNetworkRequest request, ServerCallContext context) =>
        new() { Network = await registry.CreateAsync(await auth.RequireAsync(context), request, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<GetNetworkResponse> GetNetwork(GetNetworkRequest request, ServerCallContext context) =>
        new() { Network = await registry.GetAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<ListNetworksResponse> ListNetworks(ListNetworksRequest request, ServerCallContext context)
    {
        var caller = await auth.RequireAsync(context);
        var (networks, next) = await registry.ListAsync(caller, PageTokens.Size(request.PageSize, options.Value.Limits), request.PageToken, context.CancellationToken);
        return new ListNetworksResponse { Networks = { networks }, NextPageToken = next };
    }

    /// <inheritdoc />
    public override async Task<UpdateNetworkSettingsResponse> UpdateNetworkSettings(UpdateNetworkSettingsRequest request, ServerCallContext context) =>
        new() { Network = await settingsEditor.UpdateAsync(await auth.RequireAsync(context), request, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<ListMembersResponse> ListMembers(ListMembersRequest request, ServerCallContext context) =>
        new() { Members = { await members.ListAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken) } };

    /// <inheritdoc />
    public override async Task<InviteMemberResponse> InviteMember(InviteMemberRequest request, ServerCallContext context) =>
        await members.InviteAsync(await auth.RequireAsync(context), request, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<ListInvitesResponse> ListInvites(ListInvitesRequest request, ServerCallContext context) =>
        new() { Invites = { await members.ListInvitesAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken) } };

    /// <inheritdoc />
    public override async Task<AcceptInviteResponse> AcceptInvite(AcceptInviteRequest request, ServerCallContext context) =>
        new() { Member = await members.AcceptAsync(await auth.RequireAsync(context), request.InviteToken, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<ApproveMemberResponse> ApproveMember(ApproveMemberRequest request, ServerCallContext context) =>
        new() { Member = await members.ApproveAsync(await auth.RequireAsync(context), request.NetworkId, request.UserId, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<UpdateMemberRoleResponse> UpdateMemberRole(UpdateMemberRoleRequest request, ServerCallContext context) =>
        new() { Member = await members.UpdateRoleAsync(await auth.RequireAsync(context), request, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<RemoveMemberResponse> RemoveMember(RemoveMemberRequest request, ServerCallContext context) =>
        new() { RevokedDeviceIds = { await members.RemoveAsync(await auth.RequireAsync(context), request.NetworkId, request.UserId, context.CancellationToken) } };

    /// <inheritdoc />
    public override async Task<RotateNetworkKeysResponse> RotateNetworkKeys(RotateNetworkKeysRequest request, ServerCallContext context) =>
        await rotation.RotateAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);

    /// <inheritdoc />
    public override async Task WatchNetwork(WatchNetworkRequest request, IServerStreamWriter<WatchNetworkResponse> responseStream, ServerCallContext context) =>
        await watch.StreamAsync(await auth.RequireAsync(context), request.NetworkId, responseStream.WriteAsync, context.CancellationToken);
}

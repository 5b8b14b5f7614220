using Grpc.Core;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Api;

/// <summary>meshai.network.v1.NetworkService: create, get and list networks (members, invites and rotation arrive later: UNIMPLEMENTED).</summary>
public sealed class NetworkApi(NetworkRegistry registry, SessionAuthenticator auth, IOptions<ControlPlaneOptions> options) : NetworkService.NetworkServiceBase
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
}

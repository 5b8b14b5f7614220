using System.Globalization;
using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Model.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Models;

namespace MeshAI.Control.Api;

/// <summary>
/// meshai.model.v1.ModelService: publish (admins), get and list (members, or a device of the network that presents its
/// certificate and a proof in the <c>meshai-device-*</c> metadata).
/// </summary>
public sealed class ModelApi(ModelCatalog catalog, SessionAuthenticator auth) : ModelService.ModelServiceBase
{
    /// <inheritdoc />
    public override async Task<PublishModelManifestResponse> PublishModelManifest(PublishModelManifestRequest request, ServerCallContext context) =>
        new() { Manifest = await catalog.PublishAsync(await auth.RequireAsync(context), request, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<GetModelManifestResponse> GetModelManifest(GetModelManifestRequest request, ServerCallContext context)
    {
        await RequireReaderAsync(request.NetworkId, context);
        return new GetModelManifestResponse { Manifest = await catalog.GetAsync(request.NetworkId, request.Name, context.CancellationToken) };
    }

    /// <inheritdoc />
    public override async Task<ListModelManifestsResponse> ListModelManifests(ListModelManifestsRequest request, ServerCallContext context)
    {
        await RequireReaderAsync(request.NetworkId, context);
        return new ListModelManifestsResponse { Manifests = { await catalog.ListAsync(request.NetworkId, context.CancellationToken) } };
    }

    private async Task RequireReaderAsync(string networkId, ServerCallContext context)
    {
        var certificate = context.RequestHeaders.GetValueBytes(ModelManifests.DeviceCertificateHeader);
        if (certificate is null)
        {
            await catalog.RequireMemberAsync(await auth.RequireAsync(context), networkId, context.CancellationToken);
            return;
        }

        var proof = context.RequestHeaders.GetValueBytes(ModelManifests.DeviceProofHeader) ?? [];
        _ = long.TryParse(context.RequestHeaders.GetValue(ModelManifests.DeviceTimestampHeader), NumberStyles.Integer, CultureInfo.InvariantCulture, out var timestamp);
        await catalog.RequireDeviceAsync(certificate, timestamp, proof, networkId, context.CancellationToken);
    }
}

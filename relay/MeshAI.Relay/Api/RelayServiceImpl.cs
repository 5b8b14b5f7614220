using Grpc.Core;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Relay.Core;

namespace MeshAI.Relay.Api;

/// <summary>The relay's gRPC door: every stream is served by <see cref="RelayHub"/>.</summary>
public sealed class RelayServiceImpl : RelayService.RelayServiceBase
{
    private readonly RelayHub _hub;

    /// <summary>Creates the service over the hub.</summary>
    public RelayServiceImpl(RelayHub hub) => _hub = hub;

    /// <inheritdoc />
    public override Task Connect(IAsyncStreamReader<ConnectRequest> requestStream, IServerStreamWriter<ConnectResponse> responseStream, ServerCallContext context) =>
        _hub.ServeAsync(requestStream, responseStream, context.CancellationToken);
}

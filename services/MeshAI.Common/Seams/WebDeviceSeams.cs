using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Common.Seams;

/// <summary>
/// Implemented by the control plane; what a browser device's contributor page shows and enforces (the network's
/// mobile-safety rules, the admin's contribution switch, the device's work and credits today). The relay's gRPC-Web
/// surface asks it for an authenticated web session (docs/contributor.md).
/// </summary>
public interface IDeviceStatusSource
{
    /// <summary>The status of <paramref name="device"/> now.</summary>
    Task<GetDeviceStatusResponse> GetStatusAsync(DeviceIdentity device, CancellationToken cancellationToken);
}

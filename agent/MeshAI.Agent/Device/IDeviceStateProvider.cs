using MeshAI.Contracts.Device.V1;

namespace MeshAI.Agent.Device;

/// <summary>Reads the device's hardware and live state (battery, thermal, network, idle) for capability reports.</summary>
public interface IDeviceStateProvider
{
    /// <summary>A fresh report of what the platform exposes; workloads and RTT are filled in by the agent.</summary>
    CapabilityReport Capture();
}

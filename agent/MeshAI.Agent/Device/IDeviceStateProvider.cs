using MeshAI.Contracts.Device.V1;

namespace MeshAI.Agent.Device;

/// <summary>Reads the device's hardware and live state (battery, thermal, network, idle) for capability reports.</summary>
public interface IDeviceStateProvider
{
    /// <summary>A fresh report of what the platform exposes; workloads and RTT are filled in by the agent.</summary>
    CapabilityReport Capture();

    /// <summary>
    /// A fresh report of the live state the contribution rules read per offer (battery, network type, temperature, idle
    /// share, platform); a provider may leave out what does not change while the agent runs (RAM, GPU, LAN addresses, OS),
    /// which the heartbeat's <see cref="Capture"/> still reports. Never cached: it is read when called.
    /// </summary>
    CapabilityReport CaptureLive() => Capture();
}

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

    /// <summary>
    /// A fresh report of only the live fields named in <paramref name="reads"/> (what the contribution rules in force read,
    /// <see cref="Contribution.ContributionPolicy.LiveReads"/>); the fields not named keep their defaults. Never cached.
    /// A provider that cannot read fields separately returns <see cref="CaptureLive()"/> (issue #11).
    /// </summary>
    CapabilityReport CaptureLive(LiveReads reads) => CaptureLive();
}

/// <summary>The live device fields a per-offer contribution check reads (issue #11: an offer reads no more than its rules need).</summary>
[Flags]
public enum LiveReads
{
    /// <summary>No rule reads the device (manual or scheduled mode, contribution switched off).</summary>
    None = 0,

    /// <summary>Battery charge and charging state (/sys/class/power_supply).</summary>
    Battery = 1,

    /// <summary>Network type (route table, /sys/class/net).</summary>
    Network = 2,

    /// <summary>Hottest thermal zone (/sys/class/thermal).</summary>
    Thermal = 4,

    /// <summary>CPU idle share (/proc/stat).</summary>
    Idle = 8,

    /// <summary>Every live field.</summary>
    All = Battery | Network | Thermal | Idle,
}

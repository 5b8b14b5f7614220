using BenchmarkDotNet.Attributes;
using MeshAI.Agent.Contribution;
using MeshAI.Agent.Device;

namespace MeshAI.Bench;

/// <summary>
/// The agent's per-offer contribution check on this machine's real procfs/sysfs (issue #11): baseline = every live field
/// (what each offer read before), against only the fields the desktop and mobile defaults' rules read
/// (<see cref="ContributionPolicy.LiveReads"/>). Each includes the rules' evaluation.
/// </summary>
[MemoryDiagnoser]
public class DeviceReadBenchmarks
{
    private static readonly TimeOnly Noon = new(12, 0);
    private readonly LinuxDeviceStateProvider _provider = new();

    /// <summary>Every live field read, desktop rules evaluated (before).</summary>
    [Benchmark(Baseline = true)]
    public ContributionDecision AllLiveFields() => ContributionPolicy.DesktopDefaults.Evaluate(_provider.CaptureLive(LiveReads.All), Noon);

    /// <summary>Only what the desktop defaults read (the thermal zones).</summary>
    [Benchmark]
    public ContributionDecision DesktopDefaults() => ContributionPolicy.DesktopDefaults.Evaluate(_provider.CaptureLive(ContributionPolicy.DesktopDefaults.LiveReads), Noon);

    /// <summary>Only what the mobile defaults read (battery, network type, thermal zones).</summary>
    [Benchmark]
    public ContributionDecision MobileDefaults() => ContributionPolicy.MobileDefaults.Evaluate(_provider.CaptureLive(ContributionPolicy.MobileDefaults.LiveReads), Noon);
}

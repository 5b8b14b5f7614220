using BenchmarkDotNet.Attributes;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;

namespace MeshAI.Bench;

/// <summary>
/// Placement over a 10,000-device network (issue 5: under 1 ms): every eligibility filter including the policy engine,
/// linear scoring of the survivors and the top-k selection. Baseline: one pass picking the lowest-RTT online device
/// (the phase-0 rule with no filters), over the same candidates.
/// </summary>
[MemoryDiagnoser]
public class PlacementBenchmarks
{
    private readonly LinearPlacementPolicy _policy = new();
    private List<PlacementCandidate> _candidates = [];
    private PlacementRequest _request = null!;

    /// <summary>Number of online devices in the network.</summary>
    [Params(10_000)]
    public int Devices { get; set; }

    /// <summary>A seeded, mixed fleet: laptops, GPU boxes and phones (some on battery, some hot, some with contribution off).</summary>
    [GlobalSetup]
    public void Setup()
    {
        var r = new Random(42);
        _candidates = Enumerable.Range(0, Devices).Select(i =>
        {
            var kind = r.Next(10);
            var caps = new CapabilityReport
            {
                CpuCores = r.Next(2, 32), RamMb = r.Next(2_000, 64_000), IsMobile = kind < 3, GpuPresent = kind == 9, GpuVramMb = kind == 9 ? 24_000 : 0,
                NetworkType = kind < 3 && r.Next(2) == 0 ? NetworkType.Cellular : NetworkType.Wifi, IdleScore = r.NextDouble(), NetworkRttMs = r.Next(1, 400),
                ThermalStateOptional = (ThermalState)r.Next(1, 5), Workloads = { WorkloadClass.Embeddings, WorkloadClass.DiagnosticEcho },
            };
            if (kind < 5)
            {
                caps.BatteryStateOptional = new BatteryState { Percent = r.Next(5, 100), Charging = r.Next(2) == 0 };
            }

            var id = $"dev_{i:D6}";
            var enabled = r.Next(20) != 0;
            return new PlacementCandidate(
                new DeviceRow { DeviceId = id, NetworkId = "net_bench", ContributionEnabled = enabled, TrustLevel = r.Next(0, 3) },
                new PresenceRecord(id, "net_bench", "relay", caps, enabled, DateTimeOffset.UnixEpoch, caps.NetworkRttMs));
        }).ToList();
        var envelope = new JobEnvelope
        {
            JobId = "job_bench", NetworkId = "net_bench", WorkloadId = WorkloadClass.Embeddings, RoutingMode = RoutingMode.Auto,
            DataSensitivityTag = DataSensitivityTag.Private, ResourceRequest = new ResourceRequest { MinRamMb = 4_000 },
        };
        _request = new PlacementRequest(envelope, _candidates, new HashSet<string>(), NetworkDefaults.Create(0))
        {
            SubmitterRole = Role.Member,
            Policy = new CompiledPolicy(PolicyEngine.Defaults("net_bench")),
        };
    }

    /// <summary>Phase-0 style: the lowest RTT among online devices, no filters.</summary>
    [Benchmark(Baseline = true)]
    public string? LowestRttScan()
    {
        PlacementCandidate? best = null;
        foreach (var c in _candidates)
        {
            if (best is null || c.Presence.RttMs < best.Presence.RttMs || (c.Presence.RttMs == best.Presence.RttMs && string.CompareOrdinal(c.Device.DeviceId, best.Device.DeviceId) < 0))
            {
                best = c;
            }
        }

        return best?.Device.DeviceId;
    }

    /// <summary>The v1 scheduler: all filters (policy included), linear scoring, top-5.</summary>
    [Benchmark]
    public string? LinearPlacement() => _policy.Place(_request).Selected?.Device.DeviceId;
}

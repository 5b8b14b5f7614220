using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;

namespace MeshAI.Unit.Tests.Scheduling;

/// <summary>Builders for scheduler inputs.</summary>
internal static class SchedulingFixtures
{
    public const string NetworkId = "net_test";

    public static CapabilityReport Laptop(int rttMs = 10, double idle = 0.5) => new()
    {
        CpuCores = 8, RamMb = 16_384, Os = "linux", IsMobile = false, NetworkType = NetworkType.Ethernet, IdleScore = idle, NetworkRttMs = rttMs,
        ThermalStateOptional = ThermalState.Nominal, Workloads = { WorkloadClass.Embeddings, WorkloadClass.DiagnosticEcho, WorkloadClass.BatchJobsEvalOrSynth },
    };

    public static CapabilityReport Phone(bool charging = true, bool wifi = true, int battery = 80) => new()
    {
        CpuCores = 8, RamMb = 6_000, Os = "android", IsMobile = true, NetworkType = wifi ? NetworkType.Wifi : NetworkType.Cellular, IdleScore = 0.9,
        BatteryStateOptional = new BatteryState { Percent = battery, Charging = charging }, ThermalStateOptional = ThermalState.Nominal,
        Workloads = { WorkloadClass.Embeddings, WorkloadClass.DiagnosticEcho },
    };

    public static CapabilityReport GpuBox() => new()
    {
        CpuCores = 32, RamMb = 65_536, GpuPresent = true, GpuVramMb = 24_576, Os = "linux", NetworkType = NetworkType.Ethernet, IdleScore = 0.5,
        ThermalStateOptional = ThermalState.Nominal, Workloads = { WorkloadClass.Embeddings, WorkloadClass.DiagnosticEcho, WorkloadClass.SmallChat },
    };

    public static PlacementCandidate Candidate(string deviceId, CapabilityReport caps, int? rttMs = null, bool contribution = true, int trust = 0, bool revoked = false, string network = NetworkId) =>
        new(new DeviceRow { DeviceId = deviceId, NetworkId = network, OwnerUserId = "usr_owner", ContributionEnabled = contribution, TrustLevel = trust, Revoked = revoked },
            new PresenceRecord(deviceId, network, "relay", caps, contribution, DateTimeOffset.UnixEpoch, rttMs ?? caps.NetworkRttMs));

    public static JobEnvelope Envelope(WorkloadClass workload = WorkloadClass.Embeddings, RoutingMode mode = RoutingMode.Auto, DataSensitivityTag tag = DataSensitivityTag.Private, ResourceRequest? resources = null) => new()
    {
        JobId = "job_test", NetworkId = NetworkId, WorkloadId = workload, RoutingMode = mode, DataSensitivityTag = tag, ResourceRequest = resources ?? new ResourceRequest(),
        InputManifest = new InputManifest(),
    };

    public static NetworkSettings Settings() => NetworkDefaults.Create(0);

    public static PlacementDecision Place(JobEnvelope envelope, IEnumerable<PlacementCandidate> candidates, NetworkSettings? settings = null, Role role = Role.Member,
        IReadOnlySet<string>? excluded = null, Policy? policy = null, SubmitterLocation? submitter = null, int minuteOfDay = 720) =>
        new LinearPlacementPolicy().Place(new PlacementRequest(envelope, candidates.ToList(), excluded ?? new HashSet<string>(), settings ?? Settings())
        {
            SubmitterRole = role,
            Policy = new CompiledPolicy(policy ?? PolicyEngine.Defaults(NetworkId)),
            Submitter = submitter ?? SubmitterLocation.Unknown,
            MinuteOfDay = minuteOfDay,
        });

    public static DeviceEligibility Of(this PlacementDecision decision, string deviceId) => decision.Eligibility.Single(e => e.DeviceId == deviceId);
}

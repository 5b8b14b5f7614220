using MeshAI.Common.Domain;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Scheduling;

/// <summary>An online device of the network as the scheduler sees it.</summary>
public sealed record PlacementCandidate(DeviceRow Device, PresenceRecord Presence)
{
    /// <summary>Live capabilities (from the last heartbeat).</summary>
    public CapabilityReport Capabilities => Presence.Capabilities;

    /// <summary>The device's tier.</summary>
    public Tier Tier => Tiers.Classify(Presence.Capabilities);
}

/// <summary>What the scheduler is asked: place this envelope on one of these devices, avoiding the excluded ones.</summary>
public sealed record PlacementRequest(JobEnvelope Envelope, IReadOnlyList<PlacementCandidate> Candidates, IReadOnlySet<string> Excluded, NetworkSettings Settings);

/// <summary>The scheduler's answer: eligibility of every candidate, ranked scores, and the choice (null when nothing is eligible).</summary>
public sealed record PlacementDecision(
    IReadOnlyList<DeviceEligibility> Eligibility,
    IReadOnlyList<CandidateScore> Ranked,
    PlacementCandidate? Selected,
    string Reason);

/// <summary>The scheduling seam: eligibility filters + scoring. Phase 0 ships <see cref="LowestRttPlacementPolicy"/>.</summary>
public interface IPlacementPolicy
{
    /// <summary>Decides where the job runs.</summary>
    PlacementDecision Place(PlacementRequest request);
}

/// <summary>
/// Phase-0 policy: the spec's eligibility filters in a fixed order (first failure reported), then the eligible device with the
/// lowest round-trip time wins, ties broken by device id. The full linear scoring arrives with the scheduler issue.
/// </summary>
public sealed class LowestRttPlacementPolicy : IPlacementPolicy
{
    /// <inheritdoc />
    public PlacementDecision Place(PlacementRequest request)
    {
        var eligibility = new List<DeviceEligibility>();
        var eligible = new List<PlacementCandidate>();
        foreach (var candidate in request.Candidates.OrderBy(c => c.Device.DeviceId, StringComparer.Ordinal))
        {
            var (filter, reason) = Check(candidate, request);
            eligibility.Add(new DeviceEligibility { DeviceId = candidate.Device.DeviceId, Eligible = filter == EligibilityFilter.Unspecified, FailingFilter = filter, Reason = reason });
            if (filter == EligibilityFilter.Unspecified)
            {
                eligible.Add(candidate);
            }
        }

        var maxRtt = Math.Max(1, eligible.Count == 0 ? 1 : eligible.Max(c => c.Presence.RttMs));
        var weight = request.Settings.ScoringWeights?.RttMs ?? -0.3;
        var ranked = eligible
            .OrderBy(c => c.Presence.RttMs)
            .ThenBy(c => c.Device.DeviceId, StringComparer.Ordinal)
            .Select(c =>
            {
                var normalised = Math.Clamp(c.Presence.RttMs / (double)maxRtt, 0, 1);
                return new CandidateScore
                {
                    DeviceId = c.Device.DeviceId,
                    Total = weight * normalised,
                    Features = { new FeatureScore { Name = "rtt_ms", RawValue = c.Presence.RttMs, NormalizedValue = normalised, Weight = weight, Contribution = weight * normalised } },
                };
            })
            .ToList();
        var selected = ranked.Count == 0 ? null : eligible.First(c => c.Device.DeviceId == ranked[0].DeviceId);
        var why = selected is null
            ? request.Candidates.Count == 0 ? "no device of the network is online" : "no online device passes the eligibility filters"
            : $"lowest round-trip time ({selected.Presence.RttMs} ms) among {ranked.Count} eligible device(s)";
        return new PlacementDecision(eligibility, ranked, selected, why);
    }

    private static (EligibilityFilter Filter, string Reason) Check(PlacementCandidate candidate, PlacementRequest request)
    {
        var envelope = request.Envelope;
        var resources = envelope.ResourceRequest ?? new ResourceRequest();
        var device = candidate.Device;
        var caps = candidate.Capabilities;
        if (device.Revoked || device.NetworkId != envelope.NetworkId)
        {
            return (EligibilityFilter.NetworkMembership, "device is revoked or not in this network");
        }

        var pinned = resources.RequiresPinnedDeviceIdsOptional;
        if (pinned.Count > 0 && !pinned.Contains(device.DeviceId))
        {
            return (EligibilityFilter.Pinned, "job is pinned to other devices");
        }

        if (envelope.RoutingMode == RoutingMode.PinnedDevice && pinned.Count == 0)
        {
            return (EligibilityFilter.Pinned, "pinned_device routing needs requires_pinned_device_ids_optional");
        }

        if (request.Excluded.Contains(device.DeviceId))
        {
            return (EligibilityFilter.DeviceStateOk, "failed an earlier attempt of this job");
        }

        if (!candidate.Presence.ContributionEnabled || !device.ContributionEnabled)
        {
            return (EligibilityFilter.ContributionEnabled, "contribution is switched off on this device");
        }

        if (!caps.Workloads.Contains(envelope.WorkloadId))
        {
            return (EligibilityFilter.WorkloadSupported, $"device has no runtime for {envelope.WorkloadId}");
        }

        var tier = candidate.Tier;
        if (resources.MinTier != Tier.Unspecified && tier < resources.MinTier)
        {
            return (EligibilityFilter.DeviceMeets, $"{Tiers.Name(tier)} is below the minimum {Tiers.Name(resources.MinTier)}");
        }

        if (envelope.RoutingMode == RoutingMode.PinnedTier && resources.PinnedTier != Tier.Unspecified && tier != resources.PinnedTier)
        {
            return (EligibilityFilter.DeviceMeets, $"{Tiers.Name(tier)} is not the pinned {Tiers.Name(resources.PinnedTier)}");
        }

        if (resources.MinRamMb > 0 && caps.RamMb < resources.MinRamMb)
        {
            return (EligibilityFilter.DeviceMeets, $"{caps.RamMb} MB RAM is below the requested {resources.MinRamMb} MB");
        }

        if (resources.NeedsGpu && !caps.GpuPresent)
        {
            return (EligibilityFilter.DeviceMeets, "job needs a GPU");
        }

        if (resources.MaxLatencyMs > 0 && candidate.Presence.RttMs > resources.MaxLatencyMs)
        {
            return (EligibilityFilter.DeviceMeets, $"round-trip {candidate.Presence.RttMs} ms exceeds max_latency_ms {resources.MaxLatencyMs}");
        }

        var stateProblem = MobileStateProblem(caps, request.Settings.MobileSafety);
        if (stateProblem is not null)
        {
            return (EligibilityFilter.DeviceStateOk, stateProblem);
        }

        var minTrust = request.Settings.MinDeviceTrustLevel;
        if (minTrust > 0 && device.TrustLevel < minTrust)
        {
            return (EligibilityFilter.DeviceTrustLevelOk, $"trust level {device.TrustLevel} is below {minTrust}");
        }

        return (EligibilityFilter.Unspecified, "eligible");
    }

    private static string? MobileStateProblem(CapabilityReport caps, MobileSafetyDefaults? safety)
    {
        if (safety is not null && caps.ThermalStateOptional != ThermalState.Unspecified && safety.MaxThermalLevel > 0 && (int)caps.ThermalStateOptional >= safety.MaxThermalLevel)
        {
            return $"thermal state {caps.ThermalStateOptional} is at or above the network limit";
        }

        if (!caps.IsMobile || safety is null)
        {
            return null;
        }

        var battery = caps.BatteryStateOptional;
        switch (safety.MobileContributionPolicy)
        {
            case MobileContributionPolicy.Never:
                return "mobile contribution is off for this network";
            case MobileContributionPolicy.ChargingAndWifiOnly when battery is null || !battery.Charging || caps.NetworkType != NetworkType.Wifi:
                return "mobile devices contribute only while charging on Wi-Fi";
            case MobileContributionPolicy.ChargingOnly when battery is null || !battery.Charging:
                return "mobile devices contribute only while charging";
        }

        if (battery is not null && battery.Percent < safety.MinBatteryPercent && !battery.Charging)
        {
            return $"battery {battery.Percent}% is below {safety.MinBatteryPercent}%";
        }

        return null;
    }
}

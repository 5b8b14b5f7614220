using MeshAI.Common.Domain;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Control.Scheduling;

/// <summary>What every filter needs about the job, computed once per placement.</summary>
public sealed class EligibilityContext
{
    /// <summary>Prepares the job-constant parts of <paramref name="request"/>.</summary>
    public EligibilityContext(PlacementRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        Request = request;
        Envelope = request.Envelope;
        Resources = request.Envelope.ResourceRequest ?? new ResourceRequest();
        Pinned = Resources.RequiresPinnedDeviceIdsOptional.Count == 0 ? null : new HashSet<string>(Resources.RequiresPinnedDeviceIdsOptional, StringComparer.Ordinal);
        PinnedTier = Envelope.RoutingMode == RoutingMode.PinnedTier ? EligibilityFilters.PinnedTier(Envelope) : Tier.Unspecified;
        Sensitivity = Envelope.DataSensitivityTag == DataSensitivityTag.Unspecified ? DataSensitivityTag.Private : Envelope.DataSensitivityTag;
        Model = JobModels.Required(Envelope);
        ModelSelectable = JobModels.IsSelectable(Envelope.WorkloadId);
        SelectedRules = request.Policy.SelectedRules(new PolicyFacts(Envelope.WorkloadId, Sensitivity, request.SubmitterRole, Tier.Unspecified, false, "",
            request.MinuteOfDay, false, false, 0, 0, false, Model, false));
    }

    /// <summary>The model the job names (empty = each device's default).</summary>
    public string Model { get; }

    /// <summary>True when the workload selects a model (embeddings, chat).</summary>
    public bool ModelSelectable { get; }

    /// <summary>Policy rules whose job-level selectors match this job.</summary>
    public int[] SelectedRules { get; }

    /// <summary>The request.</summary>
    public PlacementRequest Request { get; }

    /// <summary>The envelope.</summary>
    public JobEnvelope Envelope { get; }

    /// <summary>The resource request (empty when absent).</summary>
    public ResourceRequest Resources { get; }

    /// <summary>Pinned device ids, or null.</summary>
    public HashSet<string>? Pinned { get; }

    /// <summary>The exact tier for pinned_tier routing, else unspecified.</summary>
    public Tier PinnedTier { get; }

    /// <summary>The job's sensitivity (untagged counts as private).</summary>
    public DataSensitivityTag Sensitivity { get; }
}

/// <summary>
/// The eligibility filters of spec routing_and_scheduling, in the order they are checked (the first failure is the
/// device's reason): network_membership, pinned ids (pinned_device), earlier attempts, contribution switch, workload
/// supported, model_available (the job's model is installed there), policy_allows (the policy engine, <see cref="CompiledPolicy"/>), device_meets (min tier, pinned tier, RAM,
/// GPU, latency), device_state_ok (network mobile-safety defaults: charging / Wi-Fi / battery / thermal), and
/// device_trust_level_ok when the network sets a minimum.
/// </summary>
public static class EligibilityFilters
{
    /// <summary>The exact tier a pinned_tier job asks for: pinned_tier, else min_tier, else unspecified.</summary>
    public static Tier PinnedTier(JobEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        var r = envelope.ResourceRequest;
        return r is null ? Tier.Unspecified : r.PinnedTier != Tier.Unspecified ? r.PinnedTier : r.MinTier;
    }

    /// <summary>Runs every filter; (UNSPECIFIED, null) when the device is eligible, else the first failing filter and why.</summary>
    public static (EligibilityFilter Filter, string? Reason) Check(PlacementCandidate candidate, EligibilityContext context)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(context);
        return NetworkMembership(candidate, context)
               ?? Pinned(candidate, context)
               ?? EarlierAttempt(candidate, context)
               ?? ContributionEnabled(candidate)
               ?? WorkloadSupported(candidate, context)
               ?? ModelAvailable(candidate, context)
               ?? PolicyAllows(candidate, context)
               ?? DeviceMeets(candidate, context)
               ?? DeviceStateOk(candidate.Capabilities, context.Request.Settings.MobileSafety)
               ?? TrustLevelOk(candidate, context)
               ?? (EligibilityFilter.Unspecified, null);
    }

    /// <summary>
    /// The first failing filter without building its reason (the placement hot path; <see cref="Check"/> gives the same
    /// filter plus the reason when the debug view is built).
    /// </summary>
    public static EligibilityFilter FirstFailing(PlacementCandidate candidate, EligibilityContext context)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(context);
        var device = candidate.Device;
        var caps = candidate.Capabilities;
        var envelope = context.Envelope;
        if (device.Revoked || device.NetworkId != envelope.NetworkId || candidate.Presence.NetworkId != envelope.NetworkId)
        {
            return EligibilityFilter.NetworkMembership;
        }

        if ((context.Pinned is not null && !context.Pinned.Contains(device.DeviceId)) || (envelope.RoutingMode == RoutingMode.PinnedDevice && context.Pinned is null))
        {
            return EligibilityFilter.Pinned;
        }

        if (context.Request.Excluded.Count > 0 && context.Request.Excluded.Contains(device.DeviceId))
        {
            return EligibilityFilter.DeviceStateOk;
        }

        if (!candidate.Presence.ContributionEnabled || !device.ContributionEnabled)
        {
            return EligibilityFilter.ContributionEnabled;
        }

        if (!caps.Workloads.Contains(envelope.WorkloadId))
        {
            return EligibilityFilter.WorkloadSupported;
        }

        if (context.Model.Length > 0 && JobModels.Offered(caps, envelope.WorkloadId, context.Model) is null)
        {
            return EligibilityFilter.ModelAvailable;
        }

        if (!Verdict(candidate, context).Allowed)
        {
            return EligibilityFilter.PolicyAllows;
        }

        return DeviceMeets(candidate, context, explain: false)?.Item1
               ?? DeviceStateOk(caps, context.Request.Settings.MobileSafety, explain: false)?.Item1
               ?? TrustLevelOk(candidate, context, explain: false)?.Item1
               ?? EligibilityFilter.Unspecified;
    }

    /// <summary>network_membership: same network, not revoked.</summary>
    public static (EligibilityFilter, string?)? NetworkMembership(PlacementCandidate c, EligibilityContext x) =>
        c.Device.Revoked || c.Device.NetworkId != x.Envelope.NetworkId || c.Presence.NetworkId != x.Envelope.NetworkId
            ? (EligibilityFilter.NetworkMembership, "device is revoked or not in this network")
            : null;

    /// <summary>Pinned device ids (pinned_device routing, or any job naming devices).</summary>
    public static (EligibilityFilter, string?)? Pinned(PlacementCandidate c, EligibilityContext x)
    {
        if (x.Pinned is not null && !x.Pinned.Contains(c.Device.DeviceId))
        {
            return (EligibilityFilter.Pinned, "job is pinned to other devices");
        }

        return x.Envelope.RoutingMode == RoutingMode.PinnedDevice && x.Pinned is null
            ? (EligibilityFilter.Pinned, "pinned_device routing needs requires_pinned_device_ids_optional")
            : null;
    }

    /// <summary>A device that already failed an attempt of this job (or chunk) is not offered it again.</summary>
    public static (EligibilityFilter, string?)? EarlierAttempt(PlacementCandidate c, EligibilityContext x) =>
        x.Request.Excluded.Contains(c.Device.DeviceId) ? (EligibilityFilter.DeviceStateOk, "failed an earlier attempt of this job") : null;

    /// <summary>The owner's contribution switch (stored and live).</summary>
    public static (EligibilityFilter, string?)? ContributionEnabled(PlacementCandidate c) =>
        !c.Presence.ContributionEnabled || !c.Device.ContributionEnabled ? (EligibilityFilter.ContributionEnabled, "contribution is switched off on this device") : null;

    /// <summary>The device advertises a runtime for the workload.</summary>
    public static (EligibilityFilter, string?)? WorkloadSupported(PlacementCandidate c, EligibilityContext x) =>
        !c.Capabilities.Workloads.Contains(x.Envelope.WorkloadId) ? (EligibilityFilter.WorkloadSupported, $"device has no runtime for {x.Envelope.WorkloadId}") : null;

    /// <summary>model_available: the device has the model the job names, installed and verified (it says which it has otherwise).</summary>
    public static (EligibilityFilter, string?)? ModelAvailable(PlacementCandidate c, EligibilityContext x)
    {
        if (x.Model.Length == 0 || JobModels.Offered(c.Capabilities, x.Envelope.WorkloadId, x.Model) is not null)
        {
            return null;
        }

        var has = c.Capabilities.Models.Where(m => m.WorkloadClass == x.Envelope.WorkloadId).Select(m => m.Name).ToList();
        return (EligibilityFilter.ModelAvailable, $"device has no model {x.Model} (it has {(has.Count == 0 ? "none reported" : string.Join(", ", has))})");
    }

    /// <summary>policy_allows(workload, user_role, sensitivity) — and the policy's device dimensions — via the policy engine.</summary>
    public static (EligibilityFilter, string?)? PolicyAllows(PlacementCandidate c, EligibilityContext x)
    {
        var verdict = Verdict(c, x);
        return verdict.Allowed ? null : (EligibilityFilter.PolicyAllows, "policy " + x.Request.Policy.Describe(verdict));
    }

    private static PolicyVerdict Verdict(PlacementCandidate c, EligibilityContext x)
    {
        if (x.SelectedRules.Length == 0)
        {
            return new PolicyVerdict(x.Request.Policy.DefaultEffect, -1, null);
        }

        var caps = c.Capabilities;
        var battery = caps.BatteryStateOptional;
        var facts = new PolicyFacts(
            x.Envelope.WorkloadId, x.Sensitivity, x.Request.SubmitterRole, c.Tier, caps.IsMobile, c.Device.DeviceId, x.Request.MinuteOfDay,
            battery is null || battery.Charging, caps.NetworkType != NetworkType.Cellular, battery?.Percent ?? 100, (int)caps.ThermalStateOptional,
            x.Pinned is not null && x.Pinned.Contains(c.Device.DeviceId),
            x.Model, !x.ModelSelectable || x.Request.PublicModels.Contains(JobModels.Offered(caps, x.Envelope.WorkloadId, x.Model)));
        return x.Request.Policy.Evaluate(facts, x.SelectedRules);
    }

    /// <summary>device_meets(min_tier, ram, gpu) plus the pinned tier and max latency.</summary>
    public static (EligibilityFilter, string?)? DeviceMeets(PlacementCandidate c, EligibilityContext x, bool explain = true)
    {
        var r = x.Resources;
        var caps = c.Capabilities;
        var tier = c.Tier;
        if (r.MinTier != Tier.Unspecified && tier < r.MinTier)
        {
            return (EligibilityFilter.DeviceMeets, explain ? $"{Tiers.Name(tier)} is below the minimum {Tiers.Name(r.MinTier)}" : null);
        }

        if (x.Envelope.RoutingMode == RoutingMode.PinnedTier)
        {
            if (x.PinnedTier == Tier.Unspecified)
            {
                return (EligibilityFilter.DeviceMeets, explain ? "pinned_tier routing needs resource_request.pinned_tier (or min_tier)" : null);
            }

            if (tier != x.PinnedTier)
            {
                return (EligibilityFilter.DeviceMeets, explain ? $"{Tiers.Name(tier)} is not the pinned {Tiers.Name(x.PinnedTier)}" : null);
            }
        }

        if (r.MinRamMb > 0 && caps.RamMb < r.MinRamMb)
        {
            return (EligibilityFilter.DeviceMeets, explain ? $"{caps.RamMb} MB RAM is below the requested {r.MinRamMb} MB" : null);
        }

        if (r.NeedsGpu && !caps.GpuPresent)
        {
            return (EligibilityFilter.DeviceMeets, explain ? "job needs a GPU" : null);
        }

        if (r.MaxLatencyMs > 0 && c.Presence.RttMs > r.MaxLatencyMs)
        {
            return (EligibilityFilter.DeviceMeets, explain ? $"round-trip {c.Presence.RttMs} ms exceeds max_latency_ms {r.MaxLatencyMs}" : null);
        }

        return null;
    }

    /// <summary>device_state_ok: thermal limit for every device; charging / Wi-Fi / battery for mobile ones (network mobile-safety defaults).</summary>
    public static (EligibilityFilter, string?)? DeviceStateOk(CapabilityReport caps, MobileSafetyDefaults? safety, bool explain = true)
    {
        ArgumentNullException.ThrowIfNull(caps);
        if (safety is not null && caps.ThermalStateOptional != ThermalState.Unspecified && safety.MaxThermalLevel > 0 && (int)caps.ThermalStateOptional >= safety.MaxThermalLevel)
        {
            return (EligibilityFilter.DeviceStateOk, explain ? $"thermal state {caps.ThermalStateOptional} is at or above the network limit" : null);
        }

        if (!caps.IsMobile || safety is null)
        {
            return null;
        }

        var battery = caps.BatteryStateOptional;
        switch (safety.MobileContributionPolicy)
        {
            case MobileContributionPolicy.Never:
                return (EligibilityFilter.DeviceStateOk, explain ? "mobile contribution is off for this network" : null);
            case MobileContributionPolicy.ChargingAndWifiOnly when battery is null || !battery.Charging || caps.NetworkType != NetworkType.Wifi:
                return (EligibilityFilter.DeviceStateOk, explain ? "mobile devices contribute only while charging on Wi-Fi" : null);
            case MobileContributionPolicy.ChargingOnly when battery is null || !battery.Charging:
                return (EligibilityFilter.DeviceStateOk, explain ? "mobile devices contribute only while charging" : null);
        }

        if (battery is not null && battery.Percent < safety.MinBatteryPercent && !battery.Charging)
        {
            return (EligibilityFilter.DeviceStateOk, explain ? $"battery {battery.Percent}% is below {safety.MinBatteryPercent}%" : null);
        }

        return null;
    }

    /// <summary>device_trust_level_ok, when the network configures a minimum.</summary>
    public static (EligibilityFilter, string?)? TrustLevelOk(PlacementCandidate c, EligibilityContext x, bool explain = true)
    {
        var min = x.Request.Settings.MinDeviceTrustLevel;
        return min > 0 && c.Device.TrustLevel < min ? (EligibilityFilter.DeviceTrustLevelOk, explain ? $"trust level {c.Device.TrustLevel} is below {min}" : null) : null;
    }
}

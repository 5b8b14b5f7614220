using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Domain;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Devices;

/// <summary>Builds the device card (spec devices_tab) from the stored row and live presence.</summary>
public static class DeviceCards
{
    /// <summary>The stored capability report.</summary>
    public static CapabilityReport Capabilities(DeviceRow row) =>
        row.Capabilities.Length == 0 ? new CapabilityReport() : CapabilityReport.Parser.ParseFrom(row.Capabilities);

    /// <summary>The pinned workload list from storage form.</summary>
    public static IEnumerable<WorkloadClass> PinnedWorkloads(DeviceRow row) =>
        row.PinnedWorkloads.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(s => (WorkloadClass)int.Parse(s, System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The pinned workload list in storage form.</summary>
    public static string PinnedWorkloadsText(IEnumerable<WorkloadClass> workloads) =>
        string.Join(",", workloads.Distinct().Select(w => ((int)w).ToString(System.Globalization.CultureInfo.InvariantCulture)));

    /// <summary>The card: presence wins over stored capabilities while the device is online.</summary>
    public static Device ToProto(DeviceRow row, PresenceRecord? presence) => ToProto(row, presence, "");

    /// <summary>The card with the device's newest anti-abuse flag reason (empty: not flagged).</summary>
    public static Device ToProto(DeviceRow row, PresenceRecord? presence, string antiAbuseFlag)
    {
        var capabilities = presence?.Capabilities ?? Capabilities(row);
        var device = new Device
        {
            DeviceId = row.DeviceId,
            NetworkId = row.NetworkId,
            OwnerUserId = row.OwnerUserId,
            Name = row.Name,
            Platform = (Platform)row.Platform,
            OnlineStatus = row.Revoked ? OnlineStatus.Revoked : presence is null ? OnlineStatus.Offline : OnlineStatus.Online,
            CapabilityTier = Tiers.Classify(capabilities),
            LatencyEstimate = presence?.RttMs ?? capabilities.NetworkRttMs,
            ContributionMode = (ContributionMode)row.ContributionMode,
            // Effective: placement needs both the owner's switch (stored) and the device's own state (its heartbeat).
            ContributionEnabled = row.ContributionEnabled && (presence?.ContributionEnabled ?? true),
            Capabilities = capabilities,
            CreateTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(row.CreateTimeMs)),
            CertificateSerial = row.CertificateSerial,
            Revoked = row.Revoked,
            TrustLevel = row.TrustLevel,
            PinnedWorkloads = { PinnedWorkloads(row) },
            AntiAbuseFlag = antiAbuseFlag ?? "",
        };
        if (capabilities.IsMobile && capabilities.BatteryStateOptional is not null)
        {
            device.BatteryStateIfMobile = capabilities.BatteryStateOptional;
        }

        if (capabilities.ThermalStateOptional != ThermalState.Unspecified)
        {
            device.ThermalStateIfAvailable = capabilities.ThermalStateOptional;
        }

        var lastSeen = presence?.LastSeen ?? (row.LastSeenTimeMs is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : (DateTimeOffset?)null);
        if (lastSeen is { } seen)
        {
            device.LastSeenTime = Timestamp.FromDateTimeOffset(seen);
        }

        return device;
    }
}

using Google.Protobuf;
using MeshAI.Common.Domain;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Control.Networks;

/// <summary>The default settings of a new network, from the spec, and their JSON storage form.</summary>
public static class NetworkDefaults
{
    /// <summary>Multiplier 1.0x in basis points.</summary>
    public const long MultiplierBps = 10_000;

    /// <summary>
    /// Billing granularity: runtime is rounded up to whole seconds before burning. The spec leaves the value open;
    /// one second keeps short embeddings jobs cheap while still never billing less than work done.
    /// </summary>
    public const long BillingGranularityMs = 1_000;

    /// <summary>A fresh copy of the defaults.</summary>
    public static NetworkSettings Create(long startingGrantMicro) => new()
    {
        Credits = new CreditSettings
        {
            TierRates = { Tiers.DefaultRates.Select(r => r.Clone()) },
            MultiplierBps = MultiplierBps,
            BillingGranularityMs = BillingGranularityMs,
            SharedPoolEnabled = true,
            RelaySurchargeEnabled = false,
            StartingGrantMicro = startingGrantMicro,
            SpotCheckSampleBps = 0,
            CanaryRateBps = Ledger.Canary.DefaultRateBps,
        },
        ScoringWeights = new ScoringWeights { RttMs = -0.30, IsPluggedIn = 0.20, ThermalHeadroom = 0.20, IdleScore = 0.15, CreditRateEfficiency = 0.15 },
        MobileSafety = new MobileSafetyDefaults
        {
            MobileContributionPolicy = MobileContributionPolicy.ChargingAndWifiOnly,
            MinBatteryPercent = 30,
            MaxThermalLevel = 3,
        },
        RetryPolicy = new RetryPolicy { MaxAttempts = 3, BackoffMs = { 250, 750, 2000 } },
        Privacy = Privacy.PrivateNetworkOnly,
        WorkloadVisibility = WorkloadVisibility.MembersOnly,
        DeviceDiscovery = DeviceDiscovery.ViaControlPlane,
        MemberApprovalMode = MemberApprovalMode.AdminApprovesNewMembers,
        KeyRotationDays = 0,
        MinDeviceTrustLevel = 0,
    };

    /// <summary>The defaults with the non-default parts of <paramref name="overrides"/> merged over them (proto merge semantics).</summary>
    public static NetworkSettings WithOverrides(long startingGrantMicro, NetworkSettings? overrides)
    {
        var settings = Create(startingGrantMicro);
        if (overrides is null)
        {
            return settings;
        }

        if (overrides.Credits?.TierRates.Count > 0)
        {
            settings.Credits.TierRates.Clear();
        }

        if (overrides.RetryPolicy?.BackoffMs.Count > 0)
        {
            settings.RetryPolicy.BackoffMs.Clear();
        }

        settings.MergeFrom(overrides);
        return settings;
    }

    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    /// <summary>Settings as stored.</summary>
    public static string ToJson(NetworkSettings settings) => Formatter.Format(settings);

    /// <summary>Settings from storage.</summary>
    public static NetworkSettings FromJson(string json) => JsonParser.Default.Parse<NetworkSettings>(json);
}

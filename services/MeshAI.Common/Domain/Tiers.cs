using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;

namespace MeshAI.Common.Domain;

/// <summary>The spec's tier table and how a capability report maps to a tier.</summary>
public static class Tiers
{
    /// <summary>Micro-credits per credit.</summary>
    public const long MicroPerCredit = 1_000_000;

    /// <summary>Default earn/burn rates per minute from spec capabilities_and_tiers.tier_definitions.</summary>
    public static IReadOnlyList<TierRate> DefaultRates { get; } =
    [
        Rate(Tier._0, 1, 2),
        Rate(Tier._1, 2, 4),
        Rate(Tier._2, 4, 6),
        Rate(Tier._3, 10, 14),
        Rate(Tier._4, 20, 28),
    ];

    /// <summary>The tier a device's capabilities put it in.</summary>
    public static Tier Classify(CapabilityReport report)
    {
        ArgumentNullException.ThrowIfNull(report);

        // A browser device (the web contributor) computes on the CPU through WebAssembly, whatever its hardware: tier0.
        if (report.Platform == Platform.Web)
        {
            return Tier._0;
        }

        if (report.GpuPresent)
        {
            return report.GpuVramMb >= 16 * 1024 && !report.IsMobile ? Tier._4 : Tier._3;
        }

        if (report.IsMobile)
        {
            return report.NpuPresent ? Tier._1 : Tier._0;
        }

        return Tier._2;
    }

    /// <summary>Spec name of a tier ("tier2").</summary>
    public static string Name(Tier tier) => tier == Tier.Unspecified ? "unspecified" : "tier" + ((int)tier - 1);

    private static TierRate Rate(Tier tier, long earn, long burn) =>
        new() { Tier = tier, EarnMicroPerMin = earn * MicroPerCredit, BurnMicroPerMin = burn * MicroPerCredit };
}

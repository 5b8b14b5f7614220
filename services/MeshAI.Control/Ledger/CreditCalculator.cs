using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Control.Ledger;

/// <summary>What one piece of validated work costs and earns, in integer micro-credits.</summary>
public readonly record struct Charge(long RuntimeMs, long BilledRuntimeMs, long BurnMicro, long MintMicro);

/// <summary>
/// The ledger arithmetic, pure and integer-only. billed_ms = runtime rounded up to the billing granularity;
/// burn = ceil(billed_ms × burn_per_min × multiplier_bps / (60000 × 10000));
/// mint = floor(billed_ms × earn_per_min × multiplier_bps / (60000 × 10000)).
/// </summary>
public static class CreditCalculator
{
    private const long MsPerMinute = 60_000;
    private const long BpsOne = 10_000;

    /// <summary>Runtime rounded up to a whole number of granularity units (granularity ≤ 0 means per millisecond).</summary>
    public static long BilledMs(long runtimeMs, long granularityMs)
    {
        if (runtimeMs <= 0)
        {
            return 0;
        }

        if (granularityMs <= 1)
        {
            return runtimeMs;
        }

        return checked((runtimeMs + granularityMs - 1) / granularityMs * granularityMs);
    }

    /// <summary>Micro-credits burned for the billed time (rounded up).</summary>
    public static long Burn(long billedMs, long burnMicroPerMin, long multiplierBps) =>
        DivideCeiling((Int128)billedMs * burnMicroPerMin * multiplierBps, (Int128)MsPerMinute * BpsOne);

    /// <summary>Micro-credits minted for the billed time (rounded down).</summary>
    public static long Mint(long billedMs, long earnMicroPerMin, long multiplierBps) =>
        (long)((Int128)billedMs * earnMicroPerMin * multiplierBps / ((Int128)MsPerMinute * BpsOne));

    /// <summary>The network's rate for a tier (the spec default when the network lists none).</summary>
    public static TierRate RateFor(CreditSettings credits, Tier tier) =>
        credits.TierRates.FirstOrDefault(r => r.Tier == tier)
        ?? MeshAI.Common.Domain.Tiers.DefaultRates.FirstOrDefault(r => r.Tier == tier)
        ?? new TierRate { Tier = tier };

    /// <summary>
    /// Charges a completed piece of work. A completed job is never free: runtime below 1 ms counts as 1 ms,
    /// so the minimum charge is one billing granularity.
    /// </summary>
    public static Charge Charge(long runtimeMs, Tier tier, CreditSettings credits)
    {
        var runtime = Math.Max(1, runtimeMs);
        var billed = BilledMs(runtime, credits.BillingGranularityMs);
        var rate = RateFor(credits, tier);
        var multiplier = credits.MultiplierBps <= 0 ? BpsOne : credits.MultiplierBps;
        return new Charge(runtime, billed, Burn(billed, rate.BurnMicroPerMin, multiplier), Mint(billed, rate.EarnMicroPerMin, multiplier));
    }

    /// <summary>Relay surcharge: bytes × per-MiB rate, rounded up (any relayed byte is charged).</summary>
    public static long RelaySurcharge(long relayBytes, long microPerMib) =>
        relayBytes <= 0 || microPerMib <= 0 ? 0 : DivideCeiling((Int128)relayBytes * microPerMib, 1024 * 1024);

    /// <summary>A mint scaled by a cap in basis points (rounded down; 10000 or more = uncapped).</summary>
    public static long CapMint(long mintMicro, long capBps) =>
        capBps >= BpsOne ? mintMicro : (long)((Int128)mintMicro * Math.Max(0, capBps) / BpsOne);

    /// <summary>
    /// The longest billed runtime (a whole number of granularity units) whose burn stays within <paramref name="capMicro"/>;
    /// null when the rate is 0 (no runtime ever reaches the cap).
    /// </summary>
    public static long? RuntimeAtCap(long capMicro, long burnMicroPerMin, long multiplierBps, long granularityMs)
    {
        var perMs = (Int128)burnMicroPerMin * (multiplierBps <= 0 ? BpsOne : multiplierBps);
        if (perMs <= 0)
        {
            return null;
        }

        // ceil(b × k / D) ≤ cap  ⇔  b × k ≤ cap × D  ⇔  b ≤ floor(cap × D / k)
        var maxMs = (long)Int128.Min((Int128)Math.Max(0, capMicro) * MsPerMinute * BpsOne / perMs, long.MaxValue);
        return granularityMs <= 1 ? maxMs : maxMs / granularityMs * granularityMs;
    }

    private static long DivideCeiling(Int128 numerator, Int128 denominator)
    {
        if (numerator <= 0)
        {
            return (long)(numerator / denominator);
        }

        return (long)((numerator + denominator - 1) / denominator);
    }
}

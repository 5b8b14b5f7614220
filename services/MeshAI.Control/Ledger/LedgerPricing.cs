using MeshAI.Control.Storage;

namespace MeshAI.Control.Ledger;

/// <summary>What one settlement burns and mints, derived from its execution record alone.</summary>
/// <param name="BilledMs">Runtime rounded up to the billing granularity.</param>
/// <param name="BurnMicro">Micro-credits burned: runtime burn + relay surcharge, within what is left of the job's cap.</param>
/// <param name="SurchargeMicro">The relay-bandwidth part of the burn before the cap.</param>
/// <param name="MintMicro">Micro-credits minted to the device owner (0 when withheld).</param>
public readonly record struct PricedSettlement(long BilledMs, long BurnMicro, long SurchargeMicro, long MintMicro);

/// <summary>
/// The single pricing function of the ledger. The writer uses it to create events and the reconciler uses it to recompute
/// them, so "ledger == execution records" is a check of stored inputs against stored outputs.
/// </summary>
public static class LedgerPricing
{
    /// <summary>Prices one execution record.</summary>
    public static PricedSettlement Price(JobMeteringRow m)
    {
        ArgumentNullException.ThrowIfNull(m);
        var runtime = Math.Max(1, m.RuntimeMs);
        var billed = CreditCalculator.BilledMs(runtime, m.BillingGranularityMs);
        var multiplier = m.MultiplierBps <= 0 ? 10_000 : m.MultiplierBps;
        var surcharge = CreditCalculator.RelaySurcharge(m.RelayBytes, m.RelaySurchargeMicroPerMib);
        var burn = checked(CreditCalculator.Burn(billed, m.BurnMicroPerMin, multiplier) + surcharge);
        if (m.MaxCostMicro > 0)
        {
            burn = Math.Min(burn, Math.Max(0, m.MaxCostMicro - m.PriorBurnMicro));
        }

        var mint = m.MintWithheldReason.Length > 0 ? 0 : CreditCalculator.CapMint(CreditCalculator.Mint(billed, m.EarnMicroPerMin, multiplier), m.MintCapBps);
        return new PricedSettlement(billed, burn, surcharge, mint);
    }
}

using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Ledger;

/// <summary>UpdateCreditRates: per-tier earn/burn overrides, the network multiplier (basis points) and the billing granularity.</summary>
public sealed class CreditRates(NetworkRepository networks)
{
    /// <summary>Largest rate accepted: one million credits per minute, in micro-credits (keeps every product inside Int128 with room).</summary>
    public const long MaxRateMicroPerMin = 1_000_000L * 1_000_000;

    /// <summary>Largest multiplier: 100×.</summary>
    public const long MaxMultiplierBps = 1_000_000;

    /// <summary>Largest billing granularity: one hour.</summary>
    public const long MaxGranularityMs = 3_600_000;

    /// <summary>The credit settings after applying a request (validated; INVALID_ARGUMENT with the offending field otherwise).</summary>
    public static CreditSettings Apply(CreditSettings current, UpdateCreditRatesRequest request)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(request);
        var next = current.Clone();
        for (var i = 0; i < request.TierRates.Count; i++)
        {
            var rate = request.TierRates[i];
            if (rate.Tier is Tier.Unspecified || !Enum.IsDefined(rate.Tier))
            {
                throw RpcErrors.InvalidArgument($"tier_rates[{i}].tier", "must be TIER_0 … TIER_4");
            }

            if (rate.EarnMicroPerMin is < 0 or > MaxRateMicroPerMin)
            {
                throw RpcErrors.InvalidArgument($"tier_rates[{i}].earn_micro_per_min", $"must be 0 … {MaxRateMicroPerMin}");
            }

            if (rate.BurnMicroPerMin is < 0 or > MaxRateMicroPerMin)
            {
                throw RpcErrors.InvalidArgument($"tier_rates[{i}].burn_micro_per_min", $"must be 0 … {MaxRateMicroPerMin}");
            }

            if (next.TierRates.FirstOrDefault(r => r.Tier == rate.Tier) is { } existing)
            {
                next.TierRates.Remove(existing);
            }

            next.TierRates.Add(new TierRate { Tier = rate.Tier, EarnMicroPerMin = rate.EarnMicroPerMin, BurnMicroPerMin = rate.BurnMicroPerMin });
        }

        if (request.MultiplierBps != 0)
        {
            if (request.MultiplierBps is < 1 or > MaxMultiplierBps)
            {
                throw RpcErrors.InvalidArgument("multiplier_bps", $"must be 1 … {MaxMultiplierBps} (10000 = 1.0x)");
            }

            next.MultiplierBps = request.MultiplierBps;
        }

        if (request.BillingGranularityMs != 0)
        {
            if (request.BillingGranularityMs is < 1 or > MaxGranularityMs)
            {
                throw RpcErrors.InvalidArgument("billing_granularity_ms", $"must be 1 … {MaxGranularityMs}");
            }

            next.BillingGranularityMs = request.BillingGranularityMs;
        }

        var ordered = next.TierRates.OrderBy(r => r.Tier).ToList();
        next.TierRates.Clear();
        next.TierRates.AddRange(ordered);
        return next;
    }

    /// <summary>Applies a request to the stored settings with an optimistic retry, so a concurrent settings edit is never lost.</summary>
    public async Task<CreditSettings> UpdateAsync(string networkId, UpdateCreditRatesRequest request, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var row = await networks.GetNetworkAsync(networkId, ct) ?? throw RpcErrors.NotFound("network", networkId);
            var settings = NetworkDefaults.FromJson(row.SettingsJson);
            settings.Credits = Apply(settings.Credits ?? new CreditSettings(), request);
            if (await networks.UpdateSettingsAsync(networkId, row.SettingsJson, NetworkDefaults.ToJson(settings), ct))
            {
                return settings.Credits;
            }
        }

        throw RpcErrors.Unavailable("network settings changed concurrently; retry");
    }
}

using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Ledger;

/// <summary>
/// UpdateCreditRates: per-tier earn/burn overrides, the network multiplier (basis points) and the billing granularity. The
/// request's fields are bounded by the request layer; the resulting credit settings pass <see cref="NetworkSettingsRules"/>
/// like every other settings write.
/// </summary>
public sealed class CreditRates(NetworkRepository networks, NetworkSettingsRules rules)
{
    /// <summary>The credit settings after applying a request, validated (INVALID_ARGUMENT with the offending field otherwise; default bounds when <paramref name="rules"/> is null).</summary>
    public static CreditSettings Apply(CreditSettings current, UpdateCreditRatesRequest request, NetworkSettingsRules? rules = null)
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

            if (next.TierRates.FirstOrDefault(r => r.Tier == rate.Tier) is { } existing)
            {
                next.TierRates.Remove(existing);
            }

            next.TierRates.Add(new TierRate { Tier = rate.Tier, EarnMicroPerMin = rate.EarnMicroPerMin, BurnMicroPerMin = rate.BurnMicroPerMin });
        }

        if (request.MultiplierBps != 0)
        {
            next.MultiplierBps = request.MultiplierBps;
        }

        if (request.BillingGranularityMs != 0)
        {
            next.BillingGranularityMs = request.BillingGranularityMs;
        }

        var ordered = next.TierRates.OrderBy(r => r.Tier).ToList();
        next.TierRates.Clear();
        next.TierRates.AddRange(ordered);
        return (rules ?? NetworkSettingsRules.Default).ValidateCredits(next);
    }

    /// <summary>Applies a request to the stored settings with an optimistic retry, so a concurrent settings edit is never lost.</summary>
    public async Task<CreditSettings> UpdateAsync(string networkId, UpdateCreditRatesRequest request, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var row = await networks.GetNetworkAsync(networkId, ct) ?? throw RpcErrors.NotFound("network", networkId);
            var settings = NetworkDefaults.FromJson(row.SettingsJson);
            settings.Credits = Apply(settings.Credits ?? new CreditSettings(), request, rules);
            if (await networks.UpdateSettingsAsync(networkId, row.SettingsJson, NetworkDefaults.ToJson(settings), ct))
            {
                return settings.Credits;
            }
        }

        throw RpcErrors.Aborted("network settings kept changing concurrently; retry");
    }
}

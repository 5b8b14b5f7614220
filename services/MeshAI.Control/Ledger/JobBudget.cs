using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Ledger;

/// <summary>
/// The ledger's say before and during a job: the runtime estimate (median of the workload's observed runs on the tier, or the
/// default table before enough history exists), the relay-bandwidth quota, and the runtime at which max_cost_credits is reached.
/// </summary>
public sealed class JobBudget(LedgerRepository ledger, IOptions<ControlPlaneOptions> options, TimeProvider clock)
{
    /// <summary>An estimate and where it came from.</summary>
    public sealed record RuntimeEstimate(long RuntimeMs, bool Observed, int Runs);

    /// <summary>The median observed runtime of the workload on the tier, or <paramref name="defaultRuntimeMs"/> (the documented table) without enough history.</summary>
    public async Task<RuntimeEstimate> EstimateRuntimeAsync(string networkId, WorkloadClass workload, Tier tier, long defaultRuntimeMs, CancellationToken ct)
    {
        var rules = options.Value.Ledger;
        var runs = (await ledger.RecentRuntimesAsync(networkId, (int)workload, (int)tier, rules.EstimateHistoryRuns, ct)).ToList();
        return runs.Count >= rules.EstimateMinRuns ? new RuntimeEstimate(Median(runs), true, runs.Count) : new RuntimeEstimate(defaultRuntimeMs, false, runs.Count);
    }

    /// <summary>The median, the upper of the two middle values for an even count (never under-estimates between them).</summary>
    public static long Median(IReadOnlyCollection<long> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            return 0;
        }

        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    /// <summary>RESOURCE_EXHAUSTED when the network's relayed bytes this calendar month (UTC) reached the free-tier limit.</summary>
    public async Task EnsureRelayBandwidthAsync(string networkId, CancellationToken ct)
    {
        var limit = options.Value.Ledger.FreeTier.RelayBytesPerMonth;
        if (limit <= 0)
        {
            return;
        }

        // One row: the running total kept by the settlement transactions (relay_usage), not a sum over the month's records.
        var used = await ledger.RelayBytesInMonthAsync(networkId, LedgerRepository.MonthStartMs(clock.GetUtcNow().ToUnixTimeMilliseconds()), ct);
        if (used >= limit)
        {
            throw RpcErrors.ResourceExhausted("relay_bandwidth_per_month:" + networkId,
                $"free tier: this network relayed {used} of {limit} bytes this month; new jobs wait for next month or a paid plan", ErrorReasons.FreeTierRelayBandwidth);
        }
    }

    /// <summary>RESOURCE_EXHAUSTED when the user already created the free tier's networks_per_user.</summary>
    public async Task EnsureCanCreateNetworkAsync(string userId, CancellationToken ct)
    {
        var limit = options.Value.Ledger.FreeTier.NetworksPerUser;
        if (limit > 0 && await ledger.CountNetworksCreatedByAsync(userId, ct) >= limit)
        {
            throw RpcErrors.ResourceExhausted("networks_per_user:" + userId, $"free tier: at most {limit} networks per user", ErrorReasons.FreeTierNetworksPerUser);
        }
    }

    /// <summary>RESOURCE_EXHAUSTED when the network already holds max_devices_per_network active devices (call inside the registering transaction).</summary>
    public static async Task EnsureCanAddDeviceAsync(System.Data.Common.DbConnection c, System.Data.Common.DbTransaction tx, string networkId, FreeTierLimits limits, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (limits.MaxDevicesPerNetwork > 0 && await LedgerRepository.CountActiveDevicesAsync(c, tx, networkId, ct) >= limits.MaxDevicesPerNetwork)
        {
            throw RpcErrors.ResourceExhausted("max_devices_per_network:" + networkId, $"free tier: at most {limits.MaxDevicesPerNetwork} devices per network; revoke one first", ErrorReasons.FreeTierDevicesPerNetwork);
        }
    }

    /// <summary>
    /// Longest runtime a cost-cap timer is ever set for: job timeouts are int milliseconds, so a job is stopped by its
    /// timeout before a cap further out than this could be reached (and a timer that long would overflow).
    /// </summary>
    public const long MaxCapTimerMs = int.MaxValue;

    /// <summary>
    /// Milliseconds of runtime after which the job's burn would pass max_cost_credits; null when uncapped, free, or so far
    /// out (beyond <see cref="MaxCapTimerMs"/>, e.g. an int64-max cap) that no job runs long enough to reach it.
    /// </summary>
    public static long? CapRuntimeMs(long maxCostMicro, Tier tier, CreditSettings credits)
    {
        ArgumentNullException.ThrowIfNull(credits);
        if (maxCostMicro <= 0)
        {
            return null;
        }

        var rate = CreditCalculator.RateFor(credits, tier);
        var capMs = CreditCalculator.RuntimeAtCap(maxCostMicro, rate.BurnMicroPerMin, credits.MultiplierBps, credits.BillingGranularityMs);
        return capMs is { } ms && ms < MaxCapTimerMs ? ms : null;
    }
}

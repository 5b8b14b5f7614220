using System.Globalization;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Ledger;

/// <summary>
/// ReconcileLedger: recomputes every amount and balance of a network from its execution records (job_meterings, priced by
/// <see cref="LedgerPricing"/>) plus its grants, and compares them with the ledger events and the jobs table. Balanced means:
/// each settlement's burn and mint equal the recomputation, no event was applied twice, no money event lacks an execution
/// record, every completed job has one, jobs.cost_micro equals its burns and stays within max_cost_credits, and the pool,
/// per-member, per-device and total balances derived from events equal the recomputed ones; the running balances
/// (ledger_balances) equal the sums of the events and the running relay usage (relay_usage) the sums of the execution records.
/// </summary>
public sealed class LedgerReconciler(LedgerRepository ledger, LedgerQueries queries)
{
    /// <summary>Reconciles one network.</summary>
    public async Task<ReconcileLedgerResponse> ReconcileAsync(string networkId, bool sharedPoolEnabled, CancellationToken ct)
    {
        var response = new ReconcileLedgerResponse();
        void Mismatch(string subject, long ledgerMicro, long recomputedMicro, string detail) =>
            response.Mismatches.Add(new ReconcileMismatch { Subject = subject, LedgerMicro = ledgerMicro, RecomputedMicro = recomputedMicro, Detail = detail });

        var meterings = (await ledger.ListMeteringsAsync(networkId, ct)).ToList();
        var totals = (await ledger.TotalsPerJobAsync(networkId, ct)).ToDictionary(t => (t.JobId, t.ChunkId, (LedgerEventType)t.EventType));
        var jobs = (await ledger.ListJobTotalsAsync(networkId, ct)).ToList();
        var (events, keys) = await ledger.CountEventsAsync(networkId, ct);
        response.EventsChecked = events;
        response.JobsChecked = jobs.Count;
        if (events != keys)
        {
            Mismatch("ledger", events, keys, "events and distinct idempotency keys differ: an event was applied twice");
        }

        foreach (var t in totals.Values.Where(t => t.Events > 1))
        {
            Mismatch(Subject(t.JobId, t.ChunkId), t.Events, 1, $"{(LedgerEventType)t.EventType} applied {t.Events} times");
        }

        long Amount(string jobId, string chunkId, LedgerEventType type) => totals.TryGetValue((jobId, chunkId, type), out var t) ? t.AmountMicro : 0;

        // Per settlement: ledger amounts == amounts priced from the execution record.
        var recomputedPool = 0L;
        var recomputedMinted = 0L;
        var recomputedBurned = 0L;
        var recomputedMembers = new Dictionary<string, long>(StringComparer.Ordinal);
        var recomputedDevices = new Dictionary<string, long>(StringComparer.Ordinal);
        var perJob = new Dictionary<string, (long Burn, long Billed)>(StringComparer.Ordinal);
        var settled = new HashSet<(string, string)>();
        foreach (var m in meterings)
        {
            settled.Add((m.JobId, m.ChunkId));
            var priced = LedgerPricing.Price(m);
            var subject = Subject(m.JobId, m.ChunkId);
            var burned = -Amount(m.JobId, m.ChunkId, LedgerEventType.CreditsBurned);
            if (burned != priced.BurnMicro)
            {
                Mismatch(subject + " burn", burned, priced.BurnMicro, "credits_burned differs from runtime × tier burn rate (+ relay surcharge, within the cap)");
            }

            var minted = Amount(m.JobId, m.ChunkId, LedgerEventType.CreditsMinted);
            if (minted != priced.MintMicro)
            {
                Mismatch(subject + " mint", minted, priced.MintMicro,
                    m.MintWithheldReason.Length > 0 ? "minting was withheld: " + m.MintWithheldReason : "credits_minted differs from runtime × tier earn rate");
            }

            // A settlement ends in job_completed, or job_failed when the attempt was cut off at the job's cost cap.
            if (!totals.ContainsKey((m.JobId, m.ChunkId, LedgerEventType.JobCompleted)) && !totals.ContainsKey((m.JobId, m.ChunkId, LedgerEventType.JobFailed)))
            {
                Mismatch(subject, 0, 0, "execution record without a job_completed or job_failed event");
            }

            recomputedBurned += priced.BurnMicro;
            recomputedMinted += priced.MintMicro;
            if ((AccountKind)m.BurnAccountKind == AccountKind.Pool)
            {
                recomputedPool -= priced.BurnMicro;
            }
            else
            {
                recomputedMembers[m.SubmittedByUserId] = recomputedMembers.GetValueOrDefault(m.SubmittedByUserId) - priced.BurnMicro;
            }

            recomputedMembers[m.DeviceOwnerUserId] = recomputedMembers.GetValueOrDefault(m.DeviceOwnerUserId) + priced.MintMicro;
            recomputedDevices[m.DeviceId] = recomputedDevices.GetValueOrDefault(m.DeviceId) + priced.MintMicro;
            var sum = perJob.GetValueOrDefault(m.JobId);
            perJob[m.JobId] = (sum.Burn + priced.BurnMicro, sum.Billed + priced.BilledMs);
        }

        // Money moved for work with no execution record behind it.
        foreach (var t in totals.Values.Where(t => (LedgerEventType)t.EventType is LedgerEventType.CreditsBurned or LedgerEventType.CreditsMinted or LedgerEventType.JobCompleted))
        {
            if (!settled.Contains((t.JobId, t.ChunkId)))
            {
                Mismatch(Subject(t.JobId, t.ChunkId), t.AmountMicro, 0, $"{(LedgerEventType)t.EventType} without an execution record");
            }
        }

        // Jobs table: what each job says it cost == its recomputed burns.
        foreach (var job in jobs)
        {
            var sum = perJob.GetValueOrDefault(job.JobId);
            if ((JobState)job.State == JobState.Completed && !perJob.ContainsKey(job.JobId))
            {
                Mismatch("job:" + job.JobId, 0, 0, "completed job without an execution record");
            }

            if (job.CostMicro != sum.Burn)
            {
                Mismatch("job:" + job.JobId + " cost", job.CostMicro, sum.Burn, "jobs.cost_micro differs from the recomputed burn");
            }

            if (job.MaxCostCredits > 0 && sum.Burn > job.MaxCostCredits)
            {
                Mismatch("job:" + job.JobId + " cap", sum.Burn, job.MaxCostCredits, "burn exceeds max_cost_credits");
            }
        }

        // Balances: grants have no execution record, so they are taken from the ledger; everything else is recomputed.
        var balances = await queries.GetBalancesAsync(networkId, sharedPoolEnabled, ct);
        foreach (var grant in await ledger.AggregateAsync(networkId, ct))
        {
            if ((LedgerEventType)grant.EventType != LedgerEventType.CreditsGranted)
            {
                continue;
            }

            if ((AccountKind)grant.AccountKind == AccountKind.Pool)
            {
                recomputedPool += grant.AmountMicro;
            }
            else
            {
                recomputedMembers[grant.UserId] = recomputedMembers.GetValueOrDefault(grant.UserId) + grant.AmountMicro;
            }
        }

        Compare("pool", balances.PoolBalanceMicro, recomputedPool);
        Compare("minted total", balances.MintedTotalMicro, recomputedMinted);
        Compare("burned total", balances.BurnedTotalMicro, recomputedBurned);
        foreach (var userId in recomputedMembers.Keys.Union(balances.Members.Select(m => m.UserId)).Distinct(StringComparer.Ordinal))
        {
            Compare("member:" + userId, balances.Members.FirstOrDefault(m => m.UserId == userId)?.BalanceMicro ?? 0, recomputedMembers.GetValueOrDefault(userId));
        }

        // Running balances (ledger_balances, read by every submit) == the sums of the events they stand for.
        var running = (await ledger.ListRunningBalancesAsync(networkId, ct)).ToList();
        Running("running pool", running.Where(r => (AccountKind)r.AccountKind == AccountKind.Pool).Sum(r => r.BalanceMicro), balances.PoolBalanceMicro);
        foreach (var userId in running.Where(r => (AccountKind)r.AccountKind == AccountKind.Member).Select(r => r.UserId).Union(balances.Members.Select(m => m.UserId)).Distinct(StringComparer.Ordinal))
        {
            Running("running member:" + userId, running.FirstOrDefault(r => (AccountKind)r.AccountKind == AccountKind.Member && r.UserId == userId)?.BalanceMicro ?? 0,
                balances.Members.FirstOrDefault(m => m.UserId == userId)?.BalanceMicro ?? 0);
        }

        // Relay usage per month (relay_usage, read by every submit) == the execution records' relay bytes of that month.
        var usage = (await ledger.ListRelayUsageAsync(networkId, ct)).ToDictionary(u => u.MonthStartMs, u => u.RelayBytes);
        var recomputedUsage = meterings.GroupBy(m => LedgerRepository.MonthStartMs(m.CreateTimeMs)).ToDictionary(g => g.Key, g => g.Sum(m => m.RelayBytes));
        foreach (var month in usage.Keys.Union(recomputedUsage.Keys))
        {
            var stored = usage.GetValueOrDefault(month);
            var summed = recomputedUsage.GetValueOrDefault(month);
            if (stored != summed)
            {
                Mismatch("relay usage " + DateTimeOffset.FromUnixTimeMilliseconds(month).ToString("yyyy-MM", CultureInfo.InvariantCulture), stored, summed,
                    "running relay bytes of the month differ from the sum of its execution records");
            }
        }

        foreach (var deviceId in recomputedDevices.Keys.Union(balances.Devices.Select(d => d.DeviceId)).Distinct(StringComparer.Ordinal))
        {
            Compare("device:" + deviceId + " minted", balances.Devices.FirstOrDefault(d => d.DeviceId == deviceId)?.MintedMicro ?? 0, recomputedDevices.GetValueOrDefault(deviceId));
        }

        response.Balanced = response.Mismatches.Count == 0;
        return response;

        void Running(string subject, long stored, long fromEvents)
        {
            if (stored != fromEvents)
            {
                Mismatch(subject, stored, fromEvents, string.Create(CultureInfo.InvariantCulture, $"running balance {stored} µ, sum of events {fromEvents} µ"));
            }
        }

        void Compare(string subject, long fromLedger, long recomputed)
        {
            if (fromLedger != recomputed)
            {
                Mismatch(subject, fromLedger, recomputed, string.Create(CultureInfo.InvariantCulture, $"balance from events {fromLedger} µ, recomputed {recomputed} µ"));
            }
        }
    }

    private static string Subject(string jobId, string chunkId) => chunkId.Length == 0 ? "job:" + jobId : "job:" + jobId + "/" + chunkId;
}

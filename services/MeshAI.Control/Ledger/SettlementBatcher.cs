using System.Data.Common;
using MeshAI.Common.Observability;
using MeshAI.Control.Jobs;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Ledger;

/// <summary>One completed job to settle: its final row, the winning attempt, its execution record and those of a resumed chat's earlier segments.</summary>
public sealed record SettlementCompletion(JobRow Final, int Attempt, JobMeteringRow Metering, IReadOnlyList<JobMeteringRow> EarlierSegments, long NowMs);

/// <summary>What one settlement of a batch came to: settled (true), already ended by someone else (false), or its own error.</summary>
public readonly record struct SettlementOutcome(bool Settled, Exception? Error);

/// <summary>
/// Group commit of job settlements (#11, docs/job-plane.md "Settlement group commit"). Completed jobs that wait to be settled
/// at the same moment are written in ONE transaction: each keeps its own guard (the job row's terminal-state check, first
/// result wins), its attempt, execution record and events; the shared running totals — relay_usage per network and month,
/// ledger_balances per account — are summed over the batch and written once, last, in a fixed order (<see cref="RunningTotals"/>).
/// <list type="bullet">
/// <item>No added delay: a settlement that finds a committer slot free commits at once, on its caller's own call (a lone job is
/// a batch of one). Settlements that arrive while every slot commits queue up; when a commit ends, the queue (at most
/// <see cref="MaxBatch"/> at a time) is committed as the next batch on a thread-pool thread. There is no timer. One slot on
/// SQLite (one writer), <see cref="PostgresConcurrentBatches"/> on PostgreSQL (a batch is a sequence of round trips; several
/// batches overlap them and meet only on the shared rows, once per batch).</item>
/// <item>Order inside a batch: members by job id (ordinal, arrival order kept among duplicates), so two batches on two
/// instances take job rows in the same order; then the totals.</item>
/// <item>Failure: if the batch transaction throws (a member's constraint error, a PostgreSQL deadlock or serialization
/// failure, a lost connection), it is rolled back and every member is settled again alone, in its own transaction, with its
/// own outcome; one bad member cannot fail or lose the others. The per-job guards make the retry safe.</item>
/// </list>
/// </summary>
public sealed class SettlementBatcher(Database database, int maxConcurrentBatches)
{
    /// <summary>Settlements committed in one transaction at most.</summary>
    public const int MaxBatch = 64;

    /// <summary>Batches in flight at once on PostgreSQL (each is a sequence of round trips; several overlap them).</summary>
    public const int PostgresConcurrentBatches = 4;

    /// <summary>
    /// A batcher for <paramref name="database"/>: one batch at a time on the embedded store (SQLite has one writer anyway),
    /// <see cref="PostgresConcurrentBatches"/> on a shared one.
    /// </summary>
    public SettlementBatcher(Database database)
        : this(database, database.Dialect.SingleOwner ? 1 : PostgresConcurrentBatches)
    {
    }

    private readonly int _maxCommitters = Math.Max(1, maxConcurrentBatches);
    private readonly object _gate = new();
    private readonly Queue<Pending> _queue = new();
    private int _committers;
    private long _batches;
    private long _settlements;
    private long _fallbacks;
    private int _largest;

    /// <summary>Transactions committed (or tried) by the group commit, batches of one included.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Settlements those transactions carried (Settlements / Batches = the mean batch size).</summary>
    public long Settlements => Interlocked.Read(ref _settlements);

    /// <summary>Batches that failed and were settled member by member.</summary>
    public long Fallbacks => Interlocked.Read(ref _fallbacks);

    /// <summary>True while a batch is being committed (with every committer slot busy, settlements arriving now queue for the next batch).</summary>
    public bool Committing
    {
        get
        {
            lock (_gate)
            {
                return _committers > 0;
            }
        }
    }

    /// <summary>The largest batch so far.</summary>
    public int LargestBatch => Volatile.Read(ref _largest);

    /// <summary>
    /// Settles one completed job, in a batch with whatever else is waiting. True when this settled it; false (nothing written
    /// for it) when the job had already ended. <paramref name="ct"/> is observed until the settlement is taken into a batch;
    /// after that it completes (a settlement is not abandoned half way).
    /// </summary>
    public Task<bool> SettleAsync(SettlementCompletion settlement, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(settlement);
        ct.ThrowIfCancellationRequested();
        var pending = new Pending(settlement, ct);
        bool lead;
        lock (_gate)
        {
            _queue.Enqueue(pending);
            lead = _committers < _maxCommitters;
            if (lead)
            {
                _committers++;
            }
        }

        return lead ? LeadAsync(pending) : pending.Outcome.Task;
    }

    /// <summary>
    /// Commits <paramref name="batch"/> as one transaction (the totals once, last), or — when that throws — each member alone;
    /// returns one outcome per member, in order. The queue uses it; tests call it to build a batch of their choosing.
    /// </summary>
    public async Task<IReadOnlyList<SettlementOutcome>> CommitAsync(IReadOnlyList<SettlementCompletion> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count == 0)
        {
            return [];
        }

        Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _settlements, batch.Count);
        MeshTelemetry.SettlementBatchSize.Record(batch.Count);
        var size = batch.Count;
        for (var seen = Volatile.Read(ref _largest); size > seen && Interlocked.CompareExchange(ref _largest, size, seen) != seen; seen = Volatile.Read(ref _largest))
        {
        }

        try
        {
            return await InOneTransactionAsync(batch);
        }
        catch (Exception) when (batch.Count > 1)
        {
            Interlocked.Increment(ref _fallbacks);
            MeshTelemetry.SettlementBatchFallbacks.Add(1);
            var outcomes = new SettlementOutcome[batch.Count];
            for (var i = 0; i < batch.Count; i++)
            {
                try
                {
                    outcomes[i] = (await InOneTransactionAsync([batch[i]]))[0];
                }
                catch (Exception e)
                {
                    outcomes[i] = new SettlementOutcome(false, e);
                }
            }

            return outcomes;
        }
    }

    /// <summary>
    /// Writes one settlement in the caller's transaction: the job's end (guarded: false and nothing written when it already
    /// ended), its winning attempt, the execution records and events of the earlier segments and of the final attempt; their
    /// running totals go to <paramref name="totals"/>, which the caller applies last.
    /// </summary>
    public static async Task<bool> WriteAsync(DbConnection c, DbTransaction tx, SettlementCompletion s, RunningTotals totals, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (!await JobRepository.FinishAsync(c, tx, s.Final, JobViews.TerminalStates, ct))
        {
            return false;
        }

        await JobRepository.EndWinningAttemptAsync(c, tx, s.Final.JobId, s.Attempt, s.NowMs, ct);
        var start = s.Final.StartTimeMs ?? s.NowMs;
        foreach (var segment in s.EarlierSegments)
        {
            await LedgerWriter.AppendCompletedAsync(c, tx, segment, start, totals, ct);
        }

        await LedgerWriter.AppendCompletedAsync(c, tx, s.Metering, start, totals, ct);
        return true;
    }

    /// <summary>
    /// Writes <paramref name="batch"/> in one transaction: each member in job id order (ordinal; arrival order kept among
    /// results of the same job), then the summed running totals, last. A batch is never abandoned half way (no token).
    /// On a store with array parameters (PostgreSQL) the members are written by one statement for the whole batch
    /// (<see cref="SettlementArrays"/>: the same guards, rows and order, 1 round trip instead of 7 per member).
    /// </summary>
    private Task<SettlementOutcome[]> InOneTransactionAsync(IReadOnlyList<SettlementCompletion> batch) =>
        database.InTransactionAsync(async (c, tx) =>
        {
            var totals = new RunningTotals();
            var outcomes = new SettlementOutcome[batch.Count];
            if (database.Dialect.ArrayParameters && SettlementArrays.Fits(batch))
            {
                var settled = await SettlementArrays.WriteAsync(c, tx, batch, totals);
                for (var i = 0; i < batch.Count; i++)
                {
                    outcomes[i] = new SettlementOutcome(settled[i], null);
                }
            }
            else
            {
                foreach (var i in Enumerable.Range(0, batch.Count).OrderBy(i => batch[i].Final.JobId, StringComparer.Ordinal))
                {
                    outcomes[i] = new SettlementOutcome(await WriteAsync(c, tx, batch[i], totals, CancellationToken.None), null);
                }
            }

            await totals.ApplyAsync(c, tx, CancellationToken.None);
            return outcomes;
        }, CancellationToken.None);

    private async Task<bool> LeadAsync(Pending own)
    {
        // A committer slot was free: this call commits at once (own is normally the first member of this batch; with several
        // committers another one may have taken it already, and then own's outcome comes from that batch).
        await CommitQueuedAsync();
        if (HasMore())
        {
            _ = Task.Run(DrainAsync);
        }

        return await own.Outcome.Task;
    }

    private async Task DrainAsync()
    {
        do
        {
            await CommitQueuedAsync();
        }
        while (HasMore());
    }

    /// <summary>True (and still the committer) when settlements queued up meanwhile; otherwise the committer role is released.</summary>
    private bool HasMore()
    {
        lock (_gate)
        {
            if (_queue.Count > 0)
            {
                return true;
            }

            _committers--;
            return false;
        }
    }

    private async Task CommitQueuedAsync()
    {
        var taken = new List<Pending>(Math.Min(MaxBatch, 8));
        lock (_gate)
        {
            while (taken.Count < MaxBatch && _queue.TryDequeue(out var next))
            {
                if (next.Cancel.IsCancellationRequested)
                {
                    next.Outcome.TrySetCanceled(next.Cancel);
                    continue;
                }

                taken.Add(next);
            }
        }

        if (taken.Count == 0)
        {
            return;
        }

        IReadOnlyList<SettlementOutcome> outcomes;
        try
        {
            outcomes = await CommitAsync([.. taken.Select(p => p.Settlement)]);
        }
        catch (Exception e)
        {
            outcomes = [.. taken.Select(_ => new SettlementOutcome(false, e))];
        }

        for (var i = 0; i < taken.Count; i++)
        {
            if (outcomes[i].Error is { } error)
            {
                taken[i].Outcome.TrySetException(error);
            }
            else
            {
                taken[i].Outcome.TrySetResult(outcomes[i].Settled);
            }
        }
    }

    private sealed class Pending(SettlementCompletion settlement, CancellationToken cancel)
    {
        public SettlementCompletion Settlement { get; } = settlement;

        public CancellationToken Cancel { get; } = cancel;

        public TaskCompletionSource<bool> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

using System.Data.Common;
using MeshAI.Common;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Jobs;

/// <summary>
/// The settlement transactions of the job plane, one public place for all of them: each writes a job's (or a chunk's) end
/// together with its ledger events in ONE transaction, guarded so that a second report of the same end changes nothing
/// (first result wins, billed once). The runner's strategies call these; so do the ledger property tests (no copy of the SQL).
/// </summary>
public sealed class JobSettler(Database database)
{
    /// <summary>
    /// The group commit that <see cref="CompleteAsync(JobRow, int, JobMeteringRow, IReadOnlyList{JobMeteringRow}, long, CancellationToken)"/>
    /// goes through: completions waiting at the same moment settle in one transaction (docs/job-plane.md "Settlement group commit").
    /// </summary>
    public SettlementBatcher Batcher { get; } = new(database);

    /// <summary>
    /// Settles a completed unchunked job: writes <paramref name="final"/> (state, device, runtime, cost, output) when the job
    /// is not terminal yet, ends the reporting attempt SUCCEEDED and appends the settlement's ledger events. False (nothing
    /// written) when the job had already ended. Committed by <see cref="Batcher"/>, together with the completions waiting
    /// at the same moment (at once when none is).
    /// </summary>
    public Task<bool> CompleteAsync(JobRow final, int attempt, JobMeteringRow metering, long nowMs, CancellationToken ct) =>
        CompleteAsync(final, attempt, metering, [], nowMs, ct);

    /// <summary>
    /// Settles a completed job together with <paramref name="earlierSegments"/> — the interrupted segments of a resumed chat
    /// stream, one execution record per device that streamed part of the answer (docs/chat-resume.md) —
    /// in the same transaction; <paramref name="final"/> carries their summed runtime and cost.
    /// </summary>
    public Task<bool> CompleteAsync(JobRow final, int attempt, JobMeteringRow metering, IReadOnlyList<JobMeteringRow> earlierSegments, long nowMs, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(final);
        ArgumentNullException.ThrowIfNull(metering);
        ArgumentNullException.ThrowIfNull(earlierSegments);
        return Batcher.SettleAsync(new SettlementCompletion(final, attempt, metering, earlierSegments, nowMs), ct);
    }

    /// <summary>
    /// Settles one chunk of a running chunked job: adds its runtime and cost to the job, stores its output (job_id + chunk_id
    /// is the key: a second result for the chunk is refused), ends its attempt and appends its ledger events. False (rolled
    /// back) when the job already ended or the chunk already had a result.
    /// </summary>
    public async Task<bool> CompleteChunkAsync(JobChunkRow chunk, JobMeteringRow metering, long jobStartMs, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        ArgumentNullException.ThrowIfNull(metering);
        var priced = LedgerPricing.Price(metering);
        await using var c = await database.OpenAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        // The job row first: it locks the row (PostgreSQL) so a concurrent cancel or failure of the job serialises with this.
        if (await JobRepository.AddChunkCompletionAsync(c, tx, chunk.JobId, metering.RuntimeMs, priced.BilledMs, priced.BurnMicro, metering.RelayBytes, JobViews.TerminalStates, ct) == 0 ||
            !await JobRepository.InsertChunkResultAsync(c, tx, chunk, ct))
        {
            await tx.RollbackAsync(ct);
            return false;
        }

        await JobRepository.EndAttemptAsync(c, tx, chunk.JobId, chunk.Attempt, (int)AttemptCause.Succeeded, "", chunk.EndTimeMs, ct);
        await LedgerWriter.AppendCompletedAsync(c, tx, metering, jobStartMs, ct);
        await tx.CommitAsync(ct);
        return true;
    }

    /// <summary>Completes a chunked job whose every chunk is settled (the assembled output in <paramref name="final"/>); false when it had already ended.</summary>
    public Task<bool> CompleteChunkedAsync(JobRow final, CancellationToken ct) =>
        database.InTransactionAsync((c, tx) => JobRepository.FinishAsync(c, tx, final, JobViews.TerminalStates, ct), ct);

    /// <summary>
    /// Ends a job without a result (FAILED or CANCELLED): writes the terminal state, ends the open attempts named in
    /// <paramref name="openAttempts"/> with their cause, and for FAILED appends the job_failed event (nothing is burned).
    /// False when the job had already ended.
    /// </summary>
    public Task<bool> FinishUnsuccessfullyAsync(JobRow final, IReadOnlyCollection<(int Attempt, AttemptCause Cause, string Detail)> openAttempts, long nowMs, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(final);
        ArgumentNullException.ThrowIfNull(openAttempts);
        return database.InTransactionAsync(async (c, tx) =>
        {
            if (!await JobRepository.FinishAsync(c, tx, final, JobViews.TerminalStates, ct))
            {
                return false;
            }

            foreach (var (attempt, cause, detail) in openAttempts)
            {
                await JobRepository.EndAttemptAsync(c, tx, final.JobId, attempt, (int)cause, detail, nowMs, ct);
            }

            if (final.State == (int)JobState.Failed)
            {
                await LedgerRepository.AppendAsync(c, tx, JobSettlement.Failed(final, nowMs), ct);
            }

            return true;
        }, ct);
    }

    /// <summary>
    /// Ends a job cut off at its max_cost_credits: CANCELLED, the attempt ended COST_CAP, billed exactly up to the cap
    /// (<see cref="LedgerWriter.AppendCappedAsync"/>), in one transaction; false when the job had already ended.
    /// </summary>
    public Task<bool> CapAsync(JobRow final, int attempt, JobMeteringRow metering, long nowMs, CancellationToken ct) =>
        CapAsync(final, attempt, metering, [], nowMs, ct);

    /// <summary>Ends a job at its cap after interrupted stream segments (<paramref name="earlierSegments"/>, settled in the same transaction).</summary>
    public Task<bool> CapAsync(JobRow final, int attempt, JobMeteringRow metering, IReadOnlyList<JobMeteringRow> earlierSegments, long nowMs, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(final);
        ArgumentNullException.ThrowIfNull(earlierSegments);
        return database.InTransactionAsync(async (c, tx) =>
        {
            if (!await JobRepository.FinishAsync(c, tx, final, JobViews.TerminalStates, ct))
            {
                return false;
            }

            foreach (var segment in earlierSegments)
            {
                await LedgerWriter.AppendCompletedAsync(c, tx, segment, final.StartTimeMs ?? nowMs, ct);
            }

            await JobRepository.EndAttemptAsync(c, tx, final.JobId, attempt, (int)AttemptCause.CostCap, final.ErrorMessage, nowMs, ct);
            await LedgerWriter.AppendCappedAsync(c, tx, metering, final.StartTimeMs ?? nowMs, ct);
            return true;
        }, ct);
    }

    /// <summary>
    /// Applies a spot-check verdict once, in one transaction: ends the spot-check attempt (when one was recorded), flags the
    /// original device on a mismatch, and releases (match, inconclusive) or withholds (mismatch) the held mint. Returns the
    /// micro-credits minted.
    /// </summary>
    public Task<long> ResolveSpotCheckAsync(SpotCheckVerdictRecord verdict, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(verdict);
        return database.InTransactionAsync(async (c, tx) =>
        {
            if (verdict.Attempt > 0)
            {
                await JobRepository.EndAttemptAsync(c, tx, verdict.JobId, verdict.Attempt, (int)verdict.Cause, verdict.AttemptDetail, verdict.NowMs, ct);
            }

            if (verdict.Verdict == SpotCheckVerdict.Mismatch)
            {
                await LedgerRepository.FlagDeviceAsync(c, tx, new DeviceFlagRow
                {
                    FlagId = Ids.New("flg"),
                    NetworkId = verdict.NetworkId,
                    DeviceId = verdict.OriginalDeviceId,
                    JobId = verdict.JobId,
                    Reason = verdict.FlagReason,
                    CreateTimeMs = verdict.NowMs,
                }, ct);
            }

            return await LedgerWriter.ResolveHeldMintAsync(c, tx, verdict.NetworkId, verdict.JobId, "", verdict.Verdict != SpotCheckVerdict.Mismatch, verdict.Detail, verdict.NowMs, ct);
        }, ct);
    }

    /// <summary>Ends one attempt (retry, timeout, decline) outside a job end; false when it had already ended.</summary>
    public Task<bool> EndAttemptAsync(string jobId, int attempt, AttemptCause cause, string detail, long nowMs, CancellationToken ct) =>
        database.RunAsync(c => JobRepository.EndAttemptAsync(c, null, jobId, attempt, (int)cause, detail, nowMs, ct), ct);

    /// <summary>Runs <paramref name="work"/> in one transaction of the job store (for callers composing their own end).</summary>
    public Task<T> InTransactionAsync<T>(Func<DbConnection, DbTransaction, Task<T>> work, CancellationToken ct) => database.InTransactionAsync(work, ct);
}

/// <summary>A spot-check verdict as <see cref="JobSettler.ResolveSpotCheckAsync"/> writes it.</summary>
public sealed record SpotCheckVerdictRecord(
    string NetworkId,
    string JobId,
    int Attempt,
    string OriginalDeviceId,
    SpotCheckVerdict Verdict,
    AttemptCause Cause,
    string AttemptDetail,
    string Detail,
    string FlagReason,
    long NowMs);

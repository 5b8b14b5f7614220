using Google.Protobuf.WellKnownTypes;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Jobs.Execution;

/// <summary>
/// An unchunked job: one attempt at a time; a lost attempt is retried on the next candidate after the network's backoff
/// until max_attempts; an accepted attempt is watched by the max_cost_credits timer; the first result settles the job
/// (a sampled one hands over to a <see cref="SpotCheckStrategy"/> with its mint held).
/// </summary>
internal class SingleJobStrategy : PlacementStrategy
{
    private readonly HashSet<string> _tried = new(StringComparer.Ordinal);

    /// <summary>
    /// Settlements of this job not written yet that its result or cap settles with it (a resumed chat's interrupted
    /// segments); their burn counts against max_cost_credits.
    /// </summary>
    protected virtual IReadOnlyList<JobMeteringRow> PendingSegments => [];

    private long PendingBurnMicro => PendingSegments.Sum(m => LedgerPricing.Price(m).BurnMicro);

    protected override async Task OnEventAsync(JobExecution job, JobEvent e, CancellationToken ct)
    {
        switch (e)
        {
            case StartRequested s:
                await PlaceAsync(job, s.Decision, ct, s.PlacedRow, s.PlacedAttempt);
                break;
            case ResumeRequested r:
                await ResumeAsync(job, r, ct);
                break;
            case RetryDue r when !job.Finished && job.Open.Count == 0 && r.AfterAttempt == job.LastAttempt:
                await PlaceAsync(job, await job.S.Placer.PlanAsync(job, _tried, ct), ct);
                break;
            case AgentReport { Kind: AgentReport.Progress } r:
                var progress = (JobProgress)r.Frame;
                PublishStream(job, r, () => new WatchJobResponse { Progress = new JobProgressFrame { Fraction = progress.Fraction, Message = progress.Message, ChunkId = progress.ChunkId } });
                break;
            case AgentReport { Kind: AgentReport.Token } r:
                OnToken(job, r, (JobToken)r.Frame);
                break;
            case AgentReport { Kind: AgentReport.Log } r:
                var log = (JobLog)r.Frame;
                PublishStream(job, r, () => new WatchJobResponse
                {
                    Log = new JobLogFrame { Level = log.Level, Message = log.Message, Fields = { log.Fields }, Time = Timestamp.FromDateTimeOffset(job.S.Clock.GetUtcNow()), DeviceId = r.Device.DeviceId },
                });
                break;
            case AgentReport { Kind: AgentReport.Result } r:
                await OnResultAsync(job, r, (JobResult)r.Frame, ct);
                break;
            case AgentReport { Kind: AgentReport.Failure } r when job.TryGetOpen(r.Device, r.Attempt, out var p):
                var failure = (JobFailure)r.Frame;
                if (failure.Retryable)
                {
                    await AttemptLostAsync(job, p, AttemptCause.WorkloadError, failure.Error, ct);
                }
                else
                {
                    await job.FinishUnsuccessfullyAsync(JobState.Failed, "workload failed: " + failure.Error, AttemptCause.WorkloadError, "workload failed: " + failure.Error, ct);
                }

                break;
            case RunningWriteDue w when job.Open.TryGetValue(w.Attempt, out var p):
                await WriteRunningAsync(job, p, ct);
                break;
            case CostCapReached c when job.Open.TryGetValue(c.Attempt, out var p):
                await StopAtCostCapAsync(job, p, c, ct);
                break;
            default:
                job.Log.LogDebug("Job {JobId}: ignoring {Event} (not about a current attempt)", job.JobId, e.GetType().Name);
                break;
        }
    }

    /// <summary>A streamed token of an open attempt: published to the watchers.</summary>
    protected virtual void OnToken(JobExecution job, AgentReport r, JobToken token) => PublishStream(job, r, () => TokenFrame(token));

    /// <summary>The watch frame of a token.</summary>
    protected static WatchJobResponse TokenFrame(JobToken token) => new() { Token = new JobTokenFrame { Token = token.Token, Index = token.Index, Nonce = token.Nonce } };

    /// <summary>What the next offer resumes (chat resume) and the attempt detail saying so; nothing for a plain retry.</summary>
    protected virtual (StreamResume? Resume, string Detail) NextOffer(JobExecution job) => (null, "");

    /// <summary>After an attempt ended without a result: why the job cannot be retried (null: retry as usual).</summary>
    protected virtual Task<string?> AttemptEndedAsync(JobExecution job, Placement placement, CancellationToken ct) => Task.FromResult<string?>(null);

    /// <summary>Whether a result of <paramref name="attempt"/> may settle the job (any attempt it placed, by default: a late result still counts).</summary>
    protected virtual bool AcceptsResult(JobExecution job, int attempt) => true;

    /// <summary>The job was claimed from the store (restart, dead owner) with these attempts.</summary>
    protected virtual void OnClaimed(JobExecution job, ResumeRequested r)
    {
    }

    protected override async Task AttemptLostAsync(JobExecution job, Placement placement, AttemptCause cause, string detail, CancellationToken ct)
    {
        if (job.Finished || !await job.EndAttemptAsync(placement, cause, detail, ct))
        {
            return;
        }

        if (await AttemptEndedAsync(job, placement, ct) is { } cannotRetry)
        {
            await job.FinishUnsuccessfullyAsync(JobState.Failed, cannotRetry, AttemptCause.Cancelled, detail, ct);
            return;
        }

        var attempts = job.Placed.Count;
        if (attempts >= Math.Max(1, job.Retry.MaxAttempts))
        {
            await job.FinishUnsuccessfullyAsync(JobState.Failed, $"gave up after {attempts} attempt(s); last: {detail}", AttemptCause.Cancelled, detail, ct);
            return;
        }

        var delay = job.Backoff(attempts);
        job.Log.LogInformation("Job {JobId} attempt {Attempt} ended ({Cause}: {Detail}); retrying in {DelayMs} ms", job.JobId, placement.Attempt, cause, detail, delay.TotalMilliseconds);
        job.ScheduleDetached(delay, new RetryDue(job.LastAttempt, ""));
    }

    /// <summary>
    /// Hedge instead of wait (docs/job-plane.md, "A killed agent"): when the job has an attempt left and the plan without the
    /// devices already tried selects someone, the dropped attempt ends at once (DISCONNECT) and the job is offered there now.
    /// The dropped device may still deliver: a result of any attempt placed on it is accepted while the job runs (the first
    /// result settles, billed once; the other open attempt is cancelled unbilled), and one after the job ended is ignored.
    /// Otherwise (no attempt left, nobody else eligible, <see cref="JobPlaneOptions.HedgeOnDisconnect"/> off) the grace stays,
    /// so a blip never fails a job that waiting could have saved.
    /// </summary>
    protected override async Task<bool> HedgeAsync(JobExecution job, Placement placement, CancellationToken ct)
    {
        // Online again (a newer stream of the device, here or on another relay, came before this end was reported): wait.
        if (!job.S.Options.HedgeOnDisconnect || job.Finished || job.Placed.Count >= Math.Max(1, job.Retry.MaxAttempts) ||
            !CanHedge(job, placement) || job.S.IsOnline(placement.DeviceId))
        {
            return false;
        }

        var decision = await job.S.Placer.PlanAsync(job, _tried, ct);
        if (decision.Selected is null)
        {
            return false;
        }

        const string Detail = "device disconnected; re-offered at once";
        if (!await job.EndAttemptAsync(placement, AttemptCause.Disconnect, Detail, ct))
        {
            return true; // already ended in the store (a result or a cancel raced this): nothing to re-offer
        }

        if (await AttemptEndedAsync(job, placement, ct) is { } cannotRetry)
        {
            await job.FinishUnsuccessfullyAsync(JobState.Failed, cannotRetry, AttemptCause.Cancelled, Detail, ct);
            return true;
        }

        job.Log.LogInformation("Job {JobId} attempt {Attempt}: device {DeviceId} disconnected; re-offered at once", job.JobId, placement.Attempt, placement.DeviceId);
        await PlaceAsync(job, decision, ct);
        return true;
    }

    /// <summary>Whether a dropped attempt may be hedged (a resumable chat that could not resume keeps the grace).</summary>
    protected virtual bool CanHedge(JobExecution job, Placement placement) => true;

    protected override async Task AcceptedAsync(JobExecution job, Placement placement, CancellationToken ct)
    {
        // Soft RUNNING (#11, docs/job-plane.md): a job without a cost cap writes RUNNING only if it is still running after
        // RunningWriteDelayMs; nothing after a restart depends on it (resume rebuilds open attempts from job_attempts, written
        // at placement), and the job's end writes the start time. A capped job writes it now: a resumed attempt re-arms its
        // cap only when the store says RUNNING.
        var delayMs = job.S.Options.RunningWriteDelayMs;
        if (job.MaxCostCredits <= 0 && delayMs > 0)
        {
            job.UnwrittenStartMs = job.NowMs;
            job.SoftRunning = true;
            placement.RunningWriteTimer?.Dispose();
            placement.RunningWriteTimer = job.Schedule(TimeSpan.FromMilliseconds(delayMs), new RunningWriteDue(placement.Attempt));
            // Nothing written since the submit placed this attempt: its rows, shown RUNNING, without a read (#11).
            var written = job.AsWritten is { } w && w.Attempt.Attempt == placement.Attempt && !job.Finished ? job.AsWritten : null;
            job.AsWritten = null;
            await job.PublishStatusAsync(ct, written);
            return;
        }

        job.AsWritten = null;
        if (await job.S.Jobs.MarkRunningAsync(job.JobId, (int)JobState.Placed, (int)JobState.Running, job.NowMs, ct) > 0)
        {
            job.UnwrittenStartMs = null;
            job.SoftRunning = false;
            await job.PublishStatusAsync(ct);
        }

        await ArmCostCapAsync(job, placement, ct);
    }

    /// <summary>The deferred RUNNING write of a soft-running attempt that is still open (the job did not end meanwhile).</summary>
    private static async Task WriteRunningAsync(JobExecution job, Placement placement, CancellationToken ct)
    {
        placement.RunningWriteTimer = null;
        if (job.Finished || !job.SoftRunning || job.UnwrittenStartMs is not { } since)
        {
            return;
        }

        await job.S.Jobs.MarkRunningAsync(job.JobId, (int)JobState.Placed, (int)JobState.Running, since, ct);
        job.UnwrittenStartMs = null; // the store says RUNNING now (or the job ended meanwhile: its end wrote the start)
        job.SoftRunning = false;
    }

    // placedRow/placedAttempt: the job and its first attempt as the submit wrote them (place at submit, #11).
    private async Task PlaceAsync(JobExecution job, PlacementDecision decision, CancellationToken ct, JobRow? placedRow = null, JobAttemptRow? placedAttempt = null)
    {
        if (decision.Selected is not { } selected)
        {
            await job.FinishUnsuccessfullyAsync(JobState.Failed, "no eligible device: " + decision.Reason, AttemptCause.Cancelled, "", ct);
            return;
        }

        var attempt = job.LastAttempt + 1;
        var (resume, detail) = NextOffer(job);
        var reason = attempt > 1 ? $"attempt {attempt} (retry{(detail.Length > 0 ? "; " + detail : "")}): {decision.Reason}" : decision.Reason;
        var placement = await job.S.Placer.OfferAsync(job, attempt, selected, JobPlacer.AttemptKind.Job, null, JobPlacer.DebugView(job.JobId, decision, reason), detail, ct, resume, placedAttempt);
        if (placement is null)
        {
            job.Finished = true; // ended elsewhere (cancelled meanwhile)
            job.End();
            return;
        }

        _tried.Add(selected.Device.DeviceId);
        job.SoftRunning = false; // the store says PLACED (this attempt) until its accept
        job.AsWritten = placedRow is not null && placedAttempt is not null && placedAttempt.Attempt == placement.Attempt && placedAttempt.DeviceId == placement.DeviceId
            ? (placedRow, placedAttempt)
            : null;
        await job.PublishStatusAsync(ct, job.AsWritten);
    }

    private async Task ResumeAsync(JobExecution job, ResumeRequested r, CancellationToken ct)
    {
        OnClaimed(job, r);
        foreach (var a in r.Attempts)
        {
            _tried.Add(a.DeviceId);
            job.Placed[a.Attempt] = (a.DeviceId, a.ChunkId);
            job.LastAttempt = Math.Max(job.LastAttempt, a.Attempt);
        }

        var open = r.Attempts.Where(a => a.EndTimeMs is null).OrderBy(a => a.Attempt).ToList();
        foreach (var a in open)
        {
            var placement = new Placement(a.Attempt, a.DeviceId, null, a.StartTimeMs) { Answered = true };
            job.Open[a.Attempt] = placement;
            job.S.Placer.Arm(job, placement, TimeSpan.FromMilliseconds(a.StartTimeMs + job.TimeoutMs - job.NowMs));
            // Its device may be reconnecting (the relay restarted with us): give it the grace before retrying elsewhere.
            if (!job.S.IsOnline(a.DeviceId))
            {
                placement.GraceTimer = job.Schedule(TimeSpan.FromMilliseconds(job.S.Options.ResumeGraceMs), new ReconnectGraceOver(a.Attempt));
            }

            await ArmCostCapAsync(job, placement, ct, resumedStartMs: a.StartTimeMs);
        }

        job.Log.LogInformation("Job {JobId} resumed with {Open} open attempt(s) of {Attempts}", job.JobId, open.Count, r.Attempts.Count);
        if (open.Count == 0)
        {
            // Claimed between two attempts (or before the first): place it now.
            await PlaceAsync(job, await job.S.Placer.PlanAsync(job, _tried, ct), ct);
        }
    }

    private async Task OnResultAsync(JobExecution job, AgentReport r, JobResult result, CancellationToken ct)
    {
        if (!job.Placed.TryGetValue(result.Attempt, out var placed) || placed.DeviceId != r.Device.DeviceId || r.Device.NetworkId != job.NetworkId || !AcceptsResult(job, result.Attempt))
        {
            job.Log.LogWarning("Ignoring result for job {JobId} attempt {Attempt} from {DeviceId}: not placed there", job.JobId, result.Attempt, r.Device.DeviceId);
            return;
        }

        if (job.Finished)
        {
            return; // duplicate or late: the first result won and was billed once
        }

        var (row, network, deviceRow) = await job.S.Jobs.GetSettlementInputsAsync(job.JobId, job.NetworkId, r.Device.DeviceId, ct);
        if (row is null || JobViews.IsTerminal((JobState)row.State) || network is null || deviceRow is null)
        {
            return; // duplicate or late: the first result won and was billed once
        }

        row.StartTimeMs = job.UnwrittenStartMs ?? row.StartTimeMs; // the latest accept not written yet (soft RUNNING) is the start
        var credits = ParsedCredits.Of(network.SettingsJson);
        var now = job.NowMs;
        var spotCheck = SpotCheck.ShouldCheck(row.JobId, (Contracts.Common.V1.WorkloadClass)row.WorkloadId, result.Encrypted, chunked: false, credits.SpotCheckSampleBps);
        var segments = PendingSegments;
        // Blob hook (#11): the stored input blobs the device fetched count as relayed bytes, like inline payload bytes.
        var relayBytes = r.RelayBytes + (job.S.Blobs?.ReferencedBytes(job.NetworkId, job.Envelope.InputManifest?.Blobs ?? []) ?? 0);
        var metering = await job.S.LedgerWriter.MeterAsync(row, result, deviceRow, relayBytes, credits, now, spotCheck, PendingBurnMicro, ct);
        // Anti-abuse canary (docs/anti-abuse.md): a sampled settlement not spot-checked holds its mint until the device answers a known-answer job.
        var canary = spotCheck ? null : await CanaryStrategy.PrepareAsync(job, r.Device.DeviceId, credits, ct);
        if (canary is not null)
        {
            metering = LedgerWriter.HoldMint(metering, Canary.PendingReason);
        }

        var priced = LedgerPricing.Price(metering);
        row.State = (int)JobState.Completed;
        row.DeviceId = r.Device.DeviceId;
        row.Tier = metering.Tier;
        row.EndTimeMs = now;
        row.StartTimeMs ??= row.PlacementTimeMs;
        row.RuntimeMs = metering.RuntimeMs + segments.Sum(m => m.RuntimeMs);
        row.BilledRuntimeMs = priced.BilledMs + segments.Sum(m => LedgerPricing.Price(m).BilledMs);
        row.CostMicro = priced.BurnMicro + PendingBurnMicro;
        row.RelayBytes = relayBytes;
        row.Output = result.Output.ToByteArray();
        row.OutputNonce = result.Nonce.ToByteArray();
        row.OutputEncrypted = result.Encrypted;
        row.ErrorMessage = "";
        if (!await job.S.Settler.CompleteAsync(row, result.Attempt, metering, segments, now, ct))
        {
            return;
        }

        job.Finished = true;
        job.Log.LogInformation("Job {JobId} completed on {DeviceId}: {RuntimeMs} ms, burned {BurnMicro} µ, minted {MintMicro} µ", row.JobId, r.Device.DeviceId, metering.RuntimeMs, priced.BurnMicro, priced.MintMicro);
        foreach (var other in job.Open.Values.Where(p => p.Attempt != result.Attempt).ToList())
        {
            job.CancelOnDevice(other, "completed by another attempt");
            await job.EndAttemptAsync(other, AttemptCause.Cancelled, $"completed by attempt {result.Attempt}", ct);
        }

        foreach (var p in job.Open.Values)
        {
            p.StopTimers();
        }

        job.Open.Clear();
        var view = JobViews.ToProto(row, await job.S.Jobs.ListAttemptsAsync(row.JobId, ct));
        job.S.Hub.Publish(row.JobId, new WatchJobResponse { Result = JobViews.Result(row, view) });
        if (spotCheck)
        {
            var check = new SpotCheckStrategy(r.Device.DeviceId, result.Attempt, row.Output);
            job.Strategy = check;
            await check.StartAsync(job, ct);
        }
        else
        {
            job.FollowUp = canary;
            job.End();
        }
    }

    /// <summary>
    /// Arms the max_cost_credits timer of an accepted attempt: from now, or — for an attempt resumed after a restart or a
    /// claim (<paramref name="resumedStartMs"/>: when it was offered) — for what is left of its budget, so a resumed job is
    /// still stopped at its cap (at once when the cap passed while no instance owned it).
    /// </summary>
    private async Task ArmCostCapAsync(JobExecution job, Placement placement, CancellationToken ct, long? resumedStartMs = null)
    {
        if (job.MaxCostCredits <= 0)
        {
            return;
        }

        var (row, network, deviceRow) = await job.S.Jobs.GetSettlementInputsAsync(job.JobId, job.NetworkId, placement.DeviceId, ct);
        if (row is null || network is null || deviceRow is null || (resumedStartMs is not null && (JobState)row.State != JobState.Running))
        {
            return; // (a resumed attempt that was not accepted yet is armed when its accept arrives)
        }

        var credits = ParsedCredits.Of(network.SettingsJson);
        // What is left of the cap after the interrupted segments this attempt continues (a resumed chat).
        if (JobBudget.CapRuntimeMs(Math.Max(1, row.MaxCostCredits - PendingBurnMicro), LedgerWriter.TierOf(row, deviceRow), credits) is not { } capMs)
        {
            return; // a free tier never reaches the cap
        }

        // One millisecond past the longest runtime whose burn fits the cap: the first moment the job would owe more.
        var startedMs = resumedStartMs ?? job.NowMs;
        placement.CostCapTimer?.Dispose();
        placement.CostCapTimer = job.Schedule(TimeSpan.FromMilliseconds(Math.Max(0, startedMs + capMs + 1 - job.NowMs)), new CostCapReached(placement.Attempt, startedMs, capMs));
    }

    /// <summary>max_cost_credits reached before a result: the agent is told to stop, the job ends CANCELLED, billed exactly up to the cap.</summary>
    private async Task StopAtCostCapAsync(JobExecution job, Placement placement, CostCapReached c, CancellationToken ct)
    {
        if (job.Finished)
        {
            return;
        }

        var (row, network, deviceRow) = await job.S.Jobs.GetSettlementInputsAsync(job.JobId, job.NetworkId, placement.DeviceId, ct);
        if (row is null || JobViews.IsTerminal((JobState)row.State))
        {
            return;
        }

        job.CancelOnDevice(placement, "max_cost_micro reached");
        placement.StopTimers();
        job.Open.Remove(placement.Attempt);
        if (network is null || deviceRow is null)
        {
            job.Open[placement.Attempt] = placement;
            await job.FinishUnsuccessfullyAsync(JobState.Cancelled, "max_cost_micro reached", AttemptCause.CostCap, "max_cost_micro reached", ct);
            return;
        }

        var now = job.NowMs;
        var runtime = Math.Max(c.CapMs + 1, now - c.StartedMs);
        var credits = ParsedCredits.Of(network.SettingsJson);
        var segments = PendingSegments;
        var metering = await job.S.LedgerWriter.MeterCappedAsync(row, placement.Attempt, deviceRow, runtime, credits, now, PendingBurnMicro, ct);
        var priced = LedgerPricing.Price(metering);
        row.State = (int)JobState.Cancelled;
        row.EndTimeMs = now;
        row.StartTimeMs ??= row.PlacementTimeMs;
        row.RuntimeMs = metering.RuntimeMs + segments.Sum(m => m.RuntimeMs);
        row.BilledRuntimeMs = priced.BilledMs + segments.Sum(m => LedgerPricing.Price(m).BilledMs);
        row.CostMicro = priced.BurnMicro + PendingBurnMicro;
        row.ErrorMessage = $"cost cap max_cost_micro {MeshAI.Common.Domain.Money.CreditsWithMicro(row.MaxCostCredits)} reached after {runtime} ms: cancelled, billed {MeshAI.Common.Domain.Money.CreditsWithMicro(row.CostMicro)}";
        job.Finished = true;
        if (await job.S.Settler.CapAsync(row, placement.Attempt, metering, segments, now, ct))
        {
            job.Log.LogInformation("Job {JobId} stopped at its cost cap on {DeviceId}: {RuntimeMs} ms, burned {BurnMicro} µ", row.JobId, placement.DeviceId, runtime, priced.BurnMicro);
            await job.PublishStatusAsync(ct);
        }

        job.End();
    }
}

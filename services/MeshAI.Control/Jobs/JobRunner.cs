using System.Collections.Concurrent;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Crypto;
using MeshAI.Common.Domain;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Devices;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Jobs;

/// <summary>
/// Runs placed jobs: signs tickets and offers them through the relay, follows what agents report (the control side of
/// <see cref="IJobEventSink"/>), retries on disconnect / timeout / decline with the network's backoff, and settles
/// completed jobs with their ledger events in one transaction.
/// </summary>
public sealed partial class JobRunner(
    Database database,
    JobRepository jobs,
    DeviceRepository devices,
    NetworkRepository networks,
    NetworkKeyVault keys,
    JobPlanner planner,
    IJobDispatcher dispatcher,
    JobWatchHub hub,
    TimeProvider clock,
    ILogger<JobRunner> logger,
    LedgerWriter ledgerWriter) : IJobEventSink, IDisposable
{
    private readonly ConcurrentDictionary<string, ActiveJob> _active = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;

    /// <summary>In-memory state of a job that is not finished yet (one per job, guarded by its gate).</summary>
    private sealed class ActiveJob(string jobId, string networkId, JobEnvelope envelope, byte[] envelopeBytes, long timeoutMs, NetworkSettings settings)
    {
        public string JobId { get; } = jobId;
        public string NetworkId { get; } = networkId;
        public JobEnvelope Envelope { get; } = envelope;
        public byte[] EnvelopeBytes { get; } = envelopeBytes;
        public long TimeoutMs { get; } = timeoutMs;
        public NetworkSettings Settings { get; } = settings;
        public JobPlacementContext Context { get; init; } = JobPlacementContext.Anonymous;
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public HashSet<string> Tried { get; } = new(StringComparer.Ordinal);
        public int Attempt { get; set; }
        public string DeviceId { get; set; } = "";
        public bool Finished { get; set; }
        public CancellationTokenSource? AttemptTimer { get; set; }
        public CancellationTokenSource? CostCapTimer { get; set; }

        public void StopTimer()
        {
            AttemptTimer?.Cancel();
            AttemptTimer?.Dispose();
            AttemptTimer = null;
            StopCostCapTimer();
        }

        public void StopCostCapTimer()
        {
            CostCapTimer?.Cancel();
            CostCapTimer?.Dispose();
            CostCapTimer = null;
        }
    }

    /// <summary>Starts a freshly persisted job with its first placement decision.</summary>
    public Task StartAsync(JobRow row, JobEnvelope envelope, NetworkSettings settings, PlacementDecision decision, CancellationToken ct) =>
        StartAsync(row, envelope, settings, decision, JobPlacementContext.Anonymous, ct);

    /// <summary>Starts a freshly persisted job as submitted in <paramref name="context"/>; chunked jobs dispatch every chunk.</summary>
    public async Task StartAsync(JobRow row, JobEnvelope envelope, NetworkSettings settings, PlacementDecision decision, JobPlacementContext context, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(context);
        if (context.Chunks is { Count: > 0 })
        {
            await StartChunkedAsync(row, envelope, settings, decision, context, ct);
            return;
        }

        var job = new ActiveJob(row.JobId, row.NetworkId, envelope, row.Envelope, row.TimeoutMs, settings) { Context = context };
        _active[row.JobId] = job;
        await job.Gate.WaitAsync(ct);
        try
        {
            await PlaceLockedAsync(job, decision, ct);
        }
        finally
        {
            job.Gate.Release();
        }
    }

    /// <summary>Cancels a job at the submitter's request; returns false when it had already finished.</summary>
    public async Task<bool> CancelAsync(string jobId, string reason, CancellationToken ct)
    {
        if (_chunked.TryGetValue(jobId, out var chunked))
        {
            return await CancelChunkedAsync(chunked, reason, ct);
        }

        if (_active.TryGetValue(jobId, out var job))
        {
            await job.Gate.WaitAsync(ct);
            try
            {
                if (job.Finished)
                {
                    return false;
                }

                if (job.DeviceId.Length > 0)
                {
                    dispatcher.TryCancel(job.DeviceId, new JobCancel { JobId = jobId, Attempt = job.Attempt, Reason = reason });
                }

                return await FinishUnsuccessfullyLockedAsync(job, JobState.Cancelled, AttemptCause.Cancelled, reason, ct);
            }
            finally
            {
                job.Gate.Release();
            }
        }

        var row = await jobs.GetJobByIdAsync(jobId, ct);
        if (row is null || JobViews.IsTerminal((JobState)row.State))
        {
            return false;
        }

        return await FinishRowAsync(row, JobState.Cancelled, reason, null, ct);
    }

    /// <inheritdoc />
    public async Task OnAcceptedAsync(DeviceIdentity device, JobAccept accept, CancellationToken cancellationToken)
    {
        if (_chunked.TryGetValue(accept.JobId, out var chunked))
        {
            await OnChunkAcceptedAsync(chunked, device, accept, cancellationToken);
            return;
        }

        if (!TryGetCurrent(device, accept.JobId, accept.Attempt, out var job))
        {
            return;
        }

        if (await jobs.MarkRunningAsync(job.JobId, (int)JobState.Placed, (int)JobState.Running, NowMs, cancellationToken) > 0)
        {
            await PublishStatusAsync(job.JobId, cancellationToken);
        }

        await StartCostCapTimerAsync(job, accept.Attempt, cancellationToken);
    }

    /// <inheritdoc />
    public Task OnDeclinedAsync(DeviceIdentity device, JobDecline decline, CancellationToken cancellationToken)
    {
        if (TryGetSpotCheck(device, decline.JobId, decline.Attempt, out var spotCheck))
        {
            OnSpotCheckEnded(spotCheck, AttemptCause.NodeDecline, $"re-run declined: {decline.Reason} {decline.Detail}".Trim());
            return Task.CompletedTask;
        }

        if (_chunked.TryGetValue(decline.JobId, out var chunked))
        {
            ChunkRetryInBackground(chunked, device.DeviceId, decline.Attempt, AttemptCause.NodeDecline, $"declined: {decline.Reason} {decline.Detail}".Trim());
            return Task.CompletedTask;
        }

        if (TryGetCurrent(device, decline.JobId, decline.Attempt, out var job))
        {
            RetryInBackground(job, decline.Attempt, AttemptCause.NodeDecline, $"declined: {decline.Reason} {decline.Detail}".Trim());
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task OnProgressAsync(DeviceIdentity device, JobProgress progress, CancellationToken cancellationToken)
    {
        if (_chunked.TryGetValue(progress.JobId, out var chunked))
        {
            OnChunkProgress(chunked, device, progress);
            return Task.CompletedTask;
        }

        if (TryGetCurrent(device, progress.JobId, progress.Attempt, out var job))
        {
            hub.Publish(job.JobId, new WatchJobResponse { Progress = new JobProgressFrame { Fraction = progress.Fraction, Message = progress.Message, ChunkId = progress.ChunkId } });
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task OnTokenAsync(DeviceIdentity device, JobToken token, CancellationToken cancellationToken)
    {
        if (TryGetCurrent(device, token.JobId, token.Attempt, out var job))
        {
            hub.Publish(job.JobId, new WatchJobResponse { Token = new JobTokenFrame { Token = token.Token, Index = token.Index, Nonce = token.Nonce } });
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task OnLogAsync(DeviceIdentity device, JobLog log, CancellationToken cancellationToken)
    {
        if (TryGetCurrent(device, log.JobId, log.Attempt, out var job))
        {
            hub.Publish(job.JobId, new WatchJobResponse
            {
                Log = new JobLogFrame { Level = log.Level, Message = log.Message, Fields = { log.Fields }, Time = Timestamp.FromDateTimeOffset(clock.GetUtcNow()), DeviceId = device.DeviceId },
            });
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public async Task OnResultAsync(DeviceIdentity device, JobResult result, long relayBytes, CancellationToken cancellationToken)
    {
        if (TryGetSpotCheck(device, result.JobId, result.Attempt, out var spotCheck))
        {
            // Not the relay stream's token: once a verdict is taken it must be written, even if the stream ends meanwhile.
            await OnSpotCheckResultAsync(spotCheck, result, _stopping.Token);
            return;
        }

        var row = await jobs.GetJobByIdAsync(result.JobId, cancellationToken);
        if (row is null || row.NetworkId != device.NetworkId)
        {
            logger.LogWarning("Ignoring result for unknown job {JobId} from {DeviceId}", result.JobId, device.DeviceId);
            return;
        }

        if (row.ChunkCount > 0)
        {
            await OnChunkResultAsync(row, device, result, relayBytes, cancellationToken);
            return;
        }

        var attempts = (await jobs.ListAttemptsAsync(row.JobId, cancellationToken)).ToList();
        if (!attempts.Any(a => a.Attempt == result.Attempt && a.DeviceId == device.DeviceId))
        {
            logger.LogWarning("Ignoring result for job {JobId} attempt {Attempt} from {DeviceId}: not placed there", row.JobId, result.Attempt, device.DeviceId);
            return;
        }

        _active.TryGetValue(row.JobId, out var job);
        if (job is not null)
        {
            await job.Gate.WaitAsync(cancellationToken);
        }

        JobRow? settled;
        var mintHeld = false;
        try
        {
            // A spot-check needs the job's envelope and placement context, which only the runner that placed it holds.
            (settled, mintHeld) = await SettleAsync(row.JobId, device, result, relayBytes, spotCheckPossible: job is not null, cancellationToken);
            if (settled is not null && job is not null)
            {
                job.Finished = true;
                job.StopTimer();
                _active.TryRemove(job.JobId, out _);
            }
        }
        finally
        {
            job?.Gate.Release();
        }

        if (settled is not null && mintHeld && job is not null)
        {
            StartSpotCheckInBackground(job, device.DeviceId, result.Attempt, settled.Output ?? []);
        }
    }

    /// <inheritdoc />
    public async Task OnFailureAsync(DeviceIdentity device, JobFailure failure, long relayBytes, CancellationToken cancellationToken)
    {
        if (TryGetSpotCheck(device, failure.JobId, failure.Attempt, out var spotCheck))
        {
            OnSpotCheckEnded(spotCheck, AttemptCause.WorkloadError, "re-run failed: " + failure.Error);
            return;
        }

        if (_chunked.TryGetValue(failure.JobId, out var chunked))
        {
            await OnChunkFailureAsync(chunked, device, failure, cancellationToken);
            return;
        }

        if (!TryGetCurrent(device, failure.JobId, failure.Attempt, out var job))
        {
            return;
        }

        if (failure.Retryable)
        {
            RetryInBackground(job, failure.Attempt, AttemptCause.WorkloadError, failure.Error);
            return;
        }

        await job.Gate.WaitAsync(cancellationToken);
        try
        {
            if (!job.Finished && job.Attempt == failure.Attempt)
            {
                await FinishUnsuccessfullyLockedAsync(job, JobState.Failed, AttemptCause.WorkloadError, "workload failed: " + failure.Error, cancellationToken);
            }
        }
        finally
        {
            job.Gate.Release();
        }
    }

    /// <inheritdoc />
    public Task OnDisconnectedAsync(DeviceIdentity device, CancellationToken cancellationToken)
    {
        foreach (var job in _active.Values.Where(j => j.DeviceId == device.DeviceId && !j.Finished))
        {
            RetryInBackground(job, job.Attempt, AttemptCause.Disconnect, "device disconnected");
        }

        OnChunkDeviceDisconnected(device.DeviceId);
        foreach (var spotCheck in _spotChecks.Values.Where(s => s.DeviceId == device.DeviceId && s.Attempt > 0))
        {
            OnSpotCheckEnded(spotCheck, AttemptCause.Disconnect, "second device disconnected");
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return; // registered both as itself and as IJobEventSink
        }

        _stopping.Cancel();
        foreach (var job in _active.Values)
        {
            job.StopTimer();
        }

        StopChunkTimers();
        StopSpotCheckTimers();

        _stopping.Dispose();
    }

    private long NowMs => clock.GetUtcNow().ToUnixTimeMilliseconds();

    private bool TryGetCurrent(DeviceIdentity device, string jobId, int attempt, out ActiveJob job)
    {
        if (_active.TryGetValue(jobId, out job!) && !job.Finished && job.DeviceId == device.DeviceId && job.Attempt == attempt && job.NetworkId == device.NetworkId)
        {
            return true;
        }

        logger.LogDebug("Ignoring report for job {JobId} attempt {Attempt} from {DeviceId}: not its current placement", jobId, attempt, device.DeviceId);
        return false;
    }

    private async Task PlaceLockedAsync(ActiveJob job, PlacementDecision decision, CancellationToken ct)
    {
        if (decision.Selected is not { } selected)
        {
            await FinishUnsuccessfullyLockedAsync(job, JobState.Failed, null, "no eligible device: " + decision.Reason, ct);
            return;
        }

        var attempt = job.Attempt + 1;
        var now = clock.GetUtcNow();
        var debugView = new JobDebugView
        {
            JobId = job.JobId,
            Eligibility = { decision.Eligibility },
            TopCandidates = { decision.Ranked.Take(5) },
            SelectedDeviceId = selected.Device.DeviceId,
            SelectionReason = attempt > 1 ? $"attempt {attempt} (retry): {decision.Reason}" : decision.Reason,
        };
        var placed = await jobs.RecordPlacementAsync(new JobAttemptRow
        {
            JobId = job.JobId,
            Attempt = attempt,
            DeviceId = selected.Device.DeviceId,
            Cause = (int)AttemptCause.Unspecified,
            StartTimeMs = now.ToUnixTimeMilliseconds(),
        }, (int)JobState.Placed, (int)selected.Tier, debugView.ToByteArray(), JobViews.TerminalStates, ct);
        if (!placed)
        {
            job.Finished = true;
            _active.TryRemove(job.JobId, out _);
            return;
        }

        job.Attempt = attempt;
        job.DeviceId = selected.Device.DeviceId;
        job.Tried.Add(selected.Device.DeviceId);

        var ticketKey = await keys.TicketKeyAsync(job.NetworkId, selected.Device.DeviceId, ct);
        var ticket = PlacementTickets.Sign(new PlacementTicketDetails
        {
            JobId = job.JobId,
            Attempt = attempt,
            DeviceId = selected.Device.DeviceId,
            NetworkId = job.NetworkId,
            EnvelopeSha256 = Secrets.Sha256Hex(job.EnvelopeBytes),
            ExpireTime = Timestamp.FromDateTimeOffset(now.AddMilliseconds(job.TimeoutMs)),
        }, ticketKey);

        StartTimer(job, attempt);
        await PublishStatusAsync(job.JobId, ct);
        logger.LogInformation("Job {JobId} attempt {Attempt} offered to {DeviceId}", job.JobId, attempt, selected.Device.DeviceId);
        if (!dispatcher.TryOffer(selected.Device.DeviceId, new JobOffer { Ticket = ticket, Envelope = ByteString.CopyFrom(job.EnvelopeBytes) }))
        {
            RetryInBackground(job, attempt, AttemptCause.Disconnect, "device has no live relay stream");
        }
    }

    private void StartTimer(ActiveJob job, int attempt)
    {
        job.StopTimer();
        var timer = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        job.AttemptTimer = timer;
        var token = timer.Token;
        _ = Task.Delay(TimeSpan.FromMilliseconds(job.TimeoutMs), clock, token).ContinueWith(
            t =>
            {
                if (!t.IsCanceled)
                {
                    dispatcher.TryCancel(job.DeviceId, new JobCancel { JobId = job.JobId, Attempt = attempt, Reason = "timeout" });
                    RetryInBackground(job, attempt, AttemptCause.Timeout, $"no result within {job.TimeoutMs} ms");
                }
            },
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void RetryInBackground(ActiveJob job, int attempt, AttemptCause cause, string detail) =>
        _ = Task.Run(async () =>
        {
            try
            {
                await RetryAsync(job, attempt, cause, detail, _stopping.Token);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                logger.LogError(e, "Retrying job {JobId} failed", job.JobId);
            }
        });

    private async Task RetryAsync(ActiveJob job, int attempt, AttemptCause cause, string detail, CancellationToken ct)
    {
        int delayMs;
        await job.Gate.WaitAsync(ct);
        try
        {
            if (job.Finished || job.Attempt != attempt)
            {
                return;
            }

            job.StopTimer();
            if (!await jobs.EndAttemptAsync(job.JobId, attempt, (int)cause, detail, NowMs, ct))
            {
                return;
            }

            var retry = job.Settings.RetryPolicy ?? new RetryPolicy { MaxAttempts = 1 };
            if (attempt >= Math.Max(1, retry.MaxAttempts))
            {
                await FinishUnsuccessfullyLockedAsync(job, JobState.Failed, null, $"gave up after {attempt} attempt(s); last: {detail}", ct);
                return;
            }

            delayMs = retry.BackoffMs.Count == 0 ? 0 : retry.BackoffMs[Math.Min(attempt - 1, retry.BackoffMs.Count - 1)];
            logger.LogInformation("Job {JobId} attempt {Attempt} ended ({Cause}: {Detail}); retrying in {DelayMs} ms", job.JobId, attempt, cause, detail, delayMs);
        }
        finally
        {
            job.Gate.Release();
        }

        await Task.Delay(TimeSpan.FromMilliseconds(delayMs), clock, ct);
        await job.Gate.WaitAsync(ct);
        try
        {
            if (job.Finished || job.Attempt != attempt)
            {
                return;
            }

            var decision = await planner.PlanAsync(job.Envelope, job.Settings, job.Tried, job.Context, ct);
            await PlaceLockedAsync(job, decision, ct);
        }
        finally
        {
            job.Gate.Release();
        }
    }

    private async Task<bool> FinishUnsuccessfullyLockedAsync(ActiveJob job, JobState state, AttemptCause? cause, string message, CancellationToken ct)
    {
        job.StopTimer();
        job.Finished = true;
        _active.TryRemove(job.JobId, out _);
        var row = await jobs.GetJobByIdAsync(job.JobId, ct);
        if (row is null)
        {
            return false;
        }

        return await FinishRowAsync(row, state, message, cause is null ? null : (job.Attempt, cause.Value), ct);
    }

    private async Task<bool> FinishRowAsync(JobRow row, JobState state, string message, (int Attempt, AttemptCause Cause)? openAttempt, CancellationToken ct)
    {
        var now = NowMs;
        row.State = (int)state;
        row.ErrorMessage = message;
        row.EndTimeMs = now;
        var finished = await database.InTransactionAsync(async (c, tx) =>
        {
            if (!await JobRepository.FinishAsync(c, tx, row, JobViews.TerminalStates, ct))
            {
                return false;
            }

            if (openAttempt is { } open)
            {
                await JobRepository.EndAttemptAsync(c, tx, row.JobId, open.Attempt, (int)open.Cause, message, now, ct);
            }

            if (state == JobState.Failed)
            {
                await LedgerRepository.AppendAsync(c, tx, JobSettlement.Failed(row, now), ct);
            }

            return true;
        }, ct);
        if (finished)
        {
            logger.LogInformation("Job {JobId} {State}: {Message}", row.JobId, state, message);
            await PublishStatusAsync(row.JobId, ct);
        }

        return finished;
    }

    /// <summary>Settles a result; MintHeld when the job was sampled for a spot-check and its mint is held until the check ends.</summary>
    private async Task<(JobRow? Row, bool MintHeld)> SettleAsync(string jobId, DeviceIdentity device, JobResult result, long relayBytes, bool spotCheckPossible, CancellationToken ct)
    {
        var row = await jobs.GetJobByIdAsync(jobId, ct);
        if (row is null || JobViews.IsTerminal((JobState)row.State))
        {
            return (null, false); // duplicate or late result: the first one won and was billed once
        }

        var network = await networks.GetNetworkAsync(row.NetworkId, ct);
        var deviceRow = await devices.GetDeviceByIdAsync(device.DeviceId, ct);
        if (network is null || deviceRow is null)
        {
            return (null, false);
        }

        var credits = NetworkDefaults.FromJson(network.SettingsJson).Credits;
        var now = NowMs;
        var spotCheck = spotCheckPossible && SpotCheck.ShouldCheck(row.JobId, (WorkloadClass)row.WorkloadId, result.Encrypted, chunked: row.ChunkCount > 0, credits.SpotCheckSampleBps);
        var metering = await ledgerWriter.MeterAsync(row, result, deviceRow, relayBytes, credits, now, holdMintForSpotCheck: spotCheck, ct);
        var priced = LedgerPricing.Price(metering);
        var tier = (Tier)metering.Tier;
        var charge = new Charge(metering.RuntimeMs, priced.BilledMs, priced.BurnMicro, priced.MintMicro);
        var burn = priced.BurnMicro;

        row.State = (int)JobState.Completed;
        row.DeviceId = device.DeviceId;
        row.Tier = (int)tier;
        row.EndTimeMs = now;
        row.StartTimeMs ??= row.PlacementTimeMs;
        row.RuntimeMs = charge.RuntimeMs;
        row.BilledRuntimeMs = charge.BilledRuntimeMs;
        row.CostMicro = burn;
        row.RelayBytes = relayBytes;
        row.Output = result.Output.ToByteArray();
        row.OutputNonce = result.Nonce.ToByteArray();
        row.OutputEncrypted = result.Encrypted;
        row.ErrorMessage = "";

        var settled = await database.InTransactionAsync(async (c, tx) =>
        {
            if (!await JobRepository.FinishAsync(c, tx, row, JobViews.TerminalStates, ct))
            {
                return false;
            }

            await JobRepository.EndAttemptAsync(c, tx, row.JobId, result.Attempt, (int)AttemptCause.Succeeded, "", now, ct);
            await LedgerWriter.AppendCompletedAsync(c, tx, metering, row.StartTimeMs ?? now, ct);

            return true;
        }, ct);
        if (!settled)
        {
            return (null, false);
        }

        logger.LogInformation("Job {JobId} completed on {DeviceId}: {RuntimeMs} ms, burned {BurnMicro} µ, minted {MintMicro} µ", row.JobId, device.DeviceId, charge.RuntimeMs, burn, charge.MintMicro);
        var job = JobViews.ToProto(row, await jobs.ListAttemptsAsync(row.JobId, ct));
        hub.Publish(row.JobId, new WatchJobResponse { Result = JobViews.Result(row, job) });
        return (row, spotCheck);
    }

    private async Task PublishStatusAsync(string jobId, CancellationToken ct)
    {
        var row = await jobs.GetJobByIdAsync(jobId, ct);
        if (row is not null)
        {
            hub.Publish(jobId, new WatchJobResponse { Status = new JobStatusFrame { Job = JobViews.ToProto(row, await jobs.ListAttemptsAsync(jobId, ct)) } });
        }
    }
}

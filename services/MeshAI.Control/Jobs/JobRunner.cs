using System.Collections.Concurrent;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Jobs.Chunking;
using MeshAI.Control.Jobs.Execution;
using MeshAI.Control.Networks;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Jobs;

/// <summary>
/// The jobs this control instance runs: one <see cref="JobExecution"/> (mailbox + strategy) per job it holds the lease of.
/// It is the control side of <see cref="IJobEventSink"/> (agent reports are posted into the job's mailbox; terminal reports
/// complete only once handled, so the relay acknowledges them after the store has them), starts submitted jobs, resumes
/// claimed ones (restart, dead owner), renews and claims leases, and on shutdown awaits every execution.
/// </summary>
public sealed class JobRunner(
    ControlInstance instance,
    JobPlaneServices services,
    JobRepository jobs,
    NetworkRepository networks,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock,
    ILogger<JobRunner> logger) : ILocalJobOwner, IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, JobExecution> _executions = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly JobPlaneOptions _options = options.Value.Jobs;
    private int _stopped;

    /// <summary>This instance's id: the owner written into the job rows it runs.</summary>
    public string InstanceId => instance.Id;

    /// <summary>Jobs running here now.</summary>
    public int RunningCount => _executions.Count;

    /// <summary>True when this instance runs the job (a relay in this process then hands its reports here directly, #11).</summary>
    public bool Runs(string jobId) => _executions.ContainsKey(jobId);

    /// <summary>The lease expiry a job owned from now gets.</summary>
    public long NewLeaseExpiryMs() => clock.GetUtcNow().ToUnixTimeMilliseconds() + _options.LeaseMs;

    /// <summary>Starts a freshly persisted job (owned by this instance) with its first placement decision.</summary>
    public Task StartAsync(JobRow row, JobEnvelope envelope, NetworkSettings settings, PlacementDecision decision, CancellationToken ct) =>
        StartAsync(row, envelope, settings, decision, JobPlacementContext.Anonymous, ct);

    /// <summary>
    /// Starts a freshly persisted job as submitted in <paramref name="context"/>; waits until its first placement is made.
    /// With <paramref name="placedAttempt"/> the job was inserted PLACED with that first attempt (place at submit,
    /// <see cref="JobRepository.TryInsertPlacedJobAsync"/>): it is offered without another write.
    /// </summary>
    public async Task StartAsync(JobRow row, JobEnvelope envelope, NetworkSettings settings, PlacementDecision decision, JobPlacementContext context, CancellationToken ct, JobAttemptRow? placedAttempt = null)
    {
        ArgumentNullException.ThrowIfNull(row);
        var execution = Register(new JobExecution(row, envelope, settings, context, services));
        var placed = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        execution.Post(new StartRequested(decision, placedAttempt is null ? null : row, placedAttempt) { Done = placed });
        await placed.Task.WaitAsync(ct);
    }

    /// <summary>Cancels a job at the submitter's request; returns false when it had already finished.</summary>
    public async Task<bool> CancelAsync(string jobId, string reason, CancellationToken ct)
    {
        if (_executions.TryGetValue(jobId, out var execution))
        {
            var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (execution.Post(new CancelRequested(reason) { Done = done }))
            {
                return await done.Task.WaitAsync(ct);
            }
        }

        // Not running here (another owner, or no owner alive): end it in the store; its owner's next write is refused.
        var row = await jobs.GetJobByIdAsync(jobId, ct);
        if (row is null || JobViews.IsTerminal((JobState)row.State))
        {
            return false;
        }

        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        row.State = (int)JobState.Cancelled;
        row.ErrorMessage = reason;
        row.EndTimeMs = now;
        var open = (await jobs.ListAttemptsAsync(jobId, ct)).Where(a => a.EndTimeMs is null).Select(a => (a.Attempt, AttemptCause.Cancelled, reason)).ToList();
        var cancelled = await services.Settler.FinishUnsuccessfullyAsync(row, open, now, ct);
        if (cancelled)
        {
            services.Hub.Publish(jobId, new WatchJobResponse { Status = new JobStatusFrame { Job = JobViews.ToProto(row, await jobs.ListAttemptsAsync(jobId, ct)) } });
        }

        return cancelled;
    }

    /// <inheritdoc />
    public Task OnAcceptedAsync(DeviceIdentity device, JobAccept accept, CancellationToken cancellationToken) =>
        DeliverAsync(accept.JobId, AgentReport.Of(device, accept), cancellationToken);

    /// <inheritdoc />
    public Task OnDeclinedAsync(DeviceIdentity device, JobDecline decline, CancellationToken cancellationToken) =>
        DeliverAsync(decline.JobId, AgentReport.Of(device, decline), cancellationToken);

    /// <inheritdoc />
    public Task OnProgressAsync(DeviceIdentity device, JobProgress progress, CancellationToken cancellationToken) =>
        DeliverAsync(progress.JobId, AgentReport.Of(device, progress), cancellationToken);

    /// <inheritdoc />
    public Task OnTokenAsync(DeviceIdentity device, JobToken token, CancellationToken cancellationToken) =>
        DeliverAsync(token.JobId, AgentReport.Of(device, token), cancellationToken);

    /// <inheritdoc />
    public Task OnLogAsync(DeviceIdentity device, JobLog log, CancellationToken cancellationToken) =>
        DeliverAsync(log.JobId, AgentReport.Of(device, log), cancellationToken);

    /// <inheritdoc />
    public Task OnResultAsync(DeviceIdentity device, JobResult result, long relayBytes, CancellationToken cancellationToken) =>
        DeliverAsync(result.JobId, AgentReport.Of(device, result, relayBytes), cancellationToken);

    /// <inheritdoc />
    public Task OnFailureAsync(DeviceIdentity device, JobFailure failure, long relayBytes, CancellationToken cancellationToken) =>
        DeliverAsync(failure.JobId, AgentReport.Of(device, failure, relayBytes), cancellationToken);

    /// <inheritdoc />
    public Task OnDisconnectedAsync(DeviceIdentity device, CancellationToken cancellationToken)
    {
        foreach (var execution in _executions.Values)
        {
            execution.Post(new DeviceDisconnected(device.DeviceId));
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task OnConnectedAsync(DeviceIdentity device, IReadOnlyCollection<HeldAttempt>? held, CancellationToken cancellationToken)
    {
        IReadOnlySet<(int, string)>? set = held?.Select(h => (h.Attempt, h.ChunkId)).ToHashSet();
        foreach (var execution in _executions.Values)
        {
            execution.Post(new DeviceConnected(device.DeviceId, set));
        }

        return Task.CompletedTask;
    }

    /// <summary>The relay could not hand an offer to its device.</summary>
    public void OnOfferUndeliverable(string jobId, int attempt, string reason)
    {
        if (_executions.TryGetValue(jobId, out var execution))
        {
            execution.Post(new OfferUndeliverable(attempt, reason));
        }
    }

    /// <summary>
    /// Renews this instance's leases (one statement) and lets go of jobs it no longer holds (another instance claimed them
    /// after this one could not renew in time): those executions stop without writing anything.
    /// </summary>
    public async Task RenewLeasesAsync(CancellationToken ct)
    {
        // Only executions that existed before the renewal can have lost their lease: a job submitted meanwhile was written
        // with a fresh lease after the UPDATE's snapshot and is simply not in its answer.
        var before = _executions.ToArray();
        var held = (await jobs.RenewLeasesAsync(InstanceId, NewLeaseExpiryMs(), JobViews.TerminalStates, ct)).ToHashSet(StringComparer.Ordinal);
        foreach (var (jobId, execution) in before)
        {
            if (!held.Contains(jobId) && (!execution.Finished || execution.Strategy is SpotCheckStrategy))
            {
                logger.LogWarning("Job {JobId}: lease lost to another instance; stopping here", jobId);
                execution.Abandon();
            }
        }
    }

    /// <summary>
    /// Claims unfinished jobs whose owner stopped renewing (all unfinished jobs when <paramref name="all"/>: the embedded
    /// store's single owner at start) and resumes them here. Returns how many were claimed.
    /// </summary>
    public async Task<int> ClaimAsync(bool all, CancellationToken ct)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var claimed = (await jobs.ClaimExpiredAsync(InstanceId, now, NewLeaseExpiryMs(), _options.ClaimBatch, all, JobViews.TerminalStates, ct)).ToList();
        await ResumeEachAsync(claimed, ResumeAsync, ct);

        // Finished jobs whose spot-check re-run or canary died with its owner: their mint is held until a verdict (docs/job-plane.md).
        var held = (await jobs.ClaimHeldMintsAsync(InstanceId, now, NewLeaseExpiryMs(), _options.ClaimBatch, all, JobViews.TerminalStates, ct)).ToList();
        await ResumeEachAsync(held, ResumeHeldMintAsync, ct);
        return claimed.Count + held.Count;
    }

    private async Task ResumeEachAsync(IEnumerable<JobRow> rows, Func<JobRow, CancellationToken, Task> resume, CancellationToken ct)
    {
        foreach (var row in rows.Where(r => !_executions.ContainsKey(r.JobId)))
        {
            try
            {
                await resume(row, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogError(ex, "Job {JobId}: could not resume", row.JobId);
            }
        }
    }

    /// <summary>Stops every execution (nothing is written: the leases run out and the next owner carries on) and awaits them.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }

        await _stopping.CancelAsync();
        var executions = _executions.Values.ToList();
        foreach (var execution in executions)
        {
            execution.Abandon();
        }

        await Task.WhenAll(executions.Select(e => e.Completion));
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stopping.Dispose();
    }

    private async Task ResumeAsync(JobRow row, CancellationToken ct)
    {
        var envelope = JobEnvelope.Parser.ParseFrom(row.Envelope);
        var network = await networks.GetNetworkAsync(row.NetworkId, ct);
        var member = await networks.GetMemberAsync(row.NetworkId, row.SubmittedByUserId, ct);
        if (network is null)
        {
            return;
        }

        IReadOnlyList<JobChunk>? chunks = null;
        if (row.ChunkCount > 0 && envelope.InputManifest is { } manifest)
        {
            chunks = JobChunker.Split(envelope, WorkloadInput.Parser.ParseFrom(manifest.Payload));
        }

        var context = new JobPlacementContext(member is null ? Contracts.Common.V1.Role.Member : (Contracts.Common.V1.Role)member.Role, SubmitterLocation.Unknown, chunks);
        var execution = Register(new JobExecution(row, envelope, NetworkDefaults.FromJson(network.SettingsJson), context, services));
        var attempts = (await jobs.ListAttemptsAsync(row.JobId, ct)).ToList();
        var chunkResults = row.ChunkCount > 0 ? (await jobs.ListChunkResultsAsync(row.JobId, ct)).ToList() : [];
        execution.Post(new ResumeRequested(attempts, chunkResults));
    }

    /// <summary>A claimed finished job whose mint is held: a lost canary ends inconclusive, a spot-check is checked again.</summary>
    private async Task ResumeHeldMintAsync(JobRow row, CancellationToken ct)
    {
        var metering = await services.Settler.InTransactionAsync((c, tx) => LedgerRepository.GetMeteringAsync(c, tx, row.NetworkId, row.JobId, "", ct), ct);
        if (metering?.MintWithheldReason == Ledger.Canary.PendingReason)
        {
            // A canary runs only in its owner's memory: it died with it. Inconclusive, which releases the mint (docs/anti-abuse.md).
            var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
            var released = await services.Settler.InTransactionAsync((c, tx) => Ledger.LedgerWriter.ResolveHeldMintAsync(c, tx, row.NetworkId, row.JobId, "", Ledger.Canary.PendingReason, "", now, ct), ct);
            logger.LogInformation("Job {JobId}: its canary was lost with its control instance; inconclusive, released {MintMicro} µ", row.JobId, released);
            return;
        }

        var network = await networks.GetNetworkAsync(row.NetworkId, ct);
        if (network is null || metering is null || row.Output is null)
        {
            return;
        }

        var member = await networks.GetMemberAsync(row.NetworkId, row.SubmittedByUserId, ct);
        var context = new JobPlacementContext(member is null ? Contracts.Common.V1.Role.Member : (Contracts.Common.V1.Role)member.Role, SubmitterLocation.Unknown, null);
        var execution = new JobExecution(row, JobEnvelope.Parser.ParseFrom(row.Envelope), NetworkDefaults.FromJson(network.SettingsJson), context, services)
        {
            Finished = true,
        };
        execution.Strategy = new SpotCheckStrategy(metering.DeviceId, metering.Attempt, row.Output);
        Register(execution).Post(new SpotCheckResumeRequested((await jobs.ListAttemptsAsync(row.JobId, ct)).ToList()));
    }

    private JobExecution Register(JobExecution execution)
    {
        _executions[execution.JobId] = execution;
        execution.Run(ended =>
        {
            _executions.TryRemove(new KeyValuePair<string, JobExecution>(ended.JobId, ended));
            if (ended.FollowUp is { } next && !_stopping.IsCancellationRequested)
            {
                Register(next).Post(new StartRequested(new PlacementDecision([], [], null, "follow-up")));
            }
        }, _stopping.Token);
        return execution;
    }

    /// <summary>
    /// Posts a report to the job's mailbox. Terminal reports (accept, decline, result, failure) wait until handled; when the
    /// job is not run here they are answered from the store: a finished job has nothing left to do (a duplicate, handled),
    /// a running one belongs to another instance (the caller retries until its owner or a claimer handles it).
    /// </summary>
    private async Task DeliverAsync(string jobId, AgentReport report, CancellationToken ct)
    {
        if (!report.IsTerminal)
        {
            if (_executions.TryGetValue(jobId, out var streaming))
            {
                streaming.Post(report);
            }

            return;
        }

        if (_executions.TryGetValue(jobId, out var execution))
        {
            var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (execution.Post(report with { Done = done }) && await done.Task.WaitAsync(ct))
            {
                return;
            }
        }

        var row = await jobs.GetJobByIdAsync(jobId, ct);
        if (row is null || JobViews.IsTerminal((JobState)row.State))
        {
            logger.LogDebug("Job {JobId}: {Kind} from {DeviceId} after the job ended; nothing to do", jobId, report.Kind, report.Device.DeviceId);
            return;
        }

        throw new JobNotOwnedException(jobId, row.OwnerInstance);
    }
}

/// <summary>A report reached an instance that does not run the job (yet): the sender retries until the owner handles it.</summary>
public sealed class JobNotOwnedException(string jobId, string? owner)
    : InvalidOperationException($"job {jobId} is not run by this instance (owner: {owner ?? "none yet"})")
{
    /// <summary>The job.</summary>
    public string JobId { get; } = jobId;

    /// <summary>The owner recorded in the store, if any.</summary>
    public string? Owner { get; } = owner;
}

using System.Threading.Channels;
using Google.Protobuf;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Jobs.Chunking;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Jobs.Execution;

/// <summary>One offered attempt of a job (or of one of its chunks) and its timers.</summary>
internal sealed class Placement(int attempt, string deviceId, JobChunk? chunk, long startedMs)
{
    public int Attempt { get; } = attempt;
    public string DeviceId { get; } = deviceId;
    public JobChunk? Chunk { get; } = chunk;
    public string ChunkId => Chunk?.ChunkId ?? "";
    public long StartedMs { get; } = startedMs;
    public bool Answered { get; set; }
    public ITimer? Timeout { get; set; }
    public ITimer? AnswerTimer { get; set; }
    public ITimer? CostCapTimer { get; set; }
    public ITimer? GraceTimer { get; set; }

    /// <summary>The deferred RUNNING write of a soft-running attempt (<see cref="JobPlaneOptions.RunningWriteDelayMs"/>).</summary>
    public ITimer? RunningWriteTimer { get; set; }

    public void StopTimers()
    {
        Timeout?.Dispose();
        AnswerTimer?.Dispose();
        CostCapTimer?.Dispose();
        GraceTimer?.Dispose();
        RunningWriteTimer?.Dispose();
        Timeout = AnswerTimer = CostCapTimer = GraceTimer = RunningWriteTimer = null;
    }
}

/// <summary>How a kind of job (single, chunked, spot-check) reacts to its events; every strategy places through <see cref="JobPlacer"/>.</summary>
internal interface IJobStrategy
{
    Task HandleAsync(JobExecution job, JobEvent e, CancellationToken ct);
}

/// <summary>
/// The one object that runs a job on this instance: a mailbox (<see cref="Channel{T}"/>) of <see cref="JobEvent"/>s handled in
/// order by one loop, so its state needs no locks; timers post events into the same mailbox (time from
/// <see cref="TimeProvider"/>). The kind of job is its <see cref="Strategy"/> (a settled job may hand over to a spot-check).
/// </summary>
internal sealed class JobExecution
{
    private readonly Channel<JobEvent> _mailbox = Channel.CreateUnbounded<JobEvent>(new UnboundedChannelOptions { SingleReader = true });
    private Task _loop = Task.CompletedTask;
    private bool _ended;

    // Timers that nobody else holds (a retry's backoff), kept until they fire or the execution ends (see ScheduleDetached).
    private readonly HashSet<DetachedTimer> _detached = [];

    public JobExecution(JobRow row, JobEnvelope envelope, NetworkSettings settings, JobPlacementContext context, JobPlaneServices services)
    {
        JobId = row.JobId;
        NetworkId = row.NetworkId;
        Envelope = envelope;
        EnvelopeBytes = row.Envelope;
        TimeoutMs = row.TimeoutMs;
        MaxCostCredits = row.MaxCostCredits;
        Settings = settings;
        Context = context;
        S = services;
        if (context.Chunks is { Count: > 0 })
        {
            ChunkEnvelopeBytes = JobChunker.ChunkEnvelope(envelope).ToByteArray();
            Strategy = new ChunkedJobStrategy(context.Chunks);
        }
        else if (ResumesStream)
        {
            Strategy = new ResumableChatStrategy();
        }
        else
        {
            Strategy = new SingleJobStrategy();
        }
    }

    public string JobId { get; }
    public string NetworkId { get; }
    public JobEnvelope Envelope { get; }
    public byte[] EnvelopeBytes { get; }
    public byte[] ChunkEnvelopeBytes { get; } = [];
    public long TimeoutMs { get; }
    public long MaxCostCredits { get; }
    public NetworkSettings Settings { get; }
    public JobPlacementContext Context { get; }
    public JobPlaneServices S { get; }

    /// <summary>How this job reacts to events now.</summary>
    public IJobStrategy Strategy { get; set; }

    /// <summary>Open attempts by number.</summary>
    public Dictionary<int, Placement> Open { get; } = [];

    /// <summary>Every attempt ever placed for this job (device, chunk): a late result of an earlier attempt still counts.</summary>
    public Dictionary<int, (string DeviceId, string ChunkId)> Placed { get; } = [];

    /// <summary>The highest attempt number used.</summary>
    public int LastAttempt { get; set; }

    /// <summary>An execution the runner starts when this one ends (a canary that follows the settlement, docs/anti-abuse.md).</summary>
    public JobExecution? FollowUp { get; set; }

    /// <summary>
    /// The latest accept not written to the store (soft RUNNING, #11): what MarkRunning would have written as the start time;
    /// the job's end writes it. Null when the store is up to date.
    /// </summary>
    public long? UnwrittenStartMs { get; set; }

    /// <summary>True while the current attempt is accepted but the store still says PLACED: status frames show RUNNING.</summary>
    public bool SoftRunning { get; set; }

    /// <summary>
    /// The job's rows exactly as the submit wrote them (place at submit, #11), kept only while this execution has written
    /// nothing else for the job: its first soft accept publishes them as RUNNING without reading them back. Cleared by
    /// every attempt end and unsuccessful finish; used once.
    /// </summary>
    public (JobRow Row, JobAttemptRow Attempt)? AsWritten { get; set; }

    /// <summary>True once the job row is terminal (a spot-check may still run).</summary>
    public bool Finished { get; set; }

    /// <summary>Completes when the loop has ended (job done, lease lost or shutdown).</summary>
    public Task Completion => _loop;

    public long NowMs => S.Clock.GetUtcNow().ToUnixTimeMilliseconds();

    public ILogger Log => S.Logger;

    /// <summary>Starts the loop (once).</summary>
    public void Run(Action<JobExecution> ended, CancellationToken stopping) => _loop = LoopAsync(ended, stopping);

    /// <summary>Queues an event; false when the execution has ended (the caller then answers for it).</summary>
    public bool Post(JobEvent e) => _mailbox.Writer.TryWrite(e);

    /// <summary>A timer that posts <paramref name="e"/> after <paramref name="due"/> (never fires after the execution ends).</summary>
    public ITimer Schedule(TimeSpan due, JobEvent e) =>
        S.Clock.CreateTimer(static state => { var (x, ev) = ((JobExecution, JobEvent))state!; x.Post(ev); }, (this, e), due < TimeSpan.Zero ? TimeSpan.Zero : due, Timeout.InfiniteTimeSpan);

    /// <summary>
    /// Like <see cref="Schedule"/> for a timer the caller does not keep (a retry's backoff): the execution holds it until it
    /// fires or the execution ends. An unreferenced timer may be collected before it fires (System.Threading.Timer and
    /// FakeTimeProvider's timers are; only TimeProvider.System roots its own), and a lost retry would leave the job running
    /// with no attempt forever.
    /// </summary>
    public void ScheduleDetached(TimeSpan due, JobEvent e)
    {
        var held = new DetachedTimer(this, e);
        lock (_detached)
        {
            _detached.Add(held);
        }

        held.Timer = S.Clock.CreateTimer(static state =>
        {
            var h = (DetachedTimer)state!;
            lock (h.Job._detached)
            {
                h.Job._detached.Remove(h);
            }

            h.Job.Post(h.Event);
        }, held, due < TimeSpan.Zero ? TimeSpan.Zero : due, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Marks the execution done: the loop finishes after the current event and later events are answered by the runner.</summary>
    public void End()
    {
        _ended = true;
        _mailbox.Writer.TryComplete();
        lock (_detached)
        {
            foreach (var held in _detached)
            {
                held.Timer?.Dispose();
            }

            _detached.Clear();
        }
    }

    private sealed class DetachedTimer(JobExecution job, JobEvent e)
    {
        public JobExecution Job => job;

        public JobEvent Event => e;

        public ITimer? Timer { get; set; }
    }

    /// <summary>The open placement on <paramref name="device"/> for <paramref name="attempt"/>, if any.</summary>
    public bool TryGetOpen(DeviceIdentity device, int attempt, out Placement placement) =>
        Open.TryGetValue(attempt, out placement!) && placement.DeviceId == device.DeviceId && device.NetworkId == NetworkId;

    /// <summary>Closes an attempt locally (timers stopped) and records its end; false when the store had it ended already.</summary>
    public async Task<bool> EndAttemptAsync(Placement placement, AttemptCause cause, string detail, CancellationToken ct)
    {
        AsWritten = null;
        placement.StopTimers();
        Open.Remove(placement.Attempt);
        return await S.Settler.EndAttemptAsync(JobId, placement.Attempt, cause, detail, NowMs, ct);
    }

    /// <summary>Asks the device to stop an attempt (best effort: the device may be gone).</summary>
    public void CancelOnDevice(Placement placement, string reason) =>
        S.Dispatcher.TryCancel(placement.DeviceId, new JobCancel { JobId = JobId, Attempt = placement.Attempt, Reason = reason });

    /// <summary>
    /// Ends the job FAILED or CANCELLED: every open attempt is stopped on its device and ended with
    /// <paramref name="openCause"/>, the job row and (for FAILED) job_failed are written in one transaction.
    /// </summary>
    public async Task<bool> FinishUnsuccessfullyAsync(JobState state, string message, AttemptCause openCause, string openDetail, CancellationToken ct)
    {
        var open = Open.Values.ToList();
        foreach (var placement in open)
        {
            placement.StopTimers();
            CancelOnDevice(placement, openDetail);
        }

        Open.Clear();
        Finished = true;
        AsWritten = null;
        var row = await S.Jobs.GetJobByIdAsync(JobId, ct);
        if (row is null)
        {
            End();
            return false;
        }

        var now = NowMs;
        row.StartTimeMs = UnwrittenStartMs ?? row.StartTimeMs;
        row.State = (int)state;
        row.ErrorMessage = message;
        row.EndTimeMs = now;
        var finished = await S.Settler.FinishUnsuccessfullyAsync(row, open.Select(p => (p.Attempt, openCause, openDetail)).ToList(), now, ct);
        if (finished)
        {
            Log.LogInformation("Job {JobId} {State}: {Message}", JobId, state, message);
            await PublishStatusAsync(ct);
        }

        End();
        return finished;
    }

    /// <summary>
    /// Sends the job's current row and attempts to its watchers (a non-terminal status only when someone watches: two reads
    /// saved per state change, #11). <paramref name="written"/>: the rows exactly as this execution's submit just wrote them
    /// in one transaction (place at submit), published as they are instead of read back.
    /// </summary>
    public async Task PublishStatusAsync(CancellationToken ct, (JobRow Row, JobAttemptRow Attempt)? written = null)
    {
        if (!Finished && !S.Hub.HasWatchers(JobId))
        {
            return;
        }

        // Read, not rebuilt from this execution: the placer's and settler's writes fill columns (times, tier, attempt causes)
        // the execution does not hold, and a cancel from another instance changes the row; one round trip for both reads.
        // The rows the submit wrote in one transaction are the store's until this execution writes again (a cancel from
        // another instance publishes its own frame); a copy, since the soft state below changes it.
        var (row, attempts) = written is { } w
            ? (w.Row.Copy(), (IReadOnlyList<JobAttemptRow>)[w.Attempt])
            : await S.Jobs.GetJobWithAttemptsAsync(JobId, ct);
        if (row is not null)
        {
            if (!Finished && SoftRunning && UnwrittenStartMs is { } since && row.State == (int)JobState.Placed)
            {
                row.State = (int)JobState.Running; // accepted, RUNNING not written yet (soft state)
                row.StartTimeMs = since;
            }

            S.Hub.Publish(JobId, new WatchJobResponse { Status = new JobStatusFrame { Job = JobViews.ToProto(row, attempts) } });
        }
    }

    /// <summary>The retry policy in force for this job.</summary>
    public RetryPolicy Retry => Settings.RetryPolicy ?? new RetryPolicy { MaxAttempts = 1 };

    /// <summary>The backoff before the retry that follows <paramref name="attemptsUsed"/> attempts.</summary>
    public TimeSpan Backoff(int attemptsUsed)
    {
        var backoff = Retry.BackoffMs;
        return TimeSpan.FromMilliseconds(backoff.Count == 0 ? 0 : backoff[Math.Clamp(attemptsUsed - 1, 0, backoff.Count - 1)]);
    }

    /// <summary>The offer for a placement (chunks carry their own payload and the chunk envelope).</summary>
    public JobOffer Offer(PlacementTicket ticket, JobChunk? chunk) => chunk is null
        ? new JobOffer { Ticket = ticket, Envelope = ByteString.CopyFrom(EnvelopeBytes) }
        : new JobOffer { Ticket = ticket, Envelope = ByteString.CopyFrom(ChunkEnvelopeBytes), Chunk = chunk.Payload };

    /// <summary>
    /// True when the job is a small_chat stream that can resume on another device (docs/chat-resume.md);
    /// <see cref="JobPlaneOptions.ChatResume"/> turns it off.
    /// </summary>
    public bool ResumesStream => Envelope.WorkloadId == Contracts.Common.V1.WorkloadClass.SmallChat && S.Options.ChatResume;

    /// <summary>Stops every timer without writing anything (lease lost or shutdown: the next owner carries on).</summary>
    public void Abandon()
    {
        foreach (var placement in Open.Values)
        {
            placement.StopTimers();
        }

        End();
    }

    private async Task LoopAsync(Action<JobExecution> ended, CancellationToken stopping)
    {
        try
        {
            await foreach (var e in _mailbox.Reader.ReadAllAsync(CancellationToken.None))
            {
                if (stopping.IsCancellationRequested)
                {
                    e.Done?.TrySetResult(false);
                    continue;
                }

                try
                {
                    await Strategy.HandleAsync(this, e, stopping);
                    e.Done?.TrySetResult(true);
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    e.Done?.TrySetResult(false);
                }
                catch (Exception ex)
                {
                    // A store outage or a bug must not kill the loop: the relay retries the report, timers fire again later.
                    Log.LogError(ex, "Job {JobId}: handling {Event} failed", JobId, e.GetType().Name);
                    e.Done?.TrySetException(ex);
                }

                if (_ended)
                {
                    break;
                }
            }
        }
        finally
        {
            _mailbox.Writer.TryComplete();
            foreach (var placement in Open.Values)
            {
                placement.StopTimers();
            }

            // Events that arrived after the end are answered by the runner (from the store).
            while (_mailbox.Reader.TryRead(out var late))
            {
                late.Done?.TrySetResult(false);
            }

            ended(this);
        }
    }
}

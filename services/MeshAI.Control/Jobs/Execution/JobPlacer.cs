using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Crypto;
using MeshAI.Common.Observability;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Jobs.Chunking;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Jobs.Execution;

/// <summary>What every strategy needs, composed once (the runner hands it to each execution).</summary>
public sealed class JobPlaneServices(
    JobRepository jobs,
    DeviceRepository devices,
    NetworkRepository networks,
    JobPlacer placer,
    JobSettler settler,
    LedgerWriter ledgerWriter,
    IJobDispatcher dispatcher,
    IPresenceDirectory presence,
    JobWatchHub hub,
    Canaries.CanaryKnownAnswers canaryAnswers,
    Security.AuditLog audit,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock,
    ILogger<JobRunner> logger,
    Blobs.BlobStore? blobs = null)
{
    public JobRepository Jobs => jobs;

    /// <summary>Blob hook (#11): the stored blobs a job references, charged to the relay allowance at settlement.</summary>
    public Blobs.BlobStore? Blobs => blobs;
    public DeviceRepository Devices => devices;
    public NetworkRepository Networks => networks;
    public JobPlacer Placer => placer;
    public JobSettler Settler => settler;
    public LedgerWriter LedgerWriter => ledgerWriter;
    public IJobDispatcher Dispatcher => dispatcher;
    public IPresenceDirectory Presence => presence;
    public JobWatchHub Hub => hub;
    public Canaries.CanaryKnownAnswers CanaryAnswers => canaryAnswers;
    public Security.AuditLog Audit => audit;
    public ControlPlaneOptions ControlOptions => options.Value;
    public JobPlaneOptions Options => options.Value.Jobs;
    public TimeProvider Clock => clock;
    public ILogger Logger => logger;

    /// <summary>True when the device has a live relay stream somewhere (soft-state presence).</summary>
    public bool IsOnline(string deviceId) => presence.GetOnline(deviceId, clock.GetUtcNow()) is not null;
}

/// <summary>
/// The one placer every kind of job uses: plan (eligibility + scoring) → record the attempt → sign the placement ticket
/// with the key this device trusts (<see cref="NetworkKeyVault.TicketKeyAsync"/>, the same rule for single jobs, chunks and
/// spot-checks) → offer through the relay → arm the attempt's timers.
/// </summary>
public sealed class JobPlacer(JobPlanner planner, JobRepository jobs, NetworkKeyVault keys, IJobDispatcher dispatcher, IOptions<ControlPlaneOptions> options, TimeProvider clock, ILogger<JobPlacer> logger)
{
    /// <summary>How an attempt is recorded: the job's own placement, one chunk's, or a spot-check re-run of a settled job.</summary>
    internal enum AttemptKind
    {
        Job,
        Chunk,
        SpotCheck,

        /// <summary>A canary (docs/anti-abuse.md): never stored (it has no job row); the offer and ticket look like any other.</summary>
        Canary,
    }

    internal Task<PlacementDecision> PlanAsync(JobExecution job, IReadOnlySet<string> excluded, CancellationToken ct) =>
        planner.PlanAsync(job.Envelope, job.Settings, excluded, job.Context, ct);

    /// <summary>
    /// Records attempt <paramref name="attempt"/> on <paramref name="selected"/>, signs its ticket and offers it. Null when the
    /// store refused the attempt (the job ended meanwhile, or the number is taken). A refused offer comes back as an
    /// <see cref="OfferUndeliverable"/> event, handled after this one.
    /// </summary>
    /// <param name="resume">What earlier attempts of a chat already streamed (chat resume): carried by the offer, bound by the ticket.</param>
    /// <param name="placedAtSubmit">
    /// The job's first attempt when the submit already wrote it with the job row (place at submit, #11): it is offered as
    /// recorded, without a second write.
    /// </param>
    internal async Task<Placement?> OfferAsync(JobExecution job, int attempt, PlacementCandidate selected, AttemptKind kind, JobChunk? chunk, JobDebugView? debugView, string detail, CancellationToken ct, StreamResume? resume = null, JobAttemptRow? placedAtSubmit = null)
    {
        var now = clock.GetUtcNow();
        var deviceId = selected.Device.DeviceId;
        JobAttemptRow row;
        if (placedAtSubmit is not null && kind == AttemptKind.Job && placedAtSubmit.Attempt == attempt && placedAtSubmit.DeviceId == deviceId)
        {
            row = placedAtSubmit;
        }
        else
        {
            row = AttemptRow(job.JobId, attempt, deviceId, now.ToUnixTimeMilliseconds(), chunk?.ChunkId ?? "", detail);
            var debug = debugView?.ToByteArray() ?? [];
            var recorded = kind switch
            {
                AttemptKind.SpotCheck => await jobs.InsertSpotCheckAttemptAsync(row, ct),
                AttemptKind.Canary => true,
                AttemptKind.Chunk => await jobs.RecordChunkPlacementAsync(row, (int)JobState.Queued, (int)JobState.Placed, (int)selected.Tier, debug, JobViews.TerminalStates, ct),
                _ => await jobs.RecordPlacementAsync(row, (int)JobState.Placed, (int)selected.Tier, debug, JobViews.TerminalStates, ct),
            };
            if (!recorded)
            {
                return null;
            }
        }

        var envelopeBytes = chunk is null ? job.EnvelopeBytes : job.ChunkEnvelopeBytes;
        var ticket = PlacementTickets.Sign(new PlacementTicketDetails
        {
            JobId = job.JobId,
            Attempt = attempt,
            DeviceId = deviceId,
            NetworkId = job.NetworkId,
            EnvelopeSha256 = Secrets.Sha256Hex(envelopeBytes),
            ExpireTime = Timestamp.FromDateTimeOffset(now.AddMilliseconds(job.TimeoutMs)),
            ChunkId = chunk?.ChunkId ?? "",
            ChunkSha256 = chunk is null ? "" : Secrets.Sha256Hex(chunk.Payload.ToByteArray()),
            ResumeSha256 = resume is null ? "" : Secrets.Sha256Hex(resume.ToByteArray()),
        }, await keys.TicketKeyAsync(job.NetworkId, deviceId, ct));

        var placement = new Placement(attempt, deviceId, chunk, row.StartTimeMs);
        job.Open[attempt] = placement;
        job.Placed[attempt] = (deviceId, row.ChunkId);
        job.LastAttempt = Math.Max(job.LastAttempt, attempt);
        Arm(job, placement, TimeSpan.FromMilliseconds(job.TimeoutMs));
        logger.LogInformation("Job {JobId} attempt {Attempt}{Chunk} offered to {DeviceId}", job.JobId, attempt, chunk is null ? "" : " (chunk " + chunk.ChunkId + ")", deviceId);
        // Tracing hook (#17): the offer span's context travels in JobOffer.traceparent to the relay and the agent.
        using var span = MeshTelemetry.StartJobSpan("meshai.job.offer", System.Diagnostics.ActivityKind.Producer, job.JobId, traceId: job.Envelope.TraceId);
        span?.SetTag(MeshTelemetry.DeviceIdKey, deviceId).SetTag(MeshTelemetry.AttemptKey, attempt).SetTag("meshai.chunk_id", chunk?.ChunkId);
        var offer = job.Offer(ticket, chunk);
        offer.Traceparent = MeshTelemetry.TraceParent(span);
        offer.Resume = resume;
        if (!dispatcher.TryOffer(deviceId, offer))
        {
            job.Post(new OfferUndeliverable(attempt, "device has no live relay stream"));
        }

        return placement;
    }

    /// <summary>The row of a new, open attempt (what <see cref="OfferAsync"/> records, and the submit when it places at once).</summary>
    internal static JobAttemptRow AttemptRow(string jobId, int attempt, string deviceId, long startTimeMs, string chunkId, string detail) => new()
    {
        JobId = jobId,
        Attempt = attempt,
        DeviceId = deviceId,
        Cause = (int)AttemptCause.Unspecified,
        StartTimeMs = startTimeMs,
        ChunkId = chunkId,
        Detail = detail,
    };

    /// <summary>Arms an attempt's timeout (and, until it is answered, the offer-answer timeout).</summary>
    internal void Arm(JobExecution job, Placement placement, TimeSpan timeout)
    {
        placement.Timeout = job.Schedule(timeout, new AttemptTimedOut(placement.Attempt));
        if (!placement.Answered)
        {
            placement.AnswerTimer = job.Schedule(TimeSpan.FromMilliseconds(options.Value.Jobs.OfferAnswerTimeoutMs), new OfferUnanswered(placement.Attempt));
        }
    }

    /// <summary>The debug view of a placement decision (ExplainJob).</summary>
    internal static JobDebugView DebugView(string jobId, PlacementDecision decision, string reason) => new()
    {
        JobId = jobId,
        Eligibility = { decision.Eligibility },
        TopCandidates = { decision.Ranked.Take(5) },
        SelectedDeviceId = decision.Selected?.Device.DeviceId ?? "",
        SelectionReason = reason,
    };
}

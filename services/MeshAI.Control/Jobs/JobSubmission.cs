using Google.Protobuf;
using Grpc.Core;
using MeshAI.Common;
using MeshAI.Common.Domain;
using MeshAI.Common.Errors;
using MeshAI.Common.Observability;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Jobs.Chunking;
using MeshAI.Control.Jobs.Execution;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Jobs;

/// <summary>Estimating and submitting jobs: validation, authorisation, cost cap, balance, placement, persistence.</summary>
public sealed class JobSubmission(
    JobRepository jobs,
    NetworkAccess access,
    JobPlanner planner,
    JobRunner runner,
    LedgerQueries ledger,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock,
    JobBudget budget,
    Rpc.RequestBounds bounds,
    ModelAvailability models,
    JobWatchHub hub,
    JobQueries queries,
    Blobs.BlobStore blobStore)
{
    private static readonly IReadOnlySet<string> NoExclusions = new HashSet<string>();

    private sealed record Prepared(Membership Membership, WorkloadInput? Input, long TimeoutMs, PlacementDecision Decision, Tier Tier, long EstimatedRuntimeMs, long EstimatedCostMicro, JobPlacementContext Context);

    /// <summary>Cost estimate, candidates and eligibility without submitting.</summary>
    public async Task<EstimateJobResponse> EstimateAsync(Caller caller, JobEnvelope? envelope, CancellationToken ct)
    {
        var p = await PrepareAsync(caller, envelope, null, ct);
        return new EstimateJobResponse
        {
            EstimatedCostMicro = p.EstimatedCostMicro,
            EstimatedRuntimeMs = p.EstimatedRuntimeMs,
            ExpectedTier = p.Tier,
            Candidates = { p.Decision.Ranked },
            WithinMaxCost = envelope!.CapMicro() == 0 || envelope!.CapMicro() >= p.EstimatedCostMicro,
            Explanation = $"{p.Decision.Reason}; about {p.EstimatedRuntimeMs} ms at {Tiers.Name(p.Tier)} rates",
            Eligibility = { p.Decision.Eligibility },
        };
    }

    /// <summary>Submits a job and hands it to the runner; resubmitting with the same idempotency key returns the same job.</summary>
    public Task<Job> SubmitAsync(Caller caller, SubmitJobRequest request, CancellationToken ct) => SubmitAsync(caller, request, null, ct);

    /// <summary>Submits a job from the gRPC peer <paramref name="peer"/> (its address feeds local_prefer routing).</summary>
    public Task<Job> SubmitAsync(Caller caller, SubmitJobRequest request, string? peer, CancellationToken ct) => SubmitAsync(caller, request, peer, null, readBack: true, ct);

    /// <summary>
    /// RunJob: submits the job and streams it to its end on <paramref name="stream"/> — the submitted job as the first
    /// status frame, then the watch frames. The watch subscription is taken under the job's id before the job exists, so no
    /// frame can be missed (no subscribe race) and no store read is needed to start watching. With an idempotency key
    /// that already made a job, that job is watched as WatchJob would.
    /// </summary>
    public async Task RunAsync(Caller caller, SubmitJobRequest request, string? peer, IServerStreamWriter<WatchJobResponse> stream, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var jobId = Ids.New("job");
        Job job;
        using (var subscription = hub.Subscribe(jobId))
        {
            await subscription.Ready.WaitAsync(ct);
            job = await SubmitAsync(caller, request, peer, jobId, readBack: false, ct);
            if (job.JobId == jobId)
            {
                // The runner published the job's status after its first placement to this subscription (it has a watcher
                // now): that frame, already read from the store once, is the submitted job — no second read (#11).
                if (subscription.Frames.TryPeek(out var first) && first.Status?.Job is { } placed && placed.JobId == jobId)
                {
                    subscription.Frames.TryRead(out _);
                    job = placed;
                }

                // Ended during the submit (e.g. placement failed at once): the stored view carries its result, if any.
                var current = JobViews.IsTerminal(job.State) ? await queries.GetAsync(caller, job.NetworkId, job.JobId, ct) : new GetJobResponse { Job = job };
                await JobQueries.FollowAsync(subscription, current, stream, ct);
                return;
            }
        }

        // The idempotency key's earlier job: watched like WatchJob does (replay, then live frames).
        await queries.WatchAsync(caller, new WatchJobRequest { NetworkId = job.NetworkId, JobId = job.JobId }, stream, ct);
    }

    // readBack: read the placed job and its attempts back for the answer (SubmitJob); RunJob takes them from the status frame.
    private async Task<Job> SubmitAsync(Caller caller, SubmitJobRequest request, string? peer, string? jobId, bool readBack, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var envelope = request.Envelope;
        var p = await PrepareAsync(caller, envelope, peer, ct);
        var key = string.IsNullOrEmpty(request.IdempotencyKey) ? null : request.IdempotencyKey;
        if (key is not null && await jobs.FindByIdempotencyKeyAsync(envelope.NetworkId, caller.UserId, key, ct) is { } existing)
        {
            return JobViews.ToProto(existing, await jobs.ListAttemptsAsync(existing.JobId, ct));
        }

        var cap = envelope.CapMicro();
        if (cap > 0 && cap < p.EstimatedCostMicro)
        {
            throw RpcErrors.FailedPrecondition("COST_CAP", "envelope.max_cost_micro",
                $"estimated cost {Money.CreditsWithMicro(p.EstimatedCostMicro)} exceeds the cap max_cost_micro {Money.CreditsWithMicro(cap)}", ErrorReasons.JobCostCapExceeded);
        }

        await budget.EnsureRelayBandwidthAsync(envelope.NetworkId, ct);
        var credits = p.Membership.Settings.Credits;
        var available = await ledger.AvailableAsync(envelope.NetworkId, credits.SharedPoolEnabled, caller.UserId, ct);
        if (available < p.EstimatedCostMicro)
        {
            throw RpcErrors.FailedPrecondition("CREDITS", credits.SharedPoolEnabled ? "pool:" + envelope.NetworkId : "member:" + caller.UserId,
                $"insufficient credits: the job needs about {Money.Credits(p.EstimatedCostMicro)} credits, {Money.Credits(available)} available", ErrorReasons.InsufficientCredits);
        }

        if (p.Decision.Selected is null)
        {
            throw RpcErrors.FailedPrecondition("PLACEMENT", envelope.NetworkId, "no eligible device is online: " + p.Decision.Reason, ErrorReasons.NoEligibleDevice);
        }

        var stored = envelope.Clone();
        stored.JobId = jobId ?? Ids.New("job");
        stored.SubmittedByUserId = caller.UserId;
        stored.TimeoutMs = p.TimeoutMs;
        if (string.IsNullOrEmpty(stored.TraceId))
        {
            stored.TraceId = MeshTelemetry.CurrentOrNewTraceId(); // the caller's trace (gRPC metadata / HTTP traceparent) when it sent one
        }

        // Tracing hook (#17): the job's first span; its trace id is the envelope's trace_id (docs/observability.md).
        using var span = MeshTelemetry.StartJobSpan("meshai.job.submit", System.Diagnostics.ActivityKind.Internal, stored.JobId, traceId: stored.TraceId);
        span?.SetTag(MeshTelemetry.NetworkIdKey, stored.NetworkId).SetTag("meshai.workload", stored.WorkloadId.ToString());

        var row = new JobRow
        {
            JobId = stored.JobId,
            NetworkId = stored.NetworkId,
            SubmittedByUserId = caller.UserId,
            WorkloadId = (int)stored.WorkloadId,
            State = (int)JobState.Queued,
            RoutingMode = (int)(stored.RoutingMode == RoutingMode.Unspecified ? RoutingMode.Auto : stored.RoutingMode),
            DataSensitivityTag = (int)stored.DataSensitivityTag,
            Envelope = stored.ToByteArray(),
            IdempotencyKey = key,
            CreateTimeMs = clock.GetUtcNow().ToUnixTimeMilliseconds(),
            MaxCostCredits = stored.CapMicro(),
            TimeoutMs = p.TimeoutMs,
            TraceId = stored.TraceId,
            ChunkCount = p.Context.Chunks?.Count ?? 0,
            OwnerInstance = runner.InstanceId,
            LeaseExpireMs = runner.NewLeaseExpiryMs(),
        };
        // Place at submit (#11, docs/job-plane.md): an unchunked job whose plan selected a device is inserted PLACED with its
        // first attempt in one transaction (what the runner's first placement would write next); the runner then signs the
        // ticket and offers that attempt. Chunked jobs place per chunk in the runner, as before.
        JobAttemptRow? firstAttempt = null;
        if (row.ChunkCount == 0 && p.Decision.Selected is { } selected)
        {
            firstAttempt = JobPlacer.AttemptRow(row.JobId, 1, selected.Device.DeviceId, row.CreateTimeMs, "", "");
            row.State = (int)JobState.Placed;
            row.DeviceId = selected.Device.DeviceId;
            row.Tier = (int)selected.Tier;
            row.DebugView = JobPlacer.DebugView(row.JobId, p.Decision, p.Decision.Reason).ToByteArray();
            row.PlacementTimeMs = row.CreateTimeMs;
        }

        if (!await (firstAttempt is null ? jobs.TryInsertJobAsync(row, ct) : jobs.TryInsertPlacedJobAsync(row, firstAttempt, ct)))
        {
            // A concurrent submit with the same idempotency key won the insert: its job is the answer (issue 15).
            var winner = await jobs.FindByIdempotencyKeyAsync(envelope.NetworkId, caller.UserId, key!, ct)
                         ?? throw RpcErrors.Aborted("a concurrent submit with this idempotency key is in progress; retry");
            return JobViews.ToProto(winner, await jobs.ListAttemptsAsync(winner.JobId, ct));
        }

        await runner.StartAsync(row, stored, p.Membership.Settings, p.Decision, p.Context, ct, firstAttempt);
        if (!readBack)
        {
            return JobViews.ToProto(row, []);
        }

        var current = await jobs.GetJobByIdAsync(row.JobId, ct) ?? row;
        return JobViews.ToProto(current, await jobs.ListAttemptsAsync(row.JobId, ct));
    }

    private async Task<Prepared> PrepareAsync(Caller caller, JobEnvelope? envelope, string? peer, CancellationToken ct)
    {
        var (input, timeout) = JobEnvelopeValidator.Validate(envelope, options.Value.Limits, bounds);
        var membership = await access.RequireMemberCachedAsync(caller, envelope!.NetworkId, ct); // checked on every call; the rows may come from the authorisation cache (#11)
        await planner.RequirePinnedDevicesExistAsync(envelope, ct);
        await models.RequireKnownAsync(envelope, ct); // unknown model: INVALID_ARGUMENT naming the available ones (#14)
        blobStore.RequireReferenced(envelope.NetworkId, envelope.InputManifest?.Blobs ?? [], "envelope.input_manifest.blobs"); // blob hook (#11): stored references exist
        IReadOnlyList<JobChunk>? chunks;
        try
        {
            chunks = JobChunker.Split(envelope, input);
        }
        catch (FormatException ex)
        {
            throw RpcErrors.InvalidArgument("envelope.input_manifest.blobs", "audio is not a PCM WAV: " + ex.Message);
        }

        var context = new JobPlacementContext(membership.Role, SubmitterLocation.From(peer, envelope.InputManifest?.Labels), chunks);
        var decision = await planner.PlanAsync(envelope, membership.Settings, NoExclusions, context, ct);
        var tier = decision.Selected?.Tier
                   ?? (envelope.ResourceRequest?.MinTier is { } min && min != Tier.Unspecified ? min : Tier._2);
        var estimate = await budget.EstimateRuntimeAsync(envelope.NetworkId, envelope.WorkloadId, tier, JobCostEstimator.EstimateRuntimeMs(envelope.WorkloadId, input), ct);
        var runtime = estimate.RuntimeMs;
        var cost = CreditCalculator.Charge(runtime, tier, membership.Settings.Credits).BurnMicro;
        return new Prepared(membership, input, timeout, decision, tier, runtime, cost, context);
    }
}

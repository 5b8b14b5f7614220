using System.Data.Common;
using MeshAI.Common;
using MeshAI.Common.Domain;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Devices;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Ledger;

/// <summary>
/// Writes the ledger side of a settlement: first builds the execution record (tier, runtime, heartbeats, relay bytes, the
/// rates in force, the mint decision), then — inside the caller's job transaction — stores it and appends the events priced
/// from it. Idempotent per job + chunk: a duplicate report inserts nothing.
/// </summary>
public sealed class LedgerWriter(LedgerRepository ledger, IPresenceDirectory presence, IOptions<ControlPlaneOptions> options, TimeProvider clock)
{
    private const long HourMs = 3_600_000;

    /// <summary>Why a settlement cut off at max_cost_credits mints nothing: the job was cancelled before it produced a validated result.</summary>
    public const string CostCapWithheldReason = "cost cap reached: cancelled before a validated result";

    /// <summary>The execution record of a result reported by <paramref name="device"/> (reads flags, rate-limit counts and prior burns).</summary>
    public Task<JobMeteringRow> MeterAsync(JobRow job, JobResult result, DeviceRow device, long relayBytes, CreditSettings credits, long nowMs, CancellationToken ct) =>
        MeterAsync(job, result, device, relayBytes, credits, nowMs, holdMintForSpotCheck: false, ct);

    /// <summary>
    /// The execution record of a result; with <paramref name="holdMintForSpotCheck"/> a mint the rules allow is held
    /// (mint_withheld_reason = <see cref="SpotCheck.PendingReason"/>, the mint cap kept) until
    /// <see cref="ResolveHeldMintAsync"/> releases or withholds it.
    /// </summary>
    public Task<JobMeteringRow> MeterAsync(JobRow job, JobResult result, DeviceRow device, long relayBytes, CreditSettings credits, long nowMs, bool holdMintForSpotCheck, CancellationToken ct) =>
        MeterAsync(job, result, device, relayBytes, credits, nowMs, holdMintForSpotCheck, 0, ct);

    /// <summary>
    /// The execution record of a result that follows earlier settlements of the same job written in the same transaction
    /// (a resumed chat's interrupted segments): <paramref name="unsettledPriorBurnMicro"/> is what they burn, so the job's cap
    /// holds across all of them.
    /// </summary>
    public async Task<JobMeteringRow> MeterAsync(JobRow job, JobResult result, DeviceRow device, long relayBytes, CreditSettings credits, long nowMs, bool holdMintForSpotCheck, long unsettledPriorBurnMicro, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(result);
        var measured = result.Metering?.RuntimeMs ?? 0;
        var runtime = measured > 0 ? measured : nowMs - (job.StartTimeMs ?? job.PlacementTimeMs ?? nowMs);
        var metering = await MeterCoreAsync(job, result.ChunkId, result.Attempt, device, runtime, result.Metering?.HeartbeatsDuringRun ?? 0, relayBytes, credits, nowMs, ct, unsettledPriorBurnMicro);
        return holdMintForSpotCheck ? HoldMint(metering) : metering;
    }

    /// <summary>
    /// The execution record of an interrupted segment of a resumed chat stream (docs/chat-resume.md): the
    /// device died (or failed) after streaming tokens the next device continued from. Its runtime is control's own
    /// observation — accept to its last delivered token — and its heartbeats are <see cref="MintPolicy.ObservedHeartbeats"/>
    /// of its token arrivals (there is no agent metering). Keyed chunk <see cref="LedgerKeys.StreamSegment"/>; settled
    /// only when the job completes, together with the final attempt.
    /// </summary>
    public async Task<JobMeteringRow> MeterStreamSegmentAsync(JobRow job, int attempt, DeviceRow device, long startMs, IReadOnlyList<long> tokenTimesMs, long unsettledPriorBurnMicro, CreditSettings credits, long nowMs, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(tokenTimesMs);
        var runtime = Math.Max(1, (tokenTimesMs.Count == 0 ? startMs : tokenTimesMs.Max()) - startMs);
        var beats = MintPolicy.ObservedHeartbeats(startMs, tokenTimesMs, options.Value.Ledger.HeartbeatIntervalMs);
        return await MeterCoreAsync(job, LedgerKeys.StreamSegment(attempt), attempt, device, runtime, beats, 0, credits, nowMs, ct, unsettledPriorBurnMicro);
    }

    /// <summary>Holds a settlement's mint for a spot-check when the mint rules allow it (a mint already withheld stays withheld for its reason).</summary>
    public static JobMeteringRow HoldMint(JobMeteringRow metering) => HoldMint(metering, SpotCheck.PendingReason);

    /// <summary>Holds a settlement's mint with <paramref name="pendingReason"/> (spot-check or canary) when the mint rules allow it.</summary>
    public static JobMeteringRow HoldMint(JobMeteringRow metering, string pendingReason)
    {
        ArgumentNullException.ThrowIfNull(metering);
        if (metering.MintWithheldReason.Length == 0)
        {
            metering.MintWithheldReason = pendingReason;
        }

        return metering;
    }

    /// <summary>
    /// Ends a held spot-check mint in the caller's transaction. Release (match or inconclusive): the execution record's
    /// pending reason is cleared and the credits_minted event priced from it is appended (key job:chunk:CreditsMinted).
    /// Withhold (mismatch): the pending reason becomes <see cref="SpotCheck.MismatchReasonPrefix"/> + detail and nothing is
    /// minted. Either way the ledger stays equal to the execution record. Returns the micro-credits minted (0 when withheld,
    /// nothing was held, or it was already resolved).
    /// </summary>
    public static Task<long> ResolveHeldMintAsync(DbConnection c, DbTransaction tx, string networkId, string jobId, string chunkId, bool release, string detail, long nowMs, CancellationToken ct) =>
        ResolveHeldMintAsync(c, tx, networkId, jobId, chunkId, SpotCheck.PendingReason, release ? "" : SpotCheck.MismatchReasonPrefix + detail, nowMs, ct);

    /// <summary>
    /// Ends a mint held with <paramref name="pendingReason"/> (a spot-check's or a canary's) in the caller's transaction:
    /// <paramref name="withheldReason"/> empty releases it (the credits_minted event priced from the record is appended),
    /// otherwise it becomes the record's reason and nothing is minted. Applies once; returns the micro-credits minted.
    /// </summary>
    public static async Task<long> ResolveHeldMintAsync(DbConnection c, DbTransaction tx, string networkId, string jobId, string chunkId, string pendingReason, string withheldReason, long nowMs, CancellationToken ct)
    {
        var release = withheldReason.Length == 0;
        if (!await LedgerRepository.ReplaceMintWithheldReasonAsync(c, tx, networkId, jobId, chunkId, pendingReason, withheldReason, ct) || !release)
        {
            return 0;
        }

        var metering = await LedgerRepository.GetMeteringAsync(c, tx, networkId, jobId, chunkId, ct);
        if (metering is null)
        {
            return 0;
        }

        var mint = Events(metering, metering.CreateTimeMs).FirstOrDefault(e => e.EventType == (int)LedgerEventType.CreditsMinted);
        if (mint is null)
        {
            return 0;
        }

        mint.CreateTimeMs = nowMs;
        return await LedgerRepository.AppendAsync(c, tx, mint, ct) ? mint.AmountMicro : 0;
    }

    /// <summary>
    /// The execution record of an attempt cancelled when its runtime passed the job's max_cost_credits: billed for
    /// <paramref name="runtimeMs"/> (the pricing clamps the burn to what is left of the cap), nothing minted.
    /// </summary>
    public Task<JobMeteringRow> MeterCappedAsync(JobRow job, int attempt, DeviceRow device, long runtimeMs, CreditSettings credits, long nowMs, CancellationToken ct) =>
        MeterCappedAsync(job, attempt, device, runtimeMs, credits, nowMs, 0, ct);

    /// <summary>The execution record of an attempt cut off at the cap after earlier, not yet written settlements burning <paramref name="unsettledPriorBurnMicro"/>.</summary>
    public async Task<JobMeteringRow> MeterCappedAsync(JobRow job, int attempt, DeviceRow device, long runtimeMs, CreditSettings credits, long nowMs, long unsettledPriorBurnMicro, CancellationToken ct)
    {
        var metering = await MeterCoreAsync(job, "", attempt, device, runtimeMs, 0, 0, credits, nowMs, ct, unsettledPriorBurnMicro);
        metering.MintWithheldReason = CostCapWithheldReason;
        metering.MintCapBps = 0;
        return metering;
    }

    private async Task<JobMeteringRow> MeterCoreAsync(JobRow job, string chunkId, int attempt, DeviceRow device, long runtime, int heartbeats, long relayBytes, CreditSettings credits, long nowMs, CancellationToken ct, long unsettledPriorBurnMicro = 0)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(device);
        var capabilities = presence.GetOnline(device.DeviceId, clock.GetUtcNow())?.Capabilities ?? DeviceCards.Capabilities(device);
        var tier = TierOf(job, device);
        var lookup = await ledger.MeteringLookupAsync(job.NetworkId, job.JobId, device.DeviceId, nowMs - HourMs, options.Value.Ledger.MaxMintingSettlementsPerDevicePerHour, (int)LedgerEventType.CreditsBurned, job.MaxCostCredits > 0, ct);
        var prior = job.MaxCostCredits > 0 ? lookup.BurnedForJobMicro + unsettledPriorBurnMicro : 0;
        var context = new MeteringContext(capabilities, lookup.DeviceFlagged, lookup.MintingSettlements, prior);
        return Meter(job, chunkId, attempt, device, tier, runtime, heartbeats, relayBytes, credits, options.Value.Ledger, context, nowMs);
    }

    /// <summary>The tier a job is billed at on <paramref name="device"/>: its placement's tier when it was placed there, else the device's class.</summary>
    public static Tier TierOf(JobRow job, DeviceRow device)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(device);
        return job.DeviceId == device.DeviceId && job.Tier != 0 ? (Tier)job.Tier : Tiers.Classify(DeviceCards.Capabilities(device));
    }

    /// <summary>What the writer looked up about the device and job before metering.</summary>
    public sealed record MeteringContext(CapabilityReport Capabilities, bool DeviceFlagged, int MintingSettlementsLastHour, long PriorBurnMicro);

    /// <summary>Builds an execution record (pure).</summary>
    public static JobMeteringRow Meter(
        JobRow job, string chunkId, int attempt, DeviceRow device, Tier tier, long runtimeMs, int heartbeats, long relayBytes,
        CreditSettings credits, LedgerOptions rules, MeteringContext context, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(credits);
        ArgumentNullException.ThrowIfNull(context);
        var runtime = Math.Max(1, runtimeMs);
        var rate = CreditCalculator.RateFor(credits, tier);
        var mint = MintPolicy.Decide(context.Capabilities, runtime, heartbeats, context.DeviceFlagged, context.MintingSettlementsLastHour, rules);
        return new JobMeteringRow
        {
            NetworkId = job.NetworkId,
            JobId = job.JobId,
            ChunkId = chunkId ?? "",
            Attempt = attempt,
            DeviceId = device.DeviceId,
            DeviceOwnerUserId = device.OwnerUserId,
            SubmittedByUserId = job.SubmittedByUserId,
            BurnAccountKind = (int)(credits.SharedPoolEnabled ? AccountKind.Pool : AccountKind.Member),
            Tier = (int)tier,
            WorkloadId = job.WorkloadId,
            RuntimeMs = runtime,
            RelayBytes = Math.Max(0, relayBytes),
            HeartbeatsDuringRun = heartbeats,
            BurnMicroPerMin = rate.BurnMicroPerMin,
            EarnMicroPerMin = rate.EarnMicroPerMin,
            MultiplierBps = credits.MultiplierBps <= 0 ? Networks.NetworkDefaults.MultiplierBps : credits.MultiplierBps,
            BillingGranularityMs = credits.BillingGranularityMs,
            RelaySurchargeMicroPerMib = credits.RelaySurchargeEnabled ? credits.RelaySurchargeMicroPerMib : 0,
            MintCapBps = mint.CapBps,
            MaxCostMicro = Math.Max(0, job.MaxCostCredits),
            PriorBurnMicro = context.PriorBurnMicro,
            MintWithheldReason = mint.WithheldReason,
            CreateTimeMs = nowMs,
        };
    }

    /// <summary>
    /// Stores the execution record and appends job_started, job_completed, credits_burned and (when anything is minted)
    /// credits_minted, in the caller's transaction. False when this job + chunk was already settled (nothing is written).
    /// </summary>
    public static Task<bool> AppendCompletedAsync(DbConnection c, DbTransaction tx, JobMeteringRow m, long jobStartMs, CancellationToken ct) =>
        AppendAndApplyAsync(c, tx, m, jobStartMs, LedgerEventType.JobCompleted, ct);

    /// <summary>
    /// <see cref="AppendCompletedAsync(DbConnection, DbTransaction, JobMeteringRow, long, CancellationToken)"/> that adds the
    /// settlement's relay bytes and balance moves to <paramref name="totals"/> instead of writing them: the caller applies
    /// them last (<see cref="RunningTotals.ApplyAsync"/>), once for every settlement of its transaction.
    /// </summary>
    public static Task<bool> AppendCompletedAsync(DbConnection c, DbTransaction tx, JobMeteringRow m, long jobStartMs, RunningTotals totals, CancellationToken ct) =>
        AppendSettlementAsync(c, tx, m, jobStartMs, LedgerEventType.JobCompleted, totals, ct);

    /// <summary>
    /// Stores the execution record of an attempt cut off at the job's cost cap and appends job_started, job_failed and
    /// credits_burned (within the cap; nothing is minted), in the caller's transaction. False when already settled.
    /// </summary>
    public static Task<bool> AppendCappedAsync(DbConnection c, DbTransaction tx, JobMeteringRow m, long jobStartMs, CancellationToken ct) =>
        AppendAndApplyAsync(c, tx, m, jobStartMs, LedgerEventType.JobFailed, ct);

    private static async Task<bool> AppendAndApplyAsync(DbConnection c, DbTransaction tx, JobMeteringRow m, long jobStartMs, LedgerEventType terminal, CancellationToken ct)
    {
        var totals = new RunningTotals();
        var appended = await AppendSettlementAsync(c, tx, m, jobStartMs, terminal, totals, ct);
        await totals.ApplyAsync(c, tx, ct);
        return appended;
    }

    private static async Task<bool> AppendSettlementAsync(DbConnection c, DbTransaction tx, JobMeteringRow m, long jobStartMs, LedgerEventType terminal, RunningTotals totals, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(totals);
        if (!await LedgerRepository.InsertMeteringAsync(c, tx, m, ct))
        {
            return false;
        }

        totals.AddRelay(m);
        totals.AddEvents(await LedgerRepository.InsertEventsAsync(c, tx, Events(m, jobStartMs, terminal), ct));
        return true;
    }

    /// <summary>The events of one settlement, priced from its execution record; <paramref name="terminal"/> is job_completed, or job_failed for a capped attempt.</summary>
    public static IReadOnlyList<LedgerEventRow> Events(JobMeteringRow m, long jobStartMs, LedgerEventType terminal = LedgerEventType.JobCompleted)
    {
        ArgumentNullException.ThrowIfNull(m);
        var priced = LedgerPricing.Price(m);
        LedgerEventRow Event(LedgerEventType type, string userId, AccountKind kind, long amount, long createMs) => new()
        {
            EventId = Ids.New("lev"),
            NetworkId = m.NetworkId,
            EventType = (int)type,
            JobId = m.JobId,
            ChunkId = m.ChunkId,
            UserId = userId,
            DeviceId = m.DeviceId,
            AccountKind = (int)kind,
            AmountMicro = amount,
            RuntimeMs = m.RuntimeMs,
            BilledRuntimeMs = priced.BilledMs,
            Tier = m.Tier,
            IdempotencyKey = LedgerKeys.ForJob(m.JobId, m.ChunkId, type),
            CreateTimeMs = createMs,
            RelayBytes = m.RelayBytes,
        };

        var events = new List<LedgerEventRow>
        {
            Event(LedgerEventType.JobStarted, m.SubmittedByUserId, AccountKind.Unspecified, 0, Math.Min(jobStartMs, m.CreateTimeMs)),
            Event(terminal, m.SubmittedByUserId, AccountKind.Unspecified, 0, m.CreateTimeMs),
            Event(LedgerEventType.CreditsBurned, m.SubmittedByUserId, (AccountKind)m.BurnAccountKind, -priced.BurnMicro, m.CreateTimeMs),
        };
        if (priced.MintMicro > 0)
        {
            events.Add(Event(LedgerEventType.CreditsMinted, m.DeviceOwnerUserId, AccountKind.Member, priced.MintMicro, m.CreateTimeMs));
        }

        return events;
    }
}

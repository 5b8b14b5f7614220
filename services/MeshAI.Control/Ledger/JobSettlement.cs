using MeshAI.Common;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Ledger;

/// <summary>The ledger side of a job's end: which events a completed or failed job appends (pure; the runner writes them atomically with the job).</summary>
public static class JobSettlement
{
    /// <summary>Events for a completed job: job_started, job_completed, credits_burned (submitter, from the pool when shared), credits_minted (device owner).</summary>
    public static IReadOnlyList<LedgerEventRow> Completed(JobRow job, string chunkId, string deviceOwnerUserId, Charge charge, long burnMicro, CreditSettings credits, long nowMs)
    {
        var tier = job.Tier;
        LedgerEventRow Event(LedgerEventType type, string userId, AccountKind kind, long amount, long createMs) => new()
        {
            EventId = Ids.New("lev"),
            NetworkId = job.NetworkId,
            EventType = (int)type,
            JobId = job.JobId,
            ChunkId = chunkId,
            UserId = userId,
            DeviceId = job.DeviceId ?? "",
            AccountKind = (int)kind,
            AmountMicro = amount,
            RuntimeMs = charge.RuntimeMs,
            BilledRuntimeMs = charge.BilledRuntimeMs,
            Tier = tier,
            IdempotencyKey = LedgerKeys.ForJob(job.JobId, chunkId, type),
            CreateTimeMs = createMs,
            RelayBytes = job.RelayBytes,
        };

        return
        [
            Event(LedgerEventType.JobStarted, job.SubmittedByUserId, AccountKind.Unspecified, 0, job.StartTimeMs ?? nowMs),
            Event(LedgerEventType.JobCompleted, job.SubmittedByUserId, AccountKind.Unspecified, 0, nowMs),
            Event(LedgerEventType.CreditsBurned, job.SubmittedByUserId, credits.SharedPoolEnabled ? AccountKind.Pool : AccountKind.Member, -burnMicro, nowMs),
            Event(LedgerEventType.CreditsMinted, deviceOwnerUserId, AccountKind.Member, charge.MintMicro, nowMs),
        ];
    }

    /// <summary>The single job_failed event of a failed job (nothing is burned).</summary>
    public static LedgerEventRow Failed(JobRow job, long nowMs) => new()
    {
        EventId = Ids.New("lev"),
        NetworkId = job.NetworkId,
        EventType = (int)LedgerEventType.JobFailed,
        JobId = job.JobId,
        UserId = job.SubmittedByUserId,
        DeviceId = job.DeviceId ?? "",
        AccountKind = (int)AccountKind.Unspecified,
        Tier = job.Tier,
        IdempotencyKey = LedgerKeys.ForJob(job.JobId, "", LedgerEventType.JobFailed),
        CreateTimeMs = nowMs,
    };

    /// <summary>The burn after the submitter's cap: never more than max_cost_credits when that is set.</summary>
    public static long CappedBurn(long burnMicro, long maxCostMicro) => maxCostMicro > 0 ? Math.Min(burnMicro, maxCostMicro) : burnMicro;
}

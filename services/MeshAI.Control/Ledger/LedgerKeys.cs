using MeshAI.Contracts.Ledger.V1;

namespace MeshAI.Control.Ledger;

/// <summary>Idempotency keys of ledger events: job_id + chunk_id + event type, unique per network.</summary>
public static class LedgerKeys
{
    /// <summary>The key of a job event.</summary>
    public static string ForJob(string jobId, string chunkId, LedgerEventType type) =>
        jobId + ":" + chunkId + ":" + type.ToString();

    /// <summary>The key of a network's starting grant.</summary>
    public static string StartingGrant(string networkId) => "grant:" + networkId + ":start";
}

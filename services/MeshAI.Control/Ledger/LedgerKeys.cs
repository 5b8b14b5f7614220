using MeshAI.Contracts.Ledger.V1;

namespace MeshAI.Control.Ledger;

/// <summary>Idempotency keys of ledger events: job_id + chunk_id + event type, unique per network.</summary>
public static class LedgerKeys
{
    /// <summary>The key of a job event.</summary>
    public static string ForJob(string jobId, string chunkId, LedgerEventType type) =>
        jobId + ":" + chunkId + ":" + type.ToString();

    /// <summary>
    /// The chunk id under which an interrupted attempt of a resumed chat stream is settled ("attempt-N"): each device that
    /// streamed part of the answer has its own execution record (docs/chat-resume.md).
    /// </summary>
    public static string StreamSegment(int attempt) => "attempt-" + attempt.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The key of a network's starting grant.</summary>
    public static string StartingGrant(string networkId) => "grant:" + networkId + ":start";
}

using Dapper;

namespace MeshAI.Control.Storage;

/// <summary>
/// The light reads a network watch repeats every interval: recent job summaries without their payloads, attempts of a few
/// jobs at once, and the ledger head (so balances are only recomputed when the ledger moved).
/// </summary>
public sealed class NetworkWatchRepository(Database database)
{
    // Every jobs column except the blobs (envelope, output, output_nonce, debug_view): a watch never needs them.
    private const string SummaryColumns =
        "job_id, network_id, submitted_by_user_id, workload_id, state, routing_mode, data_sensitivity_tag, idempotency_key, device_id, tier, " +
        "create_time_ms, start_time_ms, end_time_ms, runtime_ms, billed_runtime_ms, cost_micro, max_cost_credits, timeout_ms, error_message, relay_bytes, " +
        "trace_id, output_encrypted, placement_time_ms, chunk_count, chunks_completed";

    /// <summary>The newest <paramref name="limit"/> jobs of the network, without envelope, output or debug view.</summary>
    public Task<IEnumerable<JobRow>> ListRecentJobSummariesAsync(string networkId, int limit, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<JobRow>(Database.Command(
            $"SELECT {SummaryColumns} FROM jobs WHERE network_id = @networkId ORDER BY create_time_ms DESC, job_id DESC LIMIT @limit",
            new { networkId, limit }, ct)), ct);

    /// <summary>Attempts of the given jobs, in job and attempt order.</summary>
    public async Task<ILookup<string, JobAttemptRow>> ListAttemptsAsync(IReadOnlyCollection<string> jobIds, CancellationToken ct)
    {
        if (jobIds.Count == 0)
        {
            return Array.Empty<JobAttemptRow>().ToLookup(a => a.JobId, StringComparer.Ordinal);
        }

        var rows = await database.RunAsync(c => c.QueryAsync<JobAttemptRow>(Database.Command(
            "SELECT job_id, attempt, device_id, cause, start_time_ms, end_time_ms, detail, chunk_id FROM job_attempts " +
            "WHERE job_id IN @jobIds ORDER BY job_id, attempt", new { jobIds }, ct)), ct);
        return rows.ToLookup(a => a.JobId, StringComparer.Ordinal);
    }

    /// <summary>The highest ledger sequence of the network (0 when it has no events).</summary>
    public Task<long> LedgerHeadAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT COALESCE(MAX(sequence), 0) FROM ledger_events WHERE network_id = @networkId", new { networkId }, ct)), ct);
}

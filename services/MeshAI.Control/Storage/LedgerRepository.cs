using System.Data.Common;
using Dapper;

namespace MeshAI.Control.Storage;

/// <summary>The append-only ledger: inserts (idempotent per network + key), listing and aggregates.</summary>
public sealed class LedgerRepository(Database database)
{
    private const string Columns =
        "sequence, event_id, network_id, event_type, job_id, chunk_id, user_id, device_id, account_kind, amount_micro, runtime_ms, billed_runtime_ms, " +
        "tier, idempotency_key, create_time_ms, relay_bytes";

    /// <summary>One aggregate line: the sum of amounts per account, user, device and event type.</summary>
    public sealed class Aggregate
    {
        public int AccountKind { get; set; }
        public string UserId { get; set; } = "";
        public string DeviceId { get; set; } = "";
        public int EventType { get; set; }
        public long AmountMicro { get; set; }
        public long RuntimeMs { get; set; }
        public long Events { get; set; }
    }

    /// <summary>Appends an event unless one with the same idempotency key exists in the network; true when inserted.</summary>
    public static async Task<bool> AppendAsync(DbConnection c, DbTransaction tx, LedgerEventRow e, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            "INSERT INTO ledger_events (event_id, network_id, event_type, job_id, chunk_id, user_id, device_id, account_kind, amount_micro, runtime_ms, " +
            "billed_runtime_ms, tier, idempotency_key, create_time_ms, relay_bytes) VALUES (@EventId, @NetworkId, @EventType, @JobId, @ChunkId, @UserId, " +
            "@DeviceId, @AccountKind, @AmountMicro, @RuntimeMs, @BilledRuntimeMs, @Tier, @IdempotencyKey, @CreateTimeMs, @RelayBytes) " +
            "ON CONFLICT (network_id, idempotency_key) DO NOTHING", e, ct, tx)) > 0;

    /// <summary>Events of a network in sequence order after the cursor, optionally for one job.</summary>
    public Task<IEnumerable<LedgerEventRow>> ListAsync(string networkId, string? jobId, long afterSequence, int limit, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<LedgerEventRow>(Database.Command(
            $"SELECT {Columns} FROM ledger_events WHERE network_id = @networkId AND (@jobId IS NULL OR job_id = @jobId) AND sequence > @afterSequence " +
            "ORDER BY sequence LIMIT @limit", new { networkId, jobId, afterSequence, limit }, ct)), ct);

    /// <summary>Sums per account kind, user, device and event type for the network.</summary>
    public Task<IEnumerable<Aggregate>> AggregateAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<Aggregate>(Database.Command(
            "SELECT account_kind, user_id, device_id, event_type, CAST(SUM(amount_micro) AS BIGINT) AS amount_micro, " +
            "CAST(SUM(runtime_ms) AS BIGINT) AS runtime_ms, COUNT(*) AS events FROM ledger_events WHERE network_id = @networkId " +
            "GROUP BY account_kind, user_id, device_id, event_type", new { networkId }, ct)), ct);
}

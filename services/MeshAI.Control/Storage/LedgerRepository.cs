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

    /// <summary>
    /// Appends an event unless one with the same idempotency key exists in the network, and adds its amount to the running
    /// balance of its account (<see cref="ApplyBalancesAsync"/>) in the same transaction; true when inserted.
    /// </summary>
    public static async Task<bool> AppendAsync(DbConnection c, DbTransaction tx, LedgerEventRow e, CancellationToken ct)
    {
        if (!await InsertEventAsync(c, tx, e, ct))
        {
            return false;
        }

        await ApplyBalancesAsync(c, tx, [e], ct);
        return true;
    }

    /// <summary>
    /// Appends several events of one settlement (each unless its idempotency key exists) and then their running balances,
    /// in the caller's transaction; returns the events inserted.
    /// </summary>
    public static Task<IReadOnlyList<LedgerEventRow>> AppendAllAsync(DbConnection c, DbTransaction tx, IReadOnlyList<LedgerEventRow> events, CancellationToken ct) =>
        AppendAllAsync(c, tx, events, null, ct);

    /// <summary>
    /// <see cref="AppendAllAsync(DbConnection, DbTransaction, IReadOnlyList{LedgerEventRow}, CancellationToken)"/> that also
    /// adds <paramref name="metering"/>'s relay bytes to its month in relay_usage (when given). Every running total — the
    /// network's month and each account's balance, rows every settlement of the network updates — is written by one command
    /// after the events (<see cref="ApplyRunningTotalsAsync"/>), so that on PostgreSQL the row locks they take are held for
    /// that command and the commit only, not across the events' round trips (#11: with the totals first, settlements of a
    /// network queued behind each other's whole transaction).
    /// </summary>
    public static async Task<IReadOnlyList<LedgerEventRow>> AppendAllAsync(DbConnection c, DbTransaction tx, IReadOnlyList<LedgerEventRow> events, JobMeteringRow? metering, CancellationToken ct)
    {
        var inserted = await InsertEventsAsync(c, tx, events, ct);
        await ApplyRunningTotalsAsync(c, tx, metering, inserted, ct);
        return inserted;
    }

    /// <summary>
    /// Inserts several events (each unless its idempotency key exists in the network) in the caller's transaction WITHOUT
    /// touching the running totals; returns the events inserted, for the caller to add to its <see cref="RunningTotals"/>
    /// and apply last (a settlement group commit applies a whole batch's totals once).
    /// </summary>
    public static async Task<IReadOnlyList<LedgerEventRow>> InsertEventsAsync(DbConnection c, DbTransaction tx, IReadOnlyList<LedgerEventRow> events, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(events);
        var inserted = new List<LedgerEventRow>(events.Count);
        foreach (var e in events)
        {
            if (await InsertEventAsync(c, tx, e, ct))
            {
                inserted.Add(e);
            }
        }

        return inserted;
    }

    /// <summary>The running-balance account an event moves: the pool (user id ""), a member, or none (amount-free job events).</summary>
    public static (int AccountKind, string UserId)? BalanceAccount(LedgerEventRow e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return e.AccountKind switch
        {
            PoolAccount => (PoolAccount, ""),
            MemberAccount when e.UserId.Length > 0 => (MemberAccount, e.UserId),
            _ => null,
        };
    }

    private const int PoolAccount = 1; // AccountKind.Pool
    private const int MemberAccount = 2; // AccountKind.Member

    /// <summary>
    /// Adds the amounts of freshly inserted events to ledger_balances (one upsert per account, in account order so that
    /// concurrent settlements lock the rows in the same order and cannot deadlock on PostgreSQL).
    /// </summary>
    public static Task ApplyBalancesAsync(DbConnection c, DbTransaction tx, IReadOnlyCollection<LedgerEventRow> inserted, CancellationToken ct) =>
        ApplyRunningTotalsAsync(c, tx, null, inserted, ct);

    /// <summary>
    /// Adds <paramref name="metering"/>'s relay bytes (when given) to its network's month in relay_usage and the amounts of
    /// freshly inserted events to ledger_balances, in ONE command (one round trip on PostgreSQL): relay_usage first, then one
    /// upsert per account in account order, so concurrent settlements lock these rows in the same order and cannot deadlock.
    /// Callers put it last in their transaction (#11).
    /// </summary>
    public static Task ApplyRunningTotalsAsync(DbConnection c, DbTransaction tx, JobMeteringRow? metering, IReadOnlyCollection<LedgerEventRow> inserted, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(inserted);
        var totals = new RunningTotals();
        if (metering is not null)
        {
            totals.AddRelay(metering);
        }

        totals.AddEvents(inserted);
        return totals.ApplyAsync(c, tx, ct);
    }

    /// <summary>One running balance of a network: the pool (<paramref name="pool"/>) or the member <paramref name="userId"/>; 0 when it never moved.</summary>
    public Task<long> BalanceAsync(string networkId, bool pool, string userId, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT COALESCE(MAX(balance_micro), 0) FROM ledger_balances WHERE network_id = @networkId AND account_kind = @kind AND user_id = @userId",
            new { networkId, kind = pool ? PoolAccount : MemberAccount, userId = pool ? "" : userId }, ct)), ct);

    /// <summary>One running balance row.</summary>
    public sealed class RunningBalance
    {
        public int AccountKind { get; set; }
        public string UserId { get; set; } = "";
        public long BalanceMicro { get; set; }
    }

    /// <summary>Every running balance row of a network (reconcile compares them with the sums of the events).</summary>
    public Task<IEnumerable<RunningBalance>> ListRunningBalancesAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<RunningBalance>(Database.Command(
            "SELECT account_kind, user_id, balance_micro FROM ledger_balances WHERE network_id = @networkId", new { networkId }, ct)), ct);

    /// <summary>Start of the UTC calendar month of <paramref name="unixMs"/>, in Unix milliseconds (the relay_usage key).</summary>
    public static long MonthStartMs(long unixMs)
    {
        var t = DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime;
        return new DateTimeOffset(t.Year, t.Month, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
    }

    /// <summary>Relay bytes of a network's settlements in the UTC month starting at <paramref name="monthStartMs"/> (the running total).</summary>
    public Task<long> RelayBytesInMonthAsync(string networkId, long monthStartMs, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT COALESCE(MAX(relay_bytes), 0) FROM relay_usage WHERE network_id = @networkId AND month_start_ms = @monthStartMs",
            new { networkId, monthStartMs }, ct)), ct);

    /// <summary>Every relay_usage row of a network: month start → bytes (reconcile compares them with the execution records).</summary>
    public Task<IEnumerable<(long MonthStartMs, long RelayBytes)>> ListRelayUsageAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<(long, long)>(Database.Command(
            "SELECT month_start_ms, relay_bytes FROM relay_usage WHERE network_id = @networkId", new { networkId }, ct)), ct);

    /// <summary>The columns an event insert writes (sequence is assigned by the store), in order.</summary>
    internal const string EventInsertColumns =
        "event_id, network_id, event_type, job_id, chunk_id, user_id, device_id, account_kind, amount_micro, runtime_ms, " +
        "billed_runtime_ms, tier, idempotency_key, create_time_ms, relay_bytes";

    private static async Task<bool> InsertEventAsync(DbConnection c, DbTransaction tx, LedgerEventRow e, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            $"INSERT INTO ledger_events ({EventInsertColumns}) VALUES (@EventId, @NetworkId, @EventType, @JobId, @ChunkId, @UserId, " +
            "@DeviceId, @AccountKind, @AmountMicro, @RuntimeMs, @BilledRuntimeMs, @Tier, @IdempotencyKey, @CreateTimeMs, @RelayBytes) " +
            "ON CONFLICT (network_id, idempotency_key) DO NOTHING", e, ct, tx)) > 0;

    /// <summary>Events of a network in sequence order after the cursor, optionally for one job.</summary>
    public Task<IEnumerable<LedgerEventRow>> ListAsync(string networkId, string? jobId, long afterSequence, int limit, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<LedgerEventRow>(Database.Command(
            $"SELECT {Columns} FROM ledger_events WHERE network_id = @networkId AND (@jobId IS NULL OR job_id = @jobId) AND sequence > @afterSequence " +
            "ORDER BY sequence LIMIT @limit", new { networkId, jobId, afterSequence, limit }, ct)), ct);

    /// <summary>Events of a network newest first, before the cursor (0 = from the newest), optionally for one job.</summary>
    public Task<IEnumerable<LedgerEventRow>> ListNewestFirstAsync(string networkId, string? jobId, long beforeSequence, int limit, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<LedgerEventRow>(Database.Command(
            $"SELECT {Columns} FROM ledger_events WHERE network_id = @networkId AND (@jobId IS NULL OR job_id = @jobId) AND (@beforeSequence = 0 OR sequence < @beforeSequence) " +
            "ORDER BY sequence DESC LIMIT @limit", new { networkId, jobId, beforeSequence, limit }, ct)), ct);

    /// <summary>Sums per account kind, user, device and event type for the network.</summary>
    public Task<IEnumerable<Aggregate>> AggregateAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<Aggregate>(Database.Command(
            "SELECT account_kind, user_id, device_id, event_type, CAST(SUM(amount_micro) AS BIGINT) AS amount_micro, " +
            "CAST(SUM(runtime_ms) AS BIGINT) AS runtime_ms, COUNT(*) AS events FROM ledger_events WHERE network_id = @networkId " +
            "GROUP BY account_kind, user_id, device_id, event_type", new { networkId }, ct)), ct);

    /// <summary>The columns of job_meterings, in the order its inserts list them.</summary>
    internal const string MeteringColumns =
        "network_id, job_id, chunk_id, attempt, device_id, device_owner_user_id, submitted_by_user_id, burn_account_kind, tier, workload_id, runtime_ms, " +
        "relay_bytes, heartbeats_during_run, burn_micro_per_min, earn_micro_per_min, multiplier_bps, billing_granularity_ms, relay_surcharge_micro_per_mib, " +
        "mint_cap_bps, max_cost_micro, prior_burn_micro, mint_withheld_reason, create_time_ms";

    /// <summary>Per job, chunk and event type: the summed amount and how many events there are.</summary>
    public sealed class JobEventTotal
    {
        public string JobId { get; set; } = "";
        public string ChunkId { get; set; } = "";
        public int EventType { get; set; }
        public long AmountMicro { get; set; }
        public long BilledRuntimeMs { get; set; }
        public long Events { get; set; }
    }

    /// <summary>The settlement fields of a job row that reconcile compares.</summary>
    public sealed class JobTotals
    {
        public string JobId { get; set; } = "";
        public int State { get; set; }
        public long CostMicro { get; set; }
        public long BilledRuntimeMs { get; set; }
        public long MaxCostCredits { get; set; }
    }

    /// <summary>
    /// Records an execution record unless the job/chunk already has one; true when inserted (first settlement wins). Its
    /// relay bytes go to relay_usage with the settlement's events (<see cref="AppendAllAsync(DbConnection, DbTransaction, IReadOnlyList{LedgerEventRow}, JobMeteringRow?, CancellationToken)"/>).
    /// </summary>
    public static async Task<bool> InsertMeteringAsync(DbConnection c, DbTransaction tx, JobMeteringRow m, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            $"INSERT INTO job_meterings ({MeteringColumns}) VALUES (@NetworkId, @JobId, @ChunkId, @Attempt, @DeviceId, @DeviceOwnerUserId, @SubmittedByUserId, " +
            "@BurnAccountKind, @Tier, @WorkloadId, @RuntimeMs, @RelayBytes, @HeartbeatsDuringRun, @BurnMicroPerMin, @EarnMicroPerMin, @MultiplierBps, " +
            "@BillingGranularityMs, @RelaySurchargeMicroPerMib, @MintCapBps, @MaxCostMicro, @PriorBurnMicro, @MintWithheldReason, @CreateTimeMs) " +
            "ON CONFLICT (network_id, job_id, chunk_id) DO NOTHING", m, ct, tx)) > 0;

    /// <summary>Every execution record of a network.</summary>
    public Task<IEnumerable<JobMeteringRow>> ListMeteringsAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<JobMeteringRow>(Database.Command(
            $"SELECT {MeteringColumns} FROM job_meterings WHERE network_id = @networkId ORDER BY job_id, chunk_id", new { networkId }, ct)), ct);

    /// <summary>Sums of job events per job, chunk and type.</summary>
    public Task<IEnumerable<JobEventTotal>> TotalsPerJobAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<JobEventTotal>(Database.Command(
            "SELECT job_id, chunk_id, event_type, CAST(SUM(amount_micro) AS BIGINT) AS amount_micro, CAST(SUM(billed_runtime_ms) AS BIGINT) AS billed_runtime_ms, " +
            "COUNT(*) AS events FROM ledger_events WHERE network_id = @networkId AND job_id <> '' GROUP BY job_id, chunk_id, event_type", new { networkId }, ct)), ct);

    /// <summary>Settlement fields of every job of a network.</summary>
    public Task<IEnumerable<JobTotals>> ListJobTotalsAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<JobTotals>(Database.Command(
            "SELECT job_id, state, cost_micro, billed_runtime_ms, max_cost_credits FROM jobs WHERE network_id = @networkId", new { networkId }, ct)), ct);

    /// <summary>Events and distinct idempotency keys of a network (equal unless an event was applied twice).</summary>
    public Task<(long Events, long Keys)> CountEventsAsync(string networkId, CancellationToken ct) =>
        database.RunAsync(async c =>
        {
            var row = await c.QuerySingleAsync<(long, long)>(Database.Command(
                "SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM ledger_events WHERE network_id = @networkId", new { networkId }, ct));
            return row;
        }, ct);

    /// <summary>Micro-credits already burned for a job (all chunks).</summary>
    public Task<long> BurnedForJobAsync(string networkId, string jobId, int burnedType, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT CAST(COALESCE(SUM(-amount_micro), 0) AS BIGINT) FROM ledger_events WHERE network_id = @networkId AND job_id = @jobId AND event_type = @burnedType",
            new { networkId, jobId, burnedType }, ct)), ct);

    /// <summary>What metering a settlement looks up, read fresh (another settlement or a flag may have landed since).</summary>
    public readonly record struct MeteringLookup(bool DeviceFlagged, int MintingSettlements, long BurnedForJobMicro);

    /// <summary>
    /// <see cref="IsDeviceFlaggedAsync"/>, the device's settlements allowed to mint since <paramref name="sinceMs"/> (the per-device rate limit counts these),
    /// counted up to <paramref name="mintingLimit"/> only — the rate limit needs to know whether the limit is reached, and an uncapped
    /// count read every row of a busy device's last hour on every settlement (#11) — and (when <paramref name="withBurned"/>)
    /// <see cref="BurnedForJobAsync"/> in one statement, one round trip instead of two or three (#11).
    /// </summary>
    public Task<MeteringLookup> MeteringLookupAsync(string networkId, string jobId, string deviceId, long sinceMs, int mintingLimit, int burnedType, bool withBurned, CancellationToken ct) =>
        database.RunAsync(async c =>
        {
            var (flags, minting, burned) = await c.QuerySingleAsync<(long, long, long)>(Database.Command(
                "SELECT (SELECT COUNT(*) FROM device_flags WHERE device_id = @deviceId), " +
                "(SELECT COUNT(*) FROM (SELECT 1 AS one FROM job_meterings WHERE device_id = @deviceId AND create_time_ms >= @sinceMs AND mint_withheld_reason = '' " +
                "LIMIT @mintingLimit) AS recent), " +
                "CASE WHEN @withBurned = 1 THEN (SELECT CAST(COALESCE(SUM(-amount_micro), 0) AS BIGINT) FROM ledger_events " +
                "WHERE network_id = @networkId AND job_id = @jobId AND event_type = @burnedType) ELSE CAST(0 AS BIGINT) END",
                new { networkId, jobId, deviceId, sinceMs, mintingLimit = Math.Max(0, mintingLimit), burnedType, withBurned = withBurned ? 1 : 0 }, ct));
            return new MeteringLookup(flags > 0, (int)minting, burned);
        }, ct);

    /// <summary>Settlements (completed jobs and chunks) of a device since a time, and the micro-credits minted to it since then.</summary>
    public Task<(long Settlements, long MintedMicro)> DeviceActivitySinceAsync(string networkId, string deviceId, long sinceMs, int mintedType, CancellationToken ct) =>
        database.RunAsync(async c =>
        {
            var settlements = await c.ExecuteScalarAsync<long>(Database.Command(
                "SELECT COUNT(*) FROM job_meterings WHERE network_id = @networkId AND device_id = @deviceId AND create_time_ms >= @sinceMs",
                new { networkId, deviceId, sinceMs }, ct));
            var minted = await c.ExecuteScalarAsync<long>(Database.Command(
                "SELECT CAST(COALESCE(SUM(amount_micro), 0) AS BIGINT) FROM ledger_events WHERE network_id = @networkId AND device_id = @deviceId " +
                "AND event_type = @mintedType AND create_time_ms >= @sinceMs", new { networkId, deviceId, sinceMs, mintedType }, ct));
            return (settlements, minted);
        }, ct);

    /// <summary>Runtimes of the most recent runs of a workload on a tier in a network, newest first.</summary>
    public Task<IEnumerable<long>> RecentRuntimesAsync(string networkId, int workloadId, int tier, int limit, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<long>(Database.Command(
            "SELECT runtime_ms FROM job_meterings WHERE network_id = @networkId AND workload_id = @workloadId AND tier = @tier " +
            "ORDER BY create_time_ms DESC LIMIT @limit", new { networkId, workloadId, tier, limit }, ct)), ct);

    /// <summary>Events of a network created at or after a time, in sequence order after the cursor (export).</summary>
    public Task<IEnumerable<LedgerEventRow>> ListSinceAsync(string networkId, long sinceMs, long afterSequence, int limit, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<LedgerEventRow>(Database.Command(
            $"SELECT {Columns} FROM ledger_events WHERE network_id = @networkId AND create_time_ms >= @sinceMs AND sequence > @afterSequence " +
            "ORDER BY sequence LIMIT @limit", new { networkId, sinceMs, afterSequence, limit }, ct)), ct);

    /// <summary>Flags a device (anti-abuse); flagged devices mint nothing.</summary>
    public Task FlagDeviceAsync(DeviceFlagRow flag, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "INSERT INTO device_flags (flag_id, network_id, device_id, job_id, reason, create_time_ms) VALUES (@FlagId, @NetworkId, @DeviceId, @JobId, @Reason, @CreateTimeMs)",
            flag, ct)), ct);

    /// <summary>Flags a device inside the caller's transaction (a spot-check mismatch, atomically with withholding its mint).</summary>
    public static Task FlagDeviceAsync(DbConnection c, DbTransaction tx, DeviceFlagRow flag, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            "INSERT INTO device_flags (flag_id, network_id, device_id, job_id, reason, create_time_ms) VALUES (@FlagId, @NetworkId, @DeviceId, @JobId, @Reason, @CreateTimeMs)",
            flag, ct, tx));

    /// <summary>
    /// Replaces an execution record's mint_withheld_reason when it still is <paramref name="expectedReason"/> (a held spot-check
    /// mint being released or withheld); true when this call changed it, so a resolution applies once.
    /// </summary>
    public static async Task<bool> ReplaceMintWithheldReasonAsync(DbConnection c, DbTransaction tx, string networkId, string jobId, string chunkId, string expectedReason, string newReason, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            "UPDATE job_meterings SET mint_withheld_reason = @newReason WHERE network_id = @networkId AND job_id = @jobId AND chunk_id = @chunkId AND mint_withheld_reason = @expectedReason",
            new { networkId, jobId, chunkId, expectedReason, newReason }, ct, tx)) > 0;

    /// <summary>One execution record, read inside the caller's transaction.</summary>
    public static Task<JobMeteringRow?> GetMeteringAsync(DbConnection c, DbTransaction tx, string networkId, string jobId, string chunkId, CancellationToken ct) =>
        c.QuerySingleOrDefaultAsync<JobMeteringRow>(Database.Command(
            $"SELECT {MeteringColumns} FROM job_meterings WHERE network_id = @networkId AND job_id = @jobId AND chunk_id = @chunkId",
            new { networkId, jobId, chunkId }, ct, tx));

    /// <summary>The newest flag reason of every flagged device of a network (device id → reason), for the device list.</summary>
    public async Task<IReadOnlyDictionary<string, string>> NewestFlagReasonsAsync(string networkId, CancellationToken ct)
    {
        var rows = await database.RunAsync(c => c.QueryAsync<DeviceFlagRow>(Database.Command(
            "SELECT flag_id, network_id, device_id, job_id, reason, create_time_ms FROM device_flags WHERE network_id = @networkId ORDER BY create_time_ms, flag_id",
            new { networkId }, ct)), ct);
        var newest = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            newest[row.DeviceId] = row.Reason;
        }

        return newest;
    }

    /// <summary>Flags written for a device (newest first).</summary>
    public Task<IEnumerable<DeviceFlagRow>> ListDeviceFlagsAsync(string deviceId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<DeviceFlagRow>(Database.Command(
            "SELECT flag_id, network_id, device_id, job_id, reason, create_time_ms FROM device_flags WHERE device_id = @deviceId ORDER BY create_time_ms DESC",
            new { deviceId }, ct)), ct);

    /// <summary>True when an anti-abuse check flagged the device.</summary>
    public Task<bool> IsDeviceFlaggedAsync(string deviceId, CancellationToken ct) =>
        database.RunAsync(async c => await c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT COUNT(*) FROM device_flags WHERE device_id = @deviceId", new { deviceId }, ct)) > 0, ct);

    /// <summary>Networks a user created (free-tier networks_per_user).</summary>
    public Task<long> CountNetworksCreatedByAsync(string userId, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT COUNT(*) FROM networks WHERE created_by_user_id = @userId", new { userId }, ct)), ct);

    /// <summary>Devices of a network that are not revoked (free-tier max_devices_per_network), inside the registering transaction.</summary>
    public static Task<long> CountActiveDevicesAsync(DbConnection c, DbTransaction tx, string networkId, CancellationToken ct) =>
        c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT COUNT(*) FROM devices WHERE network_id = @networkId AND revoked = FALSE", new { networkId }, ct, tx));
}

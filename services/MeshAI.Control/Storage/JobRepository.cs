using System.Data.Common;
using Dapper;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Control.Storage;

/// <summary>Jobs and their attempts.</summary>
public sealed class JobRepository(Database database)
{
    private const string JobColumns =
        "job_id, network_id, submitted_by_user_id, workload_id, state, routing_mode, data_sensitivity_tag, envelope, idempotency_key, device_id, tier, " +
        "create_time_ms, start_time_ms, end_time_ms, runtime_ms, billed_runtime_ms, cost_micro, max_cost_credits, timeout_ms, error_message, relay_bytes, " +
        "trace_id, output, output_nonce, output_encrypted, debug_view, placement_time_ms, chunk_count, chunks_completed, owner_instance, lease_expire_ms";

    private const string JobValues =
        "@JobId, @NetworkId, @SubmittedByUserId, @WorkloadId, @State, @RoutingMode, @DataSensitivityTag, @Envelope, @IdempotencyKey, @DeviceId, @Tier, " +
        "@CreateTimeMs, @StartTimeMs, @EndTimeMs, @RuntimeMs, @BilledRuntimeMs, @CostMicro, @MaxCostCredits, @TimeoutMs, @ErrorMessage, @RelayBytes, " +
        "@TraceId, @Output, @OutputNonce, @OutputEncrypted, @DebugView, @PlacementTimeMs, @ChunkCount, @ChunksCompleted, @OwnerInstance, @LeaseExpireMs";

    private const string AttemptColumns = "job_id, attempt, device_id, cause, start_time_ms, end_time_ms, detail, chunk_id";

    /// <summary>Inserts a job.</summary>
    public Task InsertJobAsync(JobRow j, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command($"INSERT INTO jobs ({JobColumns}) VALUES ({JobValues})", j, ct)), ct);

    /// <summary>
    /// Inserts a job unless the submitter already has one with the same idempotency key in the network (a concurrent
    /// submit won); false then. Jobs without a key always insert.
    /// </summary>
    public Task<bool> TryInsertJobAsync(JobRow j, CancellationToken ct) =>
        database.RunAsync(async c => await c.ExecuteAsync(Database.Command(
            $"INSERT INTO jobs ({JobColumns}) VALUES ({JobValues}) ON CONFLICT (network_id, submitted_by_user_id, idempotency_key) DO NOTHING", j, ct)) > 0, ct);

    /// <summary>
    /// Place at submit (#11, docs/job-plane.md): inserts a job already PLACED (<paramref name="j"/> carries the device, tier,
    /// debug view and placement time) together with its first attempt, in one transaction — what
    /// <see cref="TryInsertJobAsync"/> followed by <see cref="RecordPlacementAsync"/> wrote in two. False (nothing written)
    /// when a concurrent submit with the same idempotency key won the insert. Both statements go in ONE command (one round
    /// trip on PostgreSQL, then the commit): the attempt is inserted only if the job row with this (fresh) id now exists,
    /// i.e. the job insert was not skipped for the idempotency key.
    /// </summary>
    public Task<bool> TryInsertPlacedJobAsync(JobRow j, JobAttemptRow attempt, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(j);
        ArgumentNullException.ThrowIfNull(attempt);
        if (!string.Equals(attempt.JobId, j.JobId, StringComparison.Ordinal))
        {
            throw new ArgumentException("the first attempt must belong to the job inserted with it", nameof(attempt));
        }

        var parameters = new DynamicParameters(j);
        parameters.Add("aAttempt", attempt.Attempt, System.Data.DbType.Int32);
        parameters.Add("aDeviceId", attempt.DeviceId, System.Data.DbType.String);
        parameters.Add("aCause", attempt.Cause, System.Data.DbType.Int32);
        parameters.Add("aStartTimeMs", attempt.StartTimeMs, System.Data.DbType.Int64);
        parameters.Add("aEndTimeMs", attempt.EndTimeMs, System.Data.DbType.Int64);
        parameters.Add("aDetail", attempt.Detail, System.Data.DbType.String);
        parameters.Add("aChunkId", attempt.ChunkId, System.Data.DbType.String);
        return database.InTransactionAsync(async (c, tx) => await c.ExecuteAsync(Database.Command(
            $"INSERT INTO jobs ({JobColumns}) VALUES ({JobValues}) ON CONFLICT (network_id, submitted_by_user_id, idempotency_key) DO NOTHING; " +
            $"INSERT INTO job_attempts ({AttemptColumns}) SELECT @JobId, @aAttempt, @aDeviceId, @aCause, @aStartTimeMs, @aEndTimeMs, @aDetail, @aChunkId " +
            "WHERE EXISTS (SELECT 1 FROM jobs WHERE job_id = @JobId)", parameters, ct, tx)) > 0, ct);
    }

    private static Task<int> InsertAttemptAsync(DbConnection c, DbTransaction tx, JobAttemptRow attempt, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            $"INSERT INTO job_attempts ({AttemptColumns}) VALUES (@JobId, @Attempt, @DeviceId, @Cause, @StartTimeMs, @EndTimeMs, @Detail, @ChunkId)",
            attempt, ct, tx));

    /// <summary>The job in the network, or null.</summary>
    public Task<JobRow?> GetJobAsync(string networkId, string jobId, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<JobRow>(Database.Command(
            $"SELECT {JobColumns} FROM jobs WHERE network_id = @networkId AND job_id = @jobId", new { networkId, jobId }, ct)), ct);

    /// <summary>The job by id alone (for agent events), or null.</summary>
    public Task<JobRow?> GetJobByIdAsync(string jobId, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<JobRow>(Database.Command(
            $"SELECT {JobColumns} FROM jobs WHERE job_id = @jobId", new { jobId }, ct)), ct);

    /// <summary>
    /// The job and its attempts in one round trip (two statements in one command; #11): what a status frame shows, read
    /// fresh because another instance (a cancel) or this one's own writes change both.
    /// </summary>
    public Task<(JobRow? Job, IReadOnlyList<JobAttemptRow> Attempts)> GetJobWithAttemptsAsync(string jobId, CancellationToken ct) =>
        database.RunAsync(async c =>
        {
            using var grid = await c.QueryMultipleAsync(Database.Command(
                $"SELECT {JobColumns} FROM jobs WHERE job_id = @jobId; SELECT {AttemptColumns} FROM job_attempts WHERE job_id = @jobId ORDER BY attempt",
                new { jobId }, ct));
            var job = await grid.ReadSingleOrDefaultAsync<JobRow>();
            var attempts = (await grid.ReadAsync<JobAttemptRow>()).AsList();
            return (job, (IReadOnlyList<JobAttemptRow>)attempts);
        }, ct);

    /// <summary>
    /// What settling or capping a job on a device reads, in one round trip (three statements in one command; #11): the job row
    /// (its state may have moved: a cancel from another instance), the network row (its credit settings may have been
    /// changed by an admin) and the device row (its capabilities decide the tier). Each is null when missing.
    /// </summary>
    public Task<(JobRow? Job, NetworkRow? Network, DeviceRow? Device)> GetSettlementInputsAsync(string jobId, string networkId, string deviceId, CancellationToken ct) =>
        database.RunAsync(async c =>
        {
            using var grid = await c.QueryMultipleAsync(Database.Command(
                $"SELECT {JobColumns} FROM jobs WHERE job_id = @jobId; " +
                $"SELECT {NetworkRepository.NetworkColumns} FROM networks n WHERE n.network_id = @networkId; " +
                $"SELECT {DeviceRepository.DeviceColumns} FROM devices WHERE device_id = @deviceId",
                new { jobId, networkId, deviceId }, ct));
            var job = await grid.ReadSingleOrDefaultAsync<JobRow>();
            var network = await grid.ReadSingleOrDefaultAsync<NetworkRow>();
            var device = await grid.ReadSingleOrDefaultAsync<DeviceRow>();
            return (job, network, device);
        }, ct);

    /// <summary>The job a submitter created with this idempotency key, or null.</summary>
    public Task<JobRow?> FindByIdempotencyKeyAsync(string networkId, string userId, string idempotencyKey, CancellationToken ct) =>
        database.RunAsync(c => c.QuerySingleOrDefaultAsync<JobRow>(Database.Command(
            $"SELECT {JobColumns} FROM jobs WHERE network_id = @networkId AND submitted_by_user_id = @userId AND idempotency_key = @idempotencyKey",
            new { networkId, userId, idempotencyKey }, ct)), ct);

    /// <summary>Jobs of a network newest first, before the (create time, id) cursor, optionally filtered by state and by submitter.</summary>
    public Task<IEnumerable<JobRow>> ListJobsAsync(string networkId, IReadOnlyCollection<int> states, long beforeCreateTimeMs, string beforeJobId, int limit, CancellationToken ct, string? submittedByUserId = null)
    {
        var stateFilter = states.Count == 0 ? "" : " AND state IN (" + string.Join(",", states.Select(s => s.ToString(System.Globalization.CultureInfo.InvariantCulture))) + ")";
        var submitterFilter = submittedByUserId is null ? "" : " AND submitted_by_user_id = @submittedByUserId";
        return database.RunAsync(c => c.QueryAsync<JobRow>(Database.Command(
            $"SELECT {JobColumns} FROM jobs WHERE network_id = @networkId{stateFilter}{submitterFilter} " +
            "AND (create_time_ms < @beforeCreateTimeMs OR (create_time_ms = @beforeCreateTimeMs AND job_id < @beforeJobId)) " +
            "ORDER BY create_time_ms DESC, job_id DESC LIMIT @limit",
            new { networkId, beforeCreateTimeMs, beforeJobId, limit, submittedByUserId }, ct)), ct);
    }

    /// <summary>Attempts of a job in order.</summary>
    public Task<IEnumerable<JobAttemptRow>> ListAttemptsAsync(string jobId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<JobAttemptRow>(Database.Command(
            $"SELECT {AttemptColumns} FROM job_attempts WHERE job_id = @jobId ORDER BY attempt", new { jobId }, ct)), ct);

    /// <summary>Records a new attempt and moves a non-terminal job to PLACED on that device.</summary>
    public Task<bool> RecordPlacementAsync(JobAttemptRow attempt, int placedState, int tier, byte[] debugView, IReadOnlyCollection<int> terminalStates, CancellationToken ct) =>
        database.InTransactionAsync(async (c, tx) =>
        {
            var moved = await c.ExecuteAsync(Database.Command(
                $"UPDATE jobs SET state = @placedState, device_id = @DeviceId, tier = @tier, debug_view = @debugView, placement_time_ms = @StartTimeMs " +
                $"WHERE job_id = @JobId AND state NOT IN ({InList(terminalStates)})",
                new { placedState, attempt.DeviceId, tier, debugView, attempt.StartTimeMs, attempt.JobId }, ct, tx));
            if (moved == 0)
            {
                return false;
            }

            await InsertAttemptAsync(c, tx, attempt, ct);
            return true;
        }, ct);

    /// <summary>
    /// Records a spot-check attempt of a settled job without touching the job row (its result, device and state stay the
    /// original run's); false when the attempt number is taken.
    /// </summary>
    public Task<bool> InsertSpotCheckAttemptAsync(JobAttemptRow attempt, CancellationToken ct) =>
        database.RunAsync(async c => await c.ExecuteAsync(Database.Command(
            $"INSERT INTO job_attempts ({AttemptColumns}) VALUES (@JobId, @Attempt, @DeviceId, @Cause, @StartTimeMs, @EndTimeMs, @Detail, @ChunkId) " +
            "ON CONFLICT (job_id, attempt) DO NOTHING", attempt, ct)) > 0, ct);

    /// <summary>Moves a PLACED job to RUNNING.</summary>
    public Task<int> MarkRunningAsync(string jobId, int placedState, int runningState, long nowMs, CancellationToken ct) =>
        database.RunAsync(c => c.ExecuteAsync(Database.Command(
            "UPDATE jobs SET state = @runningState, start_time_ms = @nowMs WHERE job_id = @jobId AND state = @placedState",
            new { jobId, placedState, runningState, nowMs }, ct)), ct);

    /// <summary>Ends an open attempt with a cause; false when it was already ended.</summary>
    public static async Task<bool> EndAttemptAsync(DbConnection c, DbTransaction? tx, string jobId, int attempt, int cause, string detail, long nowMs, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            "UPDATE job_attempts SET cause = @cause, detail = @detail, end_time_ms = @nowMs WHERE job_id = @jobId AND attempt = @attempt AND end_time_ms IS NULL",
            new { jobId, attempt, cause, detail, nowMs }, ct, tx)) > 0;

    /// <summary>
    /// Ends the attempt whose result settled the job SUCCEEDED: an open one, or one ended DISCONNECT by a hedge (its device
    /// dropped, the job was re-offered at once, and the first device's result still arrived first; docs/job-plane.md).
    /// </summary>
    public static async Task<bool> EndWinningAttemptAsync(DbConnection c, DbTransaction? tx, string jobId, int attempt, long nowMs, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            "UPDATE job_attempts SET cause = @succeeded, detail = '', end_time_ms = @nowMs WHERE job_id = @jobId AND attempt = @attempt AND (end_time_ms IS NULL OR cause = @disconnect)",
            new { jobId, attempt, succeeded = (int)AttemptCause.Succeeded, disconnect = (int)AttemptCause.Disconnect, nowMs }, ct, tx)) > 0;

    /// <summary>Ends an open attempt outside any transaction.</summary>
    public Task<bool> EndAttemptAsync(string jobId, int attempt, int cause, string detail, long nowMs, CancellationToken ct) =>
        database.RunAsync(c => EndAttemptAsync(c, null, jobId, attempt, cause, detail, nowMs, ct), ct);

    /// <summary>Writes a job's terminal state (and result fields) when it is not terminal yet; false when it already was.</summary>
    public static async Task<bool> FinishAsync(DbConnection c, DbTransaction tx, JobRow final, IReadOnlyCollection<int> terminalStates, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            "UPDATE jobs SET state = @State, device_id = @DeviceId, tier = @Tier, start_time_ms = COALESCE(@StartTimeMs, start_time_ms), end_time_ms = @EndTimeMs, runtime_ms = @RuntimeMs, " +
            "billed_runtime_ms = @BilledRuntimeMs, cost_micro = @CostMicro, error_message = @ErrorMessage, relay_bytes = @RelayBytes, output = @Output, " +
            $"output_nonce = @OutputNonce, output_encrypted = @OutputEncrypted WHERE job_id = @JobId AND state NOT IN ({InList(terminalStates)})",
            final, ct, tx)) > 0;


    /// <summary>Records a chunk attempt: QUEUED moves to PLACED, the debug view follows the latest placement, the state is otherwise kept.</summary>
    public Task<bool> RecordChunkPlacementAsync(JobAttemptRow attempt, int queuedState, int placedState, int tier, byte[] debugView, IReadOnlyCollection<int> terminalStates, CancellationToken ct) =>
        database.InTransactionAsync(async (c, tx) =>
        {
            var moved = await c.ExecuteAsync(Database.Command(
                "UPDATE jobs SET state = CASE WHEN state = @queuedState THEN @placedState ELSE state END, device_id = @DeviceId, " +
                "tier = CASE WHEN tier = 0 THEN @tier ELSE tier END, debug_view = @debugView, placement_time_ms = @StartTimeMs " +
                $"WHERE job_id = @JobId AND state NOT IN ({InList(terminalStates)})",
                new { queuedState, placedState, attempt.DeviceId, tier, debugView, attempt.StartTimeMs, attempt.JobId }, ct, tx));
            if (moved == 0)
            {
                return false;
            }

            await InsertAttemptAsync(c, tx, attempt, ct);
            return true;
        }, ct);

    /// <summary>Stores a chunk's first result; false when the chunk already has one (duplicates are ignored: first result wins).</summary>
    public static async Task<bool> InsertChunkResultAsync(DbConnection c, DbTransaction tx, JobChunkRow chunk, CancellationToken ct) =>
        await c.ExecuteAsync(Database.Command(
            "INSERT INTO job_chunks (job_id, chunk_id, chunk_index, attempt, device_id, output, runtime_ms, cost_micro, end_time_ms) " +
            "VALUES (@JobId, @ChunkId, @ChunkIndex, @Attempt, @DeviceId, @Output, @RuntimeMs, @CostMicro, @EndTimeMs) ON CONFLICT (job_id, chunk_id) DO NOTHING",
            chunk, ct, tx)) > 0;

    /// <summary>Adds a completed chunk's runtime and cost to its job while it is not terminal; 0 when it already ended.</summary>
    public static Task<int> AddChunkCompletionAsync(DbConnection c, DbTransaction tx, string jobId, long runtimeMs, long billedRuntimeMs, long costMicro, long relayBytes, IReadOnlyCollection<int> terminalStates, CancellationToken ct) =>
        c.ExecuteAsync(Database.Command(
            "UPDATE jobs SET chunks_completed = chunks_completed + 1, runtime_ms = runtime_ms + @runtimeMs, billed_runtime_ms = billed_runtime_ms + @billedRuntimeMs, " +
            $"cost_micro = cost_micro + @costMicro, relay_bytes = relay_bytes + @relayBytes WHERE job_id = @jobId AND state NOT IN ({InList(terminalStates)})",
            new { jobId, runtimeMs, billedRuntimeMs, costMicro, relayBytes }, ct, tx));

    /// <summary>Renews the lease of every unfinished job <paramref name="owner"/> holds; returns the ids it still holds (one statement per renewal round, not per job).</summary>
    public Task<IEnumerable<string>> RenewLeasesAsync(string owner, long leaseExpireMs, IReadOnlyCollection<int> terminalStates, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<string>(Database.Command(
            $"UPDATE jobs SET lease_expire_ms = @leaseExpireMs WHERE owner_instance = @owner AND (state NOT IN ({InList(terminalStates)}) OR {HeldMint}) RETURNING job_id",
            new { owner, leaseExpireMs, pending = Ledger.SpotCheck.PendingReason, canaryPending = Ledger.Canary.PendingReason }, ct)), ct);

    /// <summary>
    /// Claims up to <paramref name="limit"/> finished jobs whose mint is still held for a spot-check or a canary and whose
    /// lease expired (every such job when <paramref name="ignoreLeases"/>): their owner died with the check in flight. The
    /// claimer re-runs a spot-check and ends a canary inconclusive (docs/job-plane.md "Held mints outlive their owner").
    /// </summary>
    public Task<IEnumerable<JobRow>> ClaimHeldMintsAsync(string owner, long nowMs, long leaseExpireMs, int limit, bool ignoreLeases, IReadOnlyCollection<int> terminalStates, CancellationToken ct) =>
        ClaimWhereAsync($"state IN ({InList(terminalStates)}) AND {HeldMint}", "", owner, nowMs, leaseExpireMs, limit, ignoreLeases, ct);

    /// <summary>
    /// A job whose (single) settlement's mint is held until its spot-check is compared or its canary answered
    /// (docs/anti-abuse.md): the owner renews its lease, and a claimer settles the mint when the owner died.
    /// </summary>
    private const string HeldMint = "job_id IN (SELECT m.job_id FROM job_meterings m WHERE m.mint_withheld_reason IN (@pending, @canaryPending) AND m.chunk_id = '')";

    /// <summary>
    /// Claims up to <paramref name="limit"/> unfinished jobs whose lease expired (or every unfinished job when
    /// <paramref name="ignoreLeases"/>: the embedded store has one owner) for <paramref name="owner"/>; PostgreSQL skips rows
    /// another instance is claiming at the same moment (FOR UPDATE SKIP LOCKED). Returns the claimed rows.
    /// </summary>
    public Task<IEnumerable<JobRow>> ClaimExpiredAsync(string owner, long nowMs, long leaseExpireMs, int limit, bool ignoreLeases, IReadOnlyCollection<int> terminalStates, CancellationToken ct) =>
        ClaimWhereAsync($"state NOT IN ({InList(terminalStates)})", $"AND state NOT IN ({InList(terminalStates)}) ", owner, nowMs, leaseExpireMs, limit, ignoreLeases, ct);

    /// <summary>Takes the lease of up to <paramref name="limit"/> jobs matching <paramref name="which"/> whose lease expired (any lease when <paramref name="ignoreLeases"/>).</summary>
    private Task<IEnumerable<JobRow>> ClaimWhereAsync(string which, string recheck, string owner, long nowMs, long leaseExpireMs, int limit, bool ignoreLeases, CancellationToken ct)
    {
        var expired = ignoreLeases ? "" : " AND (lease_expire_ms IS NULL OR lease_expire_ms < @nowMs)";
        return database.RunAsync(c => c.QueryAsync<JobRow>(Database.Command(
            $"UPDATE jobs SET owner_instance = @owner, lease_expire_ms = @leaseExpireMs WHERE job_id IN (" +
            $"SELECT job_id FROM jobs WHERE {which}{expired} ORDER BY create_time_ms LIMIT @limit{database.Dialect.SkipLockedClause}) " +
            $"{recheck}RETURNING {JobColumns}",
            new { owner, nowMs, leaseExpireMs, limit, pending = Ledger.SpotCheck.PendingReason, canaryPending = Ledger.Canary.PendingReason }, ct)), ct);
    }

    /// <summary>The stored chunk results of a job in chunk order.</summary>
    public Task<IEnumerable<JobChunkRow>> ListChunkResultsAsync(string jobId, CancellationToken ct) =>
        database.RunAsync(c => c.QueryAsync<JobChunkRow>(Database.Command(
            "SELECT job_id, chunk_id, chunk_index, attempt, device_id, output, runtime_ms, cost_micro, end_time_ms FROM job_chunks WHERE job_id = @jobId ORDER BY chunk_index",
            new { jobId }, ct)), ct);

    private static string InList(IReadOnlyCollection<int> values) =>
        string.Join(",", values.Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)));
}

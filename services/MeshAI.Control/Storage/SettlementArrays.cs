using System.Data.Common;
using System.Globalization;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Jobs;
using MeshAI.Control.Ledger;

namespace MeshAI.Control.Storage;

/// <summary>
/// A settlement batch as ONE statement on a store that binds array parameters (PostgreSQL, <see cref="ISqlDialect.ArrayParameters"/>;
/// #11, docs/job-plane.md "Settlement group commit", docs/benchmarks.md "One statement per settlement batch"). The per-member
/// path (<see cref="SettlementBatcher.WriteAsync"/>) sends 7 statements per member in sequence (job end, winning attempt,
/// execution record, four events), each a client round trip; this sends every member's rows as arrays and writes them with
/// <c>unnest</c> in one statement whose steps keep each member's guards:
/// <list type="number">
/// <item>the job rows still open are locked in job id order (the order every settlement transaction takes them);</item>
/// <item>those jobs are ended (<c>WHERE state NOT IN (terminal)</c>, first result wins) and return their ids;</item>
/// <item>the winning attempt of each ended job is ended SUCCEEDED (open, or ended DISCONNECT by a hedge);</item>
/// <item>the execution records of the ended jobs are inserted unless the job + chunk already has one;</item>
/// <item>the events of the inserted records are inserted unless their idempotency key exists, in member order.</item>
/// </list>
/// The statement returns the ended jobs, the inserted records and the inserted events, so the caller's
/// <see cref="RunningTotals"/> gets exactly what a member-by-member write would have added; the totals are still written last
/// by their own command. The SQL text is fixed (arrays, not one parameter per row), so Npgsql prepares it once per connection.
/// </summary>
public static class SettlementArrays
{
    private static readonly string Terminal = string.Join(",", JobViews.TerminalStates.Select(v => v.ToString(CultureInfo.InvariantCulture)));

    private static readonly string Sql =
        "WITH input AS (SELECT * FROM unnest(@job_id::text[], @state::bigint[], @device_id::text[], @tier::bigint[], @start_time_ms::bigint[], " +
        "@end_time_ms::bigint[], @runtime_ms::bigint[], @billed_runtime_ms::bigint[], @cost_micro::bigint[], @error_message::text[], @relay_bytes::bigint[], " +
        "@output::bytea[], @output_nonce::bytea[], @output_encrypted::boolean[], @attempt::bigint[], @now_ms::bigint[]) " +
        "AS u(job_id, state, device_id, tier, start_time_ms, end_time_ms, runtime_ms, billed_runtime_ms, cost_micro, error_message, relay_bytes, " +
        "output, output_nonce, output_encrypted, attempt, now_ms)), " +
        $"locked AS MATERIALIZED (SELECT j.job_id FROM jobs j WHERE j.job_id IN (SELECT job_id FROM input) AND j.state NOT IN ({Terminal}) " +
        "ORDER BY j.job_id FOR UPDATE), " +
        "finished AS (UPDATE jobs j SET state = u.state, device_id = u.device_id, tier = u.tier, start_time_ms = COALESCE(u.start_time_ms, j.start_time_ms), " +
        "end_time_ms = u.end_time_ms, runtime_ms = u.runtime_ms, billed_runtime_ms = u.billed_runtime_ms, cost_micro = u.cost_micro, " +
        "error_message = u.error_message, relay_bytes = u.relay_bytes, output = u.output, output_nonce = u.output_nonce, output_encrypted = u.output_encrypted " +
        $"FROM input u JOIN locked l ON l.job_id = u.job_id WHERE j.job_id = u.job_id AND j.state NOT IN ({Terminal}) RETURNING j.job_id, u.attempt, u.now_ms), " +
        "ended AS (UPDATE job_attempts a SET cause = @succeeded, detail = '', end_time_ms = f.now_ms FROM finished f " +
        "WHERE a.job_id = f.job_id AND a.attempt = f.attempt AND (a.end_time_ms IS NULL OR a.cause = @disconnect)), " +
        $"metered AS (INSERT INTO job_meterings ({LedgerRepository.MeteringColumns}) " +
        $"SELECT {Unqualified(LedgerRepository.MeteringColumns, "m")} FROM unnest(@m_network_id::text[], @m_job_id::text[], @m_chunk_id::text[], @m_attempt::int[], " +
        "@m_device_id::text[], @m_device_owner_user_id::text[], @m_submitted_by_user_id::text[], @m_burn_account_kind::int[], @m_tier::int[], " +
        "@m_workload_id::int[], @m_runtime_ms::bigint[], @m_relay_bytes::bigint[], @m_heartbeats_during_run::int[], @m_burn_micro_per_min::bigint[], " +
        "@m_earn_micro_per_min::bigint[], @m_multiplier_bps::bigint[], @m_billing_granularity_ms::bigint[], @m_relay_surcharge_micro_per_mib::bigint[], " +
        "@m_mint_cap_bps::bigint[], @m_max_cost_micro::bigint[], @m_prior_burn_micro::bigint[], @m_mint_withheld_reason::text[], @m_create_time_ms::bigint[]) " +
        $"WITH ORDINALITY AS m({LedgerRepository.MeteringColumns}, ord) WHERE m.job_id IN (SELECT job_id FROM finished) ORDER BY m.ord " +
        "ON CONFLICT (network_id, job_id, chunk_id) DO NOTHING RETURNING network_id, job_id, chunk_id), " +
        $"appended AS (INSERT INTO ledger_events ({LedgerRepository.EventInsertColumns}) " +
        $"SELECT {Unqualified(LedgerRepository.EventInsertColumns, "e")} FROM unnest(@e_event_id::text[], @e_network_id::text[], @e_event_type::bigint[], " +
        "@e_job_id::text[], @e_chunk_id::text[], @e_user_id::text[], @e_device_id::text[], @e_account_kind::bigint[], @e_amount_micro::bigint[], " +
        "@e_runtime_ms::bigint[], @e_billed_runtime_ms::bigint[], @e_tier::bigint[], @e_idempotency_key::text[], @e_create_time_ms::bigint[], " +
        $"@e_relay_bytes::bigint[]) WITH ORDINALITY AS e({LedgerRepository.EventInsertColumns}, ord) " +
        "WHERE EXISTS (SELECT 1 FROM metered x WHERE x.network_id = e.network_id AND x.job_id = e.job_id AND x.chunk_id = e.chunk_id) ORDER BY e.ord " +
        "ON CONFLICT (network_id, idempotency_key) DO NOTHING RETURNING network_id, idempotency_key) " +
        "SELECT 1 AS kind, '' AS network_id, job_id AS k1, '' AS k2 FROM finished " +
        "UNION ALL SELECT 2, network_id, job_id, chunk_id FROM metered " +
        "UNION ALL SELECT 3, network_id, idempotency_key, '' FROM appended";

    /// <summary>
    /// True when <paramref name="batch"/> can be written by <see cref="WriteAsync"/>: every member ends its job in a terminal
    /// state (so that a later member for the same job settles nothing, as it would in sequence). Otherwise the caller writes
    /// the members one by one.
    /// </summary>
    public static bool Fits(IReadOnlyList<SettlementCompletion> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return batch.All(s => JobViews.TerminalStates.Contains(s.Final.State));
    }

    /// <summary>
    /// Writes <paramref name="batch"/> (members in job id order, ordinal, arrival order kept among duplicates) in the caller's
    /// transaction by one statement; adds what was inserted to <paramref name="totals"/> (the caller applies them last) and
    /// returns, per member in the batch's order, whether it settled its job (false: the job had already ended, or an earlier
    /// member of the batch ended it).
    /// </summary>
    public static async Task<bool[]> WriteAsync(DbConnection c, DbTransaction tx, IReadOnlyList<SettlementCompletion> batch, RunningTotals totals)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(totals);
        var settled = new bool[batch.Count];
        var firsts = new List<int>(batch.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in Enumerable.Range(0, batch.Count).OrderBy(i => batch[i].Final.JobId, StringComparer.Ordinal))
        {
            if (seen.Add(batch[i].Final.JobId))
            {
                firsts.Add(i); // a later member for the same job finds it ended by this one: false, nothing written
            }
        }

        var meterings = new List<JobMeteringRow>(firsts.Count);
        var events = new List<LedgerEventRow>(firsts.Count * 4);
        foreach (var i in firsts)
        {
            var s = batch[i];
            var start = s.Final.StartTimeMs ?? s.NowMs;
            foreach (var m in s.EarlierSegments.Append(s.Metering))
            {
                meterings.Add(m);
                events.AddRange(LedgerWriter.Events(m, start));
            }
        }

        await using var command = c.CreateCommand();
        command.Transaction = tx;
        command.CommandText = Sql;
        var members = firsts.Select(i => batch[i]).ToArray();
        Add(command, "job_id", members.Select(s => s.Final.JobId).ToArray());
        Add(command, "state", members.Select(s => (long)s.Final.State).ToArray());
        Add(command, "device_id", members.Select(s => s.Final.DeviceId).ToArray());
        Add(command, "tier", members.Select(s => (long)s.Final.Tier).ToArray());
        Add(command, "start_time_ms", members.Select(s => s.Final.StartTimeMs).ToArray());
        Add(command, "end_time_ms", members.Select(s => s.Final.EndTimeMs).ToArray());
        Add(command, "runtime_ms", members.Select(s => s.Final.RuntimeMs).ToArray());
        Add(command, "billed_runtime_ms", members.Select(s => s.Final.BilledRuntimeMs).ToArray());
        Add(command, "cost_micro", members.Select(s => s.Final.CostMicro).ToArray());
        Add(command, "error_message", members.Select(s => s.Final.ErrorMessage).ToArray());
        Add(command, "relay_bytes", members.Select(s => s.Final.RelayBytes).ToArray());
        Add(command, "output", members.Select(s => s.Final.Output).ToArray());
        Add(command, "output_nonce", members.Select(s => s.Final.OutputNonce).ToArray());
        Add(command, "output_encrypted", members.Select(s => s.Final.OutputEncrypted).ToArray());
        Add(command, "attempt", members.Select(s => (long)s.Attempt).ToArray());
        Add(command, "now_ms", members.Select(s => s.NowMs).ToArray());
        Add(command, "succeeded", (long)AttemptCause.Succeeded);
        Add(command, "disconnect", (long)AttemptCause.Disconnect);
        Add(command, "m_network_id", meterings.Select(m => m.NetworkId).ToArray());
        Add(command, "m_job_id", meterings.Select(m => m.JobId).ToArray());
        Add(command, "m_chunk_id", meterings.Select(m => m.ChunkId).ToArray());
        Add(command, "m_attempt", meterings.Select(m => m.Attempt).ToArray());
        Add(command, "m_device_id", meterings.Select(m => m.DeviceId).ToArray());
        Add(command, "m_device_owner_user_id", meterings.Select(m => m.DeviceOwnerUserId).ToArray());
        Add(command, "m_submitted_by_user_id", meterings.Select(m => m.SubmittedByUserId).ToArray());
        Add(command, "m_burn_account_kind", meterings.Select(m => m.BurnAccountKind).ToArray());
        Add(command, "m_tier", meterings.Select(m => m.Tier).ToArray());
        Add(command, "m_workload_id", meterings.Select(m => m.WorkloadId).ToArray());
        Add(command, "m_runtime_ms", meterings.Select(m => m.RuntimeMs).ToArray());
        Add(command, "m_relay_bytes", meterings.Select(m => m.RelayBytes).ToArray());
        Add(command, "m_heartbeats_during_run", meterings.Select(m => m.HeartbeatsDuringRun).ToArray());
        Add(command, "m_burn_micro_per_min", meterings.Select(m => m.BurnMicroPerMin).ToArray());
        Add(command, "m_earn_micro_per_min", meterings.Select(m => m.EarnMicroPerMin).ToArray());
        Add(command, "m_multiplier_bps", meterings.Select(m => m.MultiplierBps).ToArray());
        Add(command, "m_billing_granularity_ms", meterings.Select(m => m.BillingGranularityMs).ToArray());
        Add(command, "m_relay_surcharge_micro_per_mib", meterings.Select(m => m.RelaySurchargeMicroPerMib).ToArray());
        Add(command, "m_mint_cap_bps", meterings.Select(m => m.MintCapBps).ToArray());
        Add(command, "m_max_cost_micro", meterings.Select(m => m.MaxCostMicro).ToArray());
        Add(command, "m_prior_burn_micro", meterings.Select(m => m.PriorBurnMicro).ToArray());
        Add(command, "m_mint_withheld_reason", meterings.Select(m => m.MintWithheldReason).ToArray());
        Add(command, "m_create_time_ms", meterings.Select(m => m.CreateTimeMs).ToArray());
        Add(command, "e_event_id", events.Select(e => e.EventId).ToArray());
        Add(command, "e_network_id", events.Select(e => e.NetworkId).ToArray());
        Add(command, "e_event_type", events.Select(e => (long)e.EventType).ToArray());
        Add(command, "e_job_id", events.Select(e => e.JobId).ToArray());
        Add(command, "e_chunk_id", events.Select(e => e.ChunkId).ToArray());
        Add(command, "e_user_id", events.Select(e => e.UserId).ToArray());
        Add(command, "e_device_id", events.Select(e => e.DeviceId).ToArray());
        Add(command, "e_account_kind", events.Select(e => (long)e.AccountKind).ToArray());
        Add(command, "e_amount_micro", events.Select(e => e.AmountMicro).ToArray());
        Add(command, "e_runtime_ms", events.Select(e => e.RuntimeMs).ToArray());
        Add(command, "e_billed_runtime_ms", events.Select(e => e.BilledRuntimeMs).ToArray());
        Add(command, "e_tier", events.Select(e => (long)e.Tier).ToArray());
        Add(command, "e_idempotency_key", events.Select(e => e.IdempotencyKey).ToArray());
        Add(command, "e_create_time_ms", events.Select(e => e.CreateTimeMs).ToArray());
        Add(command, "e_relay_bytes", events.Select(e => e.RelayBytes).ToArray());

        var finished = new HashSet<string>(StringComparer.Ordinal);
        var metered = new HashSet<(string, string, string)>();
        var appended = new HashSet<(string, string)>();
        await using (var reader = await command.ExecuteReaderAsync(CancellationToken.None))
        {
            while (await reader.ReadAsync(CancellationToken.None))
            {
                var network = reader.GetString(1);
                var k1 = reader.GetString(2);
                var k2 = reader.GetString(3);
                var kind = reader.GetInt32(0);
                if (kind == 1)
                {
                    finished.Add(k1);
                }
                else if (kind == 2)
                {
                    metered.Add((network, k1, k2));
                }
                else
                {
                    appended.Add((network, k1));
                }
            }
        }

        // The running totals of what was inserted, in member order (the same sums a member-by-member write adds); each returned
        // key is taken once, by the first row that carried it (the one the statement inserted).
        foreach (var m in meterings.Where(m => metered.Remove((m.NetworkId, m.JobId, m.ChunkId))))
        {
            totals.AddRelay(m);
        }

        totals.AddEvents(events.Where(e => appended.Remove((e.NetworkId, e.IdempotencyKey))).ToList());
        foreach (var i in firsts)
        {
            settled[i] = finished.Contains(batch[i].Final.JobId);
        }

        return settled;
    }

    private static void Add(DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
    }

    private static string Unqualified(string columns, string alias) =>
        string.Join(", ", columns.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(c => alias + "." + c));
}

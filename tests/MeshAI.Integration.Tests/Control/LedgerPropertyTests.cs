using System.Numerics;
using Dapper;
using MeshAI.Common;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Jobs;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using MeshAI.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>
/// Property-based tests of the real ledger writer (LedgerWriter + LedgerRepository) and the runner's own settlement transactions (JobSettler)
/// against real SQLite and PostgreSQL: seeded random job histories with any interleaving of completions, failures,
/// retries (late results from earlier attempts), duplicate reports and duplicate chunk reports.
/// </summary>
[TestFixtureSource(nameof(Stores))]
[Category("Integration")]
[NonParallelizable]
public sealed class LedgerPropertyTests(string store)
{
    public static readonly string[] Stores = ["sqlite", "postgres"];
    private static readonly LedgerOptions Rules = new();
    private string? _sqlitePath;
    private Database _database = null!;
    private LedgerRepository _ledger = null!;
    private JobRepository _jobs = null!;
    private JobSettler _settler = null!;

    [OneTimeSetUp]
    public async Task OpenStore()
    {
        ISqlDialect dialect;
        if (store == "postgres")
        {
            dialect = new PostgresDialect(await SharedInfrastructure.CreatePostgresDatabaseAsync("ledger"));
        }
        else
        {
            _sqlitePath = Path.Combine(Path.GetTempPath(), "meshai-ledger-" + Guid.NewGuid().ToString("N")[..10] + ".db");
            dialect = new SqliteDialect(_sqlitePath);
        }

        _database = new Database(dialect);
        await new Migrator(_database, NullLogger<Migrator>.Instance).MigrateAsync(CancellationToken.None);
        _ledger = new LedgerRepository(_database);
        _jobs = new JobRepository(_database);
        _settler = new JobSettler(_database);
    }

    [OneTimeTearDown]
    public void CloseStore()
    {
        if (_sqlitePath is not null)
        {
            foreach (var file in new[] { _sqlitePath, _sqlitePath + "-wal", _sqlitePath + "-shm" })
            {
                File.Delete(file);
            }
        }
    }

    public static IEnumerable<int> Seeds => Enumerable.Range(1, 12);

    [TestCaseSource(nameof(Seeds))]
    public async Task Random_histories_bill_exactly_the_billable_runtime_once_and_reconcile(int seed)
    {
        var random = new Random(seed);
        var credits = NetworkDefaults.Create(1000 * 1_000_000L).Credits;
        credits.SharedPoolEnabled = random.Next(2) == 0;
        credits.MultiplierBps = random.Next(3) switch { 0 => 10_000, 1 => 15_000, _ => random.Next(1, 40_000) };
        credits.BillingGranularityMs = random.Next(3) switch { 0 => 1000, 1 => 1, _ => random.Next(2, 5000) };
        credits.RelaySurchargeEnabled = random.Next(2) == 0;
        credits.RelaySurchargeMicroPerMib = random.Next(0, 50_000);
        var mesh = await SeedNetworkAsync(credits, devices: 3);

        // Build each job's reports, then interleave them all at random.
        var reports = new List<Report>();
        var sims = new List<SimJob>();
        for (var j = 0; j < 10; j++)
        {
            var chunks = random.Next(4) == 0 ? random.Next(2, 4) : 1;
            var cap = random.Next(4) == 0 ? random.NextInt64(1, 400_000) : 0;
            var sim = new SimJob(await InsertJobAsync(mesh, random.Next(1, 6), cap), chunks == 1 ? [""] : [.. Enumerable.Range(0, chunks).Select(c => $"chunk-{c:D4}")]);
            sims.Add(sim);
            foreach (var chunk in sim.Chunks)
            {
                var attempts = random.Next(1, 4); // earlier attempts may still report late after a retry
                for (var a = 1; a <= attempts; a++)
                {
                    var runtime = random.Next(5) == 0 ? random.Next(0, 3) : random.Next(1, 90_000);
                    var heartbeats = random.Next(4) == 0 ? 0 : (runtime / Rules.HeartbeatIntervalMs) + random.Next(0, 2);
                    var report = new Report(sim, chunk, a, mesh.Devices[random.Next(mesh.Devices.Count)], runtime, heartbeats, random.Next(0, 3_000_000), false);
                    reports.Add(report);
                    for (var d = random.Next(0, 3); d > 0; d--)
                    {
                        reports.Add(report); // duplicate report of the same result
                    }
                }
            }

            if (random.Next(5) == 0)
            {
                reports.Add(new Report(sim, "", 0, mesh.Devices[0], 0, 0, 0, true));
                reports.Add(new Report(sim, "", 0, mesh.Devices[0], 0, 0, 0, true));
            }
        }

        foreach (var report in reports.OrderBy(_ => random.Next()))
        {
            var applied = report.Fail ? await FailAsync(report.Job) : await CompleteAsync(mesh, credits, report);
            var expected = Model(report, credits);
            Assert.That(applied, Is.EqualTo(expected), $"seed {seed}: {report}");
        }

        var balances = await new LedgerQueries(_ledger, new NetworkRepository(_database), new DeviceRepository(_database)).GetBalancesAsync(mesh.NetworkId, credits.SharedPoolEnabled, CancellationToken.None);
        var events = (await _ledger.ListAsync(mesh.NetworkId, null, 0, 100_000, CancellationToken.None)).ToList();
        var settledChunks = sims.Sum(s => s.Settled.Count);
        Assert.Multiple(() =>
        {
            Assert.That(balances.BurnedTotalMicro, Is.EqualTo(sims.Sum(s => s.ExpectedBurn)), "burned == Σ billable runtime × burn rate");
            Assert.That(balances.MintedTotalMicro, Is.EqualTo(sims.Sum(s => s.ExpectedMint)), "minted == Σ validated runtime × earn rate");
            Assert.That(events.Where(e => e.EventType == (int)LedgerEventType.CreditsBurned).Sum(e => e.BilledRuntimeMs), Is.EqualTo(sims.Sum(s => s.ExpectedBilledMs)));
            Assert.That(events.Count(e => e.EventType == (int)LedgerEventType.CreditsBurned), Is.EqualTo(settledChunks), "one burn per settled chunk");
            Assert.That(events.Count(e => e.EventType == (int)LedgerEventType.JobCompleted), Is.EqualTo(settledChunks));
            Assert.That(events.Count(e => e.EventType == (int)LedgerEventType.JobFailed), Is.EqualTo(sims.Count(s => s.Failed)));
            Assert.That(events.Select(e => e.IdempotencyKey).Distinct().Count(), Is.EqualTo(events.Count), "no event applied twice");
            var grant = 1000 * 1_000_000L;
            Assert.That(balances.PoolBalanceMicro + balances.Members.Sum(m => m.BalanceMicro), Is.EqualTo(grant - balances.BurnedTotalMicro + balances.MintedTotalMicro));
        });

        var reconciled = await new LedgerReconciler(_ledger, new LedgerQueries(_ledger, new NetworkRepository(_database), new DeviceRepository(_database)))
            .ReconcileAsync(mesh.NetworkId, credits.SharedPoolEnabled, CancellationToken.None);
        Assert.That(reconciled.Balanced, Is.True, $"seed {seed}: " + string.Join("; ", reconciled.Mismatches.Select(m => $"{m.Subject} {m.LedgerMicro} vs {m.RecomputedMicro}: {m.Detail}")));
        Assert.That(reconciled.JobsChecked, Is.EqualTo(sims.Count));
    }

    [Test]
    public async Task Reconcile_detects_a_tampered_ledger()
    {
        var credits = NetworkDefaults.Create(1000 * 1_000_000L).Credits;
        var mesh = await SeedNetworkAsync(credits, devices: 1);
        var sim = new SimJob(await InsertJobAsync(mesh, 2, 0), [""]);
        Assert.That(await CompleteAsync(mesh, credits, new Report(sim, "", 1, mesh.Devices[0], 1500, 0, 0, false)), Is.True);
        var reconciler = new LedgerReconciler(_ledger, new LedgerQueries(_ledger, new NetworkRepository(_database), new DeviceRepository(_database)));
        Assert.That((await reconciler.ReconcileAsync(mesh.NetworkId, true, CancellationToken.None)).Balanced, Is.True);

        await _database.RunAsync(c => c.ExecuteAsync(
            "UPDATE ledger_events SET amount_micro = amount_micro - 1 WHERE network_id = @n AND event_type = @t", new { n = mesh.NetworkId, t = (int)LedgerEventType.CreditsBurned }), CancellationToken.None);
        var tampered = await reconciler.ReconcileAsync(mesh.NetworkId, true, CancellationToken.None);
        Assert.That(tampered.Balanced, Is.False);
        Assert.That(tampered.Mismatches.Select(m => m.Subject), Has.Some.EndsWith(" burn").And.Some.EqualTo("pool"));
    }

    [Test]
    public async Task Running_balances_are_backfilled_by_the_migration_and_checked_by_reconcile()
    {
        var credits = NetworkDefaults.Create(1000 * 1_000_000L).Credits;
        credits.SharedPoolEnabled = false;
        var mesh = await SeedNetworkAsync(credits, devices: 2);
        for (var j = 0; j < 3; j++)
        {
            var sim = new SimJob(await InsertJobAsync(mesh, 2, 0), [""]);
            Assert.That(await CompleteAsync(mesh, credits, new Report(sim, "", 1, mesh.Devices[j % 2], 1500 + j, 2, 4096 * (j + 1), false)), Is.True);
        }

        var reconciler = new LedgerReconciler(_ledger, new LedgerQueries(_ledger, new NetworkRepository(_database), new DeviceRepository(_database)));
        var ct = CancellationToken.None;
        var balances = await new LedgerQueries(_ledger, new NetworkRepository(_database), new DeviceRepository(_database)).GetBalancesAsync(mesh.NetworkId, false, ct);
        var submitter = balances.Members.Single(m => m.UserId == mesh.UserId).BalanceMicro;
        var month = LedgerRepository.MonthStartMs(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        Assert.That(await _ledger.BalanceAsync(mesh.NetworkId, false, mesh.UserId, ct), Is.EqualTo(submitter), "running member balance == sum of its events");
        Assert.That(await _ledger.BalanceAsync(mesh.NetworkId, true, "", ct), Is.Zero, "no pool events, no pool balance");
        Assert.That(await _ledger.RelayBytesInMonthAsync(mesh.NetworkId, month, ct), Is.EqualTo(4096 * 6), "running relay bytes of the month");
        Assert.That((await reconciler.ReconcileAsync(mesh.NetworkId, false, ct)).Balanced, Is.True);

        // The backfill: forget the running rows and migration 21, migrate again, and the rows come back from the events.
        var before = (await _ledger.ListRunningBalancesAsync(mesh.NetworkId, ct)).OrderBy(r => (r.AccountKind, r.UserId)).Select(r => (r.AccountKind, r.UserId, r.BalanceMicro)).ToList();
        await _database.InTransactionAsync(async (c, tx) =>
        {
            await c.ExecuteAsync(new CommandDefinition("DROP TABLE ledger_balances", transaction: tx, cancellationToken: ct));
            await c.ExecuteAsync(new CommandDefinition("DROP TABLE relay_usage", transaction: tx, cancellationToken: ct));
            return await c.ExecuteAsync(new CommandDefinition("DELETE FROM schema_migrations WHERE version = 21", transaction: tx, cancellationToken: ct));
        }, ct);
        Assert.That(await new Migrator(_database, NullLogger<Migrator>.Instance).MigrateAsync(ct), Is.EqualTo(1));
        var after = (await _ledger.ListRunningBalancesAsync(mesh.NetworkId, ct)).OrderBy(r => (r.AccountKind, r.UserId)).Select(r => (r.AccountKind, r.UserId, r.BalanceMicro)).ToList();
        Assert.That(after, Is.EqualTo(before));
        Assert.That(await _ledger.RelayBytesInMonthAsync(mesh.NetworkId, month, ct), Is.EqualTo(4096 * 6));
        Assert.That((await reconciler.ReconcileAsync(mesh.NetworkId, false, ct)).Balanced, Is.True);

        // A running balance that drifted from its events is a mismatch.
        await _database.RunAsync(c => c.ExecuteAsync(new CommandDefinition(
            "UPDATE ledger_balances SET balance_micro = balance_micro + 1 WHERE network_id = @n AND user_id = @u", new { n = mesh.NetworkId, u = mesh.UserId }, cancellationToken: ct)), ct);
        await _database.RunAsync(c => c.ExecuteAsync(new CommandDefinition(
            "UPDATE relay_usage SET relay_bytes = relay_bytes - 1 WHERE network_id = @n", new { n = mesh.NetworkId }, cancellationToken: ct)), ct);
        var drifted = await reconciler.ReconcileAsync(mesh.NetworkId, false, ct);
        Assert.That(drifted.Balanced, Is.False);
        Assert.That(drifted.Mismatches.Select(m => m.Subject), Has.Some.EqualTo("running member:" + mesh.UserId).And.Some.StartsWith("relay usage "));
    }

    /// <summary>
    /// Every settlement of a network updates the same rows (its month in relay_usage, its running balances). On PostgreSQL
    /// those row locks are held until the commit, so a settlement that took them first and then wrote its events held them
    /// across ~6 round trips and the network's settlements ran one at a time (#11: 48 jobs/s at 64 in flight, backends waiting
    /// on the relay_usage row in 64k of 80k samples). The settlement writes them last: when it has to wait for the row, its
    /// job, attempt, execution record and events are already written. SQLite has one writer; there the same two settlements
    /// only check the totals.
    /// </summary>
    private static readonly string[] WrittenBeforeTheSharedRows = ["jobs", "job_attempts", "job_meterings", "ledger_events"];

    [Test]
    public async Task A_settlement_writes_the_networks_shared_running_totals_last()
    {
        var ct = CancellationToken.None;
        var credits = NetworkDefaults.Create(1000 * 1_000_000L).Credits;
        var mesh = await SeedNetworkAsync(credits, devices: 1);
        var first = new SimJob(await InsertJobAsync(mesh, 2, 0), [""]);
        Assert.That(await CompleteAsync(mesh, credits, new Report(first, "", 1, mesh.Devices[0], 1500, 0, 4096, false)), Is.True);
        var second = new SimJob(await InsertJobAsync(mesh, 2, 0), [""]);
        if (store == "postgres")
        {
            // Another transaction holds the network's relay_usage row; the second settlement must queue on it.
            await using var blocker = await _database.OpenAsync(ct);
            await using var hold = await blocker.BeginTransactionAsync(ct);
            await blocker.ExecuteAsync(new CommandDefinition(
                "SELECT relay_bytes FROM relay_usage WHERE network_id = @n FOR UPDATE", new { n = mesh.NetworkId }, hold, cancellationToken: ct));
            var settling = CompleteAsync(mesh, credits, new Report(second, "", 1, mesh.Devices[0], 1500, 0, 4096, false));

            // Observed from a third connection: pg_stat_activity is snapshotted once per transaction.
            await using var observer = await _database.OpenAsync(ct);
            int? waiter = null;
            for (var i = 0; i < 600 && waiter is null && !settling.IsCompleted; i++)
            {
                waiter = (await observer.QueryAsync<int>(new CommandDefinition(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' " +
                    "AND query LIKE 'INSERT INTO relay_usage%'", cancellationToken: ct))).Cast<int?>().FirstOrDefault();
                if (waiter is null)
                {
                    await Task.Delay(50, ct);
                }
            }

            Assert.That(waiter, Is.Not.Null, "the second settlement waits for the relay_usage row the other transaction holds");
            var written = (await observer.QueryAsync<string>(new CommandDefinition(
                "SELECT DISTINCT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE l.pid = @waiter AND l.granted AND l.mode = 'RowExclusiveLock'",
                new { waiter }, cancellationToken: ct))).ToList();
            Assert.That(written, Is.SupersetOf(WrittenBeforeTheSharedRows),
                "the settlement had written everything else before it waited for the shared row");
            Assert.That(written, Does.Not.Contain("ledger_balances"), "relay_usage first, then the balances: one lock order for every settlement");
            await hold.RollbackAsync(ct);
            Assert.That(await settling, Is.True);
        }
        else
        {
            Assert.That(await CompleteAsync(mesh, credits, new Report(second, "", 1, mesh.Devices[0], 1500, 0, 4096, false)), Is.True);
        }

        var month = LedgerRepository.MonthStartMs(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        Assert.That(await _ledger.RelayBytesInMonthAsync(mesh.NetworkId, month, ct), Is.EqualTo(2 * 4096));
        var reconciler = new LedgerReconciler(_ledger, new LedgerQueries(_ledger, new NetworkRepository(_database), new DeviceRepository(_database)));
        Assert.That((await reconciler.ReconcileAsync(mesh.NetworkId, credits.SharedPoolEnabled, ct)).Balanced, Is.True);
    }

    [Test]
    public async Task Many_parallel_completions_lose_and_duplicate_no_ledger_rows()
    {
        // PostgreSQL is the scale-out store where this matters most; the embedded SQLite store must hold too.
        var credits = NetworkDefaults.Create(1_000_000 * 1_000_000L).Credits;
        var mesh = await SeedNetworkAsync(credits, devices: 4);
        var random = new Random(99);
        var sims = new List<SimJob>();
        for (var j = 0; j < 120; j++)
        {
            sims.Add(new SimJob(await InsertJobAsync(mesh, 2, 0), [""]));
        }

        // Every job's result is reported 4 times at once (duplicates and late attempts racing each other).
        var reports = sims.SelectMany(s => Enumerable.Range(1, 4).Select(a => new Report(s, "", a, mesh.Devices[random.Next(mesh.Devices.Count)], random.Next(1, 60_000), 20, 0, false)))
            .OrderBy(_ => random.Next()).ToList();
        using var gate = new SemaphoreSlim(24);
        var results = await Task.WhenAll(reports.Select(async r =>
        {
            await gate.WaitAsync();
            try
            {
                return await CompleteAsync(mesh, credits, r);
            }
            finally
            {
                gate.Release();
            }
        }));

        var events = (await _ledger.ListAsync(mesh.NetworkId, null, 0, 100_000, CancellationToken.None)).ToList();
        var jobTotals = (await _ledger.ListJobTotalsAsync(mesh.NetworkId, CancellationToken.None)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(results.Count(applied => applied), Is.EqualTo(sims.Count), "exactly one settlement per job won");
            Assert.That(events, Has.Count.EqualTo(1 + (4 * sims.Count)), "grant + started/completed/burned/minted per job");
            Assert.That(events.Select(e => e.IdempotencyKey).Distinct().Count(), Is.EqualTo(events.Count));
            foreach (var group in events.Where(e => e.JobId.Length > 0).GroupBy(e => e.JobId))
            {
                Assert.That(group.Select(e => (LedgerEventType)e.EventType), Is.EquivalentTo(new[]
                {
                    LedgerEventType.JobStarted, LedgerEventType.JobCompleted, LedgerEventType.CreditsBurned, LedgerEventType.CreditsMinted,
                }), group.Key);
            }

            Assert.That(-events.Where(e => e.EventType == (int)LedgerEventType.CreditsBurned).Sum(e => e.AmountMicro), Is.EqualTo(jobTotals.Sum(j => j.CostMicro)));
        });

        var reconciled = await new LedgerReconciler(_ledger, new LedgerQueries(_ledger, new NetworkRepository(_database), new DeviceRepository(_database)))
            .ReconcileAsync(mesh.NetworkId, true, CancellationToken.None);
        Assert.That(reconciled.Balanced, Is.True, string.Join("; ", reconciled.Mismatches.Select(m => $"{m.Subject}: {m.Detail}")));
    }

    /// <summary>
    /// Settlement group commit (#11, docs/job-plane.md "Settlement group commit"): 64 completions of one network plus a
    /// duplicate result of one of them, committed as ONE batch: every job settles once, the duplicate is billed nothing,
    /// the network's relay_usage row and running balances are written once with the batch's sums, and reconcile balances.
    /// </summary>
    [Test]
    public async Task Settle_a_batch_of_one_networks_completions_in_one_transaction_billing_a_duplicate_once()
    {
        var ct = CancellationToken.None;
        var credits = NetworkDefaults.Create(1_000_000 * 1_000_000L).Credits;
        credits.SharedPoolEnabled = false;
        credits.RelaySurchargeEnabled = true;
        credits.RelaySurchargeMicroPerMib = 1000;
        var mesh = await SeedNetworkAsync(credits, devices: 3);
        var settler = new JobSettler(_database);
        var sims = new List<SimJob>();
        var batch = new List<SettlementCompletion>();
        for (var j = 0; j < SettlementBatcher.MaxBatch; j++)
        {
            var sim = new SimJob(await InsertJobAsync(mesh, 2, 0), [""]);
            sims.Add(sim);
            batch.Add(await CompletionAsync(credits, new Report(sim, "", 1, mesh.Devices[j % 3], 1000 + (j * 37), 1, 10_000 + j, false)));
        }

        // A second result of job 0 (a late attempt) in the same batch: first result wins.
        batch.Add(await CompletionAsync(credits, new Report(sims[0], "", 2, mesh.Devices[1], 50_000, 10, 999_999, false)));
        var outcomes = await settler.Batcher.CommitAsync(batch);

        Assert.That(outcomes.Select(o => o.Error), Is.All.Null);
        Assert.That(outcomes.Take(SettlementBatcher.MaxBatch).Select(o => o.Settled), Is.All.True, "every job of the batch settled");
        Assert.That(outcomes[^1].Settled, Is.False, "the duplicate result of job 0 in the same batch settles nothing");
        Assert.That((settler.Batcher.Batches, settler.Batcher.Fallbacks), Is.EqualTo((1L, 0L)), "one transaction, no fallback");
        var events = (await _ledger.ListAsync(mesh.NetworkId, null, 0, 100_000, ct)).ToList();
        var jobTotals = (await _ledger.ListJobTotalsAsync(mesh.NetworkId, ct)).ToList();
        var month = LedgerRepository.MonthStartMs(batch[0].NowMs);
        Assert.Multiple(() =>
        {
            Assert.That(events.Count(e => e.JobId == sims[0].Row.JobId && e.EventType == (int)LedgerEventType.CreditsBurned), Is.EqualTo(1), "job 0 billed once");
            Assert.That(events.Where(e => e.JobId == sims[0].Row.JobId).Select(e => e.RelayBytes), Is.All.EqualTo(10_000L), "billed from the first result");
            Assert.That(events.Count(e => e.EventType == (int)LedgerEventType.CreditsBurned), Is.EqualTo(SettlementBatcher.MaxBatch));
            Assert.That(events.Select(e => e.IdempotencyKey).Distinct().Count(), Is.EqualTo(events.Count));
            Assert.That(jobTotals.Where(j => j.JobId != "").Select(j => (JobState)j.State), Is.All.EqualTo(JobState.Completed));
            Assert.That(-events.Where(e => e.EventType == (int)LedgerEventType.CreditsBurned).Sum(e => e.AmountMicro), Is.EqualTo(jobTotals.Sum(j => j.CostMicro)));
        });
        Assert.That(await _ledger.RelayBytesInMonthAsync(mesh.NetworkId, month, ct), Is.EqualTo(Enumerable.Range(0, SettlementBatcher.MaxBatch).Sum(j => 10_000L + j)));
        var balances = await new LedgerQueries(_ledger, new NetworkRepository(_database), new DeviceRepository(_database)).GetBalancesAsync(mesh.NetworkId, false, ct);
        Assert.That(await _ledger.BalanceAsync(mesh.NetworkId, false, mesh.UserId, ct), Is.EqualTo(balances.Members.Single(m => m.UserId == mesh.UserId).BalanceMicro));
        var reconciled = await AssertReconciledAsync(mesh, false);
        Assert.That(reconciled.JobsChecked, Is.EqualTo(SettlementBatcher.MaxBatch));
    }

    /// <summary>
    /// A batch whose members take every branch of a settlement's guards, committed as one transaction (on PostgreSQL by the
    /// one set-based statement, <see cref="SettlementArrays"/>; #11): a resumed chat (an earlier segment's execution record
    /// and the final one, in one member), a winning attempt a hedge had ended DISCONNECT, a job another path already ended
    /// (settles nothing, writes nothing), a job whose execution record already exists (ended, but billed nothing twice) and
    /// a plain one. Every row is what settling them one by one writes: job states, attempt causes, records, events, totals.
    /// </summary>
    [Test]
    public async Task Settle_a_batch_whose_members_take_every_guard_writes_what_one_by_one_writes()
    {
        var ct = CancellationToken.None;
        var credits = NetworkDefaults.Create(1_000_000 * 1_000_000L).Credits;
        credits.SharedPoolEnabled = false;
        var mesh = await SeedNetworkAsync(credits, devices: 2);
        var sims = new List<SimJob>();
        for (var j = 0; j < 5; j++)
        {
            var sim = new SimJob(await InsertJobAsync(mesh, 2, 0), [""]);
            sims.Add(sim);
            foreach (var attempt in new[] { 1, 2 })
            {
                await _database.InTransactionAsync(async (c, tx) => await c.ExecuteAsync(new CommandDefinition(
                    "INSERT INTO job_attempts (job_id, attempt, device_id, cause, start_time_ms, end_time_ms, detail, chunk_id) VALUES (@j, @a, @d, 0, @now, NULL, '', '')",
                    new { j = sim.Row.JobId, a = attempt, d = mesh.Devices[attempt - 1].DeviceId, now = sim.Row.CreateTimeMs }, tx, cancellationToken: ct)), ct);
            }
        }

        var batch = new List<SettlementCompletion>();
        foreach (var (sim, j) in sims.Select((s, j) => (s, j)))
        {
            batch.Add(await CompletionAsync(credits, new Report(sim, "", 1, mesh.Devices[0], 3000 + j, 1, 1000 + j, false)));
        }

        // 0: a resumed chat: attempt 1's interrupted segment is settled with the final attempt 2, in the same member.
        var chat = batch[0];
        var segmentRow = (await _jobs.GetJobByIdAsync(sims[0].Row.JobId, ct))!;
        var segment = LedgerWriter.Meter(segmentRow, LedgerKeys.StreamSegment(1), 1, mesh.Devices[1], (Tier)segmentRow.Tier, 2500, 0, 0, credits, Rules,
            new LedgerWriter.MeteringContext(new CapabilityReport(), false, 0, 0), chat.NowMs);
        chat.Final.RuntimeMs += segment.RuntimeMs;
        chat.Final.BilledRuntimeMs += LedgerPricing.Price(segment).BilledMs;
        chat.Final.CostMicro += LedgerPricing.Price(segment).BurnMicro;
        batch[0] = chat with { Attempt = 2, EarlierSegments = [segment] };

        // 1: its device dropped and a hedge ended attempt 1 DISCONNECT; that attempt's result still arrives first and wins.
        Assert.That(await _jobs.EndAttemptAsync(sims[1].Row.JobId, 1, (int)AttemptCause.Disconnect, "device dropped", batch[1].NowMs, ct), Is.True);

        // 2: another path ended the job (a cancel): nothing of this member is written.
        await _database.RunAsync(c => c.ExecuteAsync(new CommandDefinition(
            "UPDATE jobs SET state = @s WHERE job_id = @j", new { s = (int)JobState.Cancelled, j = sims[2].Row.JobId }, cancellationToken: ct)), ct);

        // 3: its execution record already exists (written by an earlier, failed-over settlement): the job ends, nothing is billed twice.
        var prior = batch[3].Metering;
        await _database.InTransactionAsync((c, tx) => LedgerRepository.InsertMeteringAsync(c, tx, prior, ct), ct);

        var outcomes = await new SettlementBatcher(_database, 1).CommitAsync(batch);

        Assert.That(outcomes.Select(o => (o.Settled, o.Error)), Is.EqualTo(new[] { (true, (Exception?)null), (true, null), (false, null), (true, null), (true, null) }));
        var events = (await _ledger.ListAsync(mesh.NetworkId, null, 0, 100_000, ct)).Where(e => e.JobId.Length > 0).ToList();
        var meterings = (await _ledger.ListMeteringsAsync(mesh.NetworkId, ct)).ToList();
        var states = (await _ledger.ListJobTotalsAsync(mesh.NetworkId, ct)).ToDictionary(j => j.JobId, j => (JobState)j.State);
        var attempts = new List<JobAttemptRow>();
        foreach (var sim in sims)
        {
            attempts.AddRange(await _jobs.ListAttemptsAsync(sim.Row.JobId, ct));
        }

        string Cause(int job, int attempt) => ((AttemptCause)attempts.Single(a => a.JobId == sims[job].Row.JobId && a.Attempt == attempt).Cause).ToString();
        Assert.Multiple(() =>
        {
            Assert.That(sims.Select(s => states[s.Row.JobId]), Is.EqualTo(new[] { JobState.Completed, JobState.Completed, JobState.Cancelled, JobState.Completed, JobState.Completed }));
            Assert.That(string.Join(" ", Cause(0, 1), Cause(0, 2), Cause(1, 1), Cause(1, 2), Cause(2, 1), Cause(3, 1), Cause(4, 1)),
                Is.EqualTo("Unspecified Succeeded Succeeded Unspecified Unspecified Succeeded Succeeded"),
                "the winning attempt ends SUCCEEDED (open, or ended DISCONNECT by a hedge); the cancelled job's is untouched");
            Assert.That(meterings.Select(m => (m.JobId, m.ChunkId)), Is.EquivalentTo(new[]
            {
                (sims[0].Row.JobId, LedgerKeys.StreamSegment(1)), (sims[0].Row.JobId, ""), (sims[1].Row.JobId, ""), (sims[3].Row.JobId, ""), (sims[4].Row.JobId, ""),
            }));
            Assert.That(events.GroupBy(e => e.JobId).ToDictionary(g => g.Key, g => g.Count()), Is.EquivalentTo(new Dictionary<string, int>
            {
                [sims[0].Row.JobId] = 8, [sims[1].Row.JobId] = 4, [sims[4].Row.JobId] = 4,
            }), "4 events per execution record written; none for the cancelled job or the one whose record existed");
            Assert.That(events.Where(e => e.JobId == sims[0].Row.JobId).Select(e => ((LedgerEventType)e.EventType, e.ChunkId)), Is.EqualTo(new[]
            {
                (LedgerEventType.JobStarted, LedgerKeys.StreamSegment(1)), (LedgerEventType.JobCompleted, LedgerKeys.StreamSegment(1)),
                (LedgerEventType.CreditsBurned, LedgerKeys.StreamSegment(1)), (LedgerEventType.CreditsMinted, LedgerKeys.StreamSegment(1)),
                (LedgerEventType.JobStarted, ""), (LedgerEventType.JobCompleted, ""), (LedgerEventType.CreditsBurned, ""), (LedgerEventType.CreditsMinted, ""),
            }), "the segment's events, then the final record's, in sequence order");
        });
        var month = LedgerRepository.MonthStartMs(batch[0].NowMs);
        Assert.That(await _ledger.RelayBytesInMonthAsync(mesh.NetworkId, month, ct), Is.EqualTo(1000L + 1001 + 1004), "relay bytes of the records written, once each");
        var balances = await new LedgerQueries(_ledger, new NetworkRepository(_database), new DeviceRepository(_database)).GetBalancesAsync(mesh.NetworkId, false, ct);
        Assert.That(await _ledger.BalanceAsync(mesh.NetworkId, false, mesh.UserId, ct), Is.EqualTo(balances.Members.Single(m => m.UserId == mesh.UserId).BalanceMicro));
        Assert.That(await _ledger.BalanceAsync(mesh.NetworkId, false, mesh.Devices[0].OwnerUserId, ct), Is.EqualTo(balances.Members.Single(m => m.UserId == mesh.Devices[0].OwnerUserId).BalanceMicro));
    }

    /// <summary>
    /// A batch member whose writes fail (here: an execution record naming a network that does not exist, a foreign-key error
    /// in the middle of the batch) rolls the batch back; every member is then settled alone, so the others settle and only
    /// the bad member's caller sees the error, its job left as it was.
    /// </summary>
    [Test]
    public async Task Settle_a_batch_with_a_failing_member_falls_back_one_by_one_without_affecting_the_others()
    {
        var ct = CancellationToken.None;
        var credits = NetworkDefaults.Create(1_000_000 * 1_000_000L).Credits;
        var mesh = await SeedNetworkAsync(credits, devices: 2);
        var settler = new JobSettler(_database);
        var sims = new List<SimJob>();
        var batch = new List<SettlementCompletion>();
        for (var j = 0; j < 8; j++)
        {
            var sim = new SimJob(await InsertJobAsync(mesh, 2, 0), [""]);
            sims.Add(sim);
            batch.Add(await CompletionAsync(credits, new Report(sim, "", 1, mesh.Devices[j % 2], 2000 + j, 1, 4096, false)));
        }

        batch[3].Metering.NetworkId = "net_missing"; // job_meterings.network_id references networks
        var outcomes = await settler.Batcher.CommitAsync(batch);

        Assert.That(settler.Batcher.Fallbacks, Is.EqualTo(1));
        Assert.That(outcomes[3].Error, Is.Not.Null, "the bad member's caller gets its own error");
        Assert.That(outcomes.Where((_, i) => i != 3).Select(o => (o.Settled, o.Error)), Is.All.EqualTo((true, (Exception?)null)), "the others settled");
        var states = (await _ledger.ListJobTotalsAsync(mesh.NetworkId, ct)).ToDictionary(j => j.JobId, j => (JobState)j.State);
        Assert.That(states[sims[3].Row.JobId], Is.EqualTo(JobState.Running), "the bad member's job is left as it was (its writes rolled back)");
        Assert.That(sims.Where((_, i) => i != 3).Select(s => states[s.Row.JobId]), Is.All.EqualTo(JobState.Completed));
        var month = LedgerRepository.MonthStartMs(batch[0].NowMs);
        Assert.That(await _ledger.RelayBytesInMonthAsync(mesh.NetworkId, month, ct), Is.EqualTo(7 * 4096), "the rolled-back batch's totals are not counted twice");
        await AssertReconciledAsync(mesh, credits.SharedPoolEnabled);

        // The bad member, corrected, still settles: nothing of it was written.
        batch[3].Metering.NetworkId = mesh.NetworkId;
        Assert.That(await settler.CompleteAsync(batch[3].Final, batch[3].Attempt, batch[3].Metering, batch[3].NowMs, ct), Is.True);
    }

    /// <summary>
    /// The queue: a lone settlement commits on its caller's own call as a batch of one (it does not wait to collect others);
    /// settlements that arrive while that commit runs (held here by a lock another transaction keeps) queue up and are
    /// committed together as the next batch, each caller getting its own outcome.
    /// </summary>
    [Test]
    public async Task Settle_commits_a_lone_settlement_at_once_and_batches_those_that_queued_behind_it()
    {
        var ct = CancellationToken.None;
        var credits = NetworkDefaults.Create(1_000_000 * 1_000_000L).Credits;
        var mesh = await SeedNetworkAsync(credits, devices: 2);
        var batcher = new SettlementBatcher(_database, 1); // one committer, as on SQLite (PostgreSQL runs several: then the queue forms behind all of them)
        var sims = new List<SimJob>();
        for (var j = 0; j < 12; j++)
        {
            sims.Add(new SimJob(await InsertJobAsync(mesh, 2, 0), [""]));
        }

        // Lone: a batch of one, committed before the call returns.
        var lone = await CompletionAsync(credits, new Report(sims[0], "", 1, mesh.Devices[0], 1500, 0, 100, false));
        Assert.That(await batcher.SettleAsync(lone, ct), Is.True);
        Assert.That((batcher.Batches, batcher.Settlements, batcher.Committing), Is.EqualTo((1L, 1L, false)));

        var first = await CompletionAsync(credits, new Report(sims[1], "", 1, mesh.Devices[0], 1500, 0, 100, false));
        var queued = new List<SettlementCompletion>();
        foreach (var sim in sims.Skip(2))
        {
            queued.Add(await CompletionAsync(credits, new Report(sim, "", 1, mesh.Devices[1], 1500, 0, 100, false)));
        }

        queued.Add(await CompletionAsync(credits, new Report(sims[5], "", 2, mesh.Devices[0], 9000, 0, 100, false))); // a duplicate in the queue
        await using (var blocker = await _database.OpenAsync(ct))
        {
            await using var hold = await blocker.BeginTransactionAsync(ct); // SQLite: the write lock; PostgreSQL: the first job's row below
            if (store == "postgres")
            {
                await blocker.ExecuteAsync(new CommandDefinition("SELECT job_id FROM jobs WHERE job_id = @j FOR UPDATE", new { j = first.Final.JobId }, hold, cancellationToken: ct));
            }

            var leader = Task.Run(() => batcher.SettleAsync(first, ct), ct);
            for (var i = 0; i < 3000 && !batcher.Committing; i++)
            {
                await Task.Delay(10, ct);
            }

            Assert.That(batcher.Committing, Is.True, "the first settlement is committing (and waits for the lock)");
            var followers = queued.Select(q => batcher.SettleAsync(q, ct)).ToList();
            Assert.That(leader.IsCompleted, Is.False);
            await hold.RollbackAsync(ct);
            Assert.That(await leader, Is.True);
            var settled = await Task.WhenAll(followers);
            Assert.That(settled[..^1], Is.All.True);
            Assert.That(settled[^1], Is.False, "the duplicate queued with its job settles nothing");
        }

        Assert.That(batcher.Batches, Is.EqualTo(3), "lone, the first (alone: it did not wait for the others), then the queue as one batch");
        Assert.That(batcher.LargestBatch, Is.EqualTo(queued.Count));
        Assert.That(batcher.Committing, Is.False);
        var reconciled = await AssertReconciledAsync(mesh, credits.SharedPoolEnabled);
        Assert.That(reconciled.JobsChecked, Is.EqualTo(sims.Count));
    }

    /// <summary>
    /// The metering lookup counts a device's minting settlements of the last hour only up to the rate limit (the mint rule only
    /// asks whether it is reached), so a busy device's settlement does not read every row of its hour (#11).
    /// </summary>
    [Test]
    public async Task Metering_lookup_counts_a_devices_minting_settlements_up_to_the_rate_limit()
    {
        var ct = CancellationToken.None;
        var credits = NetworkDefaults.Create(1_000_000 * 1_000_000L).Credits;
        var mesh = await SeedNetworkAsync(credits, devices: 1);
        for (var j = 0; j < 5; j++)
        {
            var sim = new SimJob(await InsertJobAsync(mesh, 2, 0), [""]);
            Assert.That(await CompleteAsync(mesh, credits, new Report(sim, "", 1, mesh.Devices[0], 1500, 1, 0, false)), Is.True);
        }

        var since = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 3_600_000;
        var device = mesh.Devices[0].DeviceId;
        Assert.That((await _ledger.MeteringLookupAsync(mesh.NetworkId, "", device, since, 100, (int)LedgerEventType.CreditsBurned, false, ct)).MintingSettlements, Is.EqualTo(5));
        Assert.That((await _ledger.MeteringLookupAsync(mesh.NetworkId, "", device, since, 3, (int)LedgerEventType.CreditsBurned, false, ct)).MintingSettlements, Is.EqualTo(3));
        Assert.That(MintPolicy.Decide(new CapabilityReport(), 1500, 1, false, 3, new LedgerOptions { MaxMintingSettlementsPerDevicePerHour = 3 }).WithheldReason, Does.Contain("rate limit"),
            "a count capped at the limit still reaches it");
    }

    /// <summary>Reconciles the network's ledger and asserts it balances (the mismatches in the message otherwise).</summary>
    private async Task<ReconcileLedgerResponse> AssertReconciledAsync(Mesh mesh, bool pool)
    {
        var reconciled = await new LedgerReconciler(_ledger, new LedgerQueries(_ledger, new NetworkRepository(_database), new DeviceRepository(_database)))
            .ReconcileAsync(mesh.NetworkId, pool, CancellationToken.None);
        Assert.That(reconciled.Balanced, Is.True, string.Join("; ", reconciled.Mismatches.Select(m => $"{m.Subject}: {m.Detail}")));
        return reconciled;
    }

    private sealed record Mesh(string NetworkId, string UserId, List<DeviceRow> Devices);

    private sealed record Report(SimJob Job, string Chunk, int Attempt, DeviceRow Device, long RuntimeMs, long Heartbeats, long RelayBytes, bool Fail);

    /// <summary>The reference model of one job: what must have been billed, computed independently of the ledger code.</summary>
    private sealed class SimJob(JobRow row, IReadOnlyList<string> chunks)
    {
        public JobRow Row { get; } = row;
        public IReadOnlyList<string> Chunks { get; } = chunks;
        public HashSet<string> Settled { get; } = new(StringComparer.Ordinal);
        public bool Failed { get; set; }
        public bool Terminal => Failed || Settled.Count == Chunks.Count;
        public long ExpectedBurn { get; set; }
        public long ExpectedMint { get; set; }
        public long ExpectedBilledMs { get; set; }
    }

    /// <summary>Applies a report to the model; true when it must change the ledger (first result of a live chunk, first failure of a live job).</summary>
    private static bool Model(Report r, CreditSettings credits)
    {
        var job = r.Job;
        if (job.Terminal)
        {
            return false;
        }

        if (r.Fail)
        {
            job.Failed = true;
            return true;
        }

        if (!job.Settled.Add(r.Chunk))
        {
            return false;
        }

        var g = Math.Max(1, credits.BillingGranularityMs);
        var runtime = Math.Max(1, r.RuntimeMs);
        var billed = (runtime + g - 1) / g * g;
        var rate = credits.TierRates.Single(t => t.Tier == (Tier)job.Row.Tier);
        var scaledBurn = new BigInteger(billed) * rate.BurnMicroPerMin * credits.MultiplierBps;
        var burn = (long)BigInteger.Divide(scaledBurn + 600_000_000 - 1, 600_000_000);
        if (credits.RelaySurchargeEnabled && r.RelayBytes > 0)
        {
            burn += (long)BigInteger.Divide((new BigInteger(r.RelayBytes) * credits.RelaySurchargeMicroPerMib) + 1_048_575, 1_048_576);
        }

        if (job.Row.MaxCostCredits > 0)
        {
            burn = Math.Min(burn, Math.Max(0, job.Row.MaxCostCredits - job.ExpectedBurn));
        }

        var heartbeatOk = r.Heartbeats >= Math.Max(0, (runtime / 5000) - 1);
        job.ExpectedBurn += burn;
        job.ExpectedBilledMs += billed;
        job.ExpectedMint += heartbeatOk ? (long)BigInteger.Divide(new BigInteger(billed) * rate.EarnMicroPerMin * credits.MultiplierBps, 600_000_000) : 0;
        return true;
    }

    /// <summary>A result report settled through the product's own settlement transactions (<see cref="JobSettler"/>), as the runner does.</summary>
    private async Task<bool> CompleteAsync(Mesh mesh, CreditSettings credits, Report r)
    {
        var ct = CancellationToken.None;
        var row = (await _jobs.GetJobByIdAsync(r.Job.Row.JobId, ct))!;
        if (JobViews.IsTerminal((JobState)row.State))
        {
            return false;
        }

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var prior = row.MaxCostCredits > 0 ? await _ledger.BurnedForJobAsync(row.NetworkId, row.JobId, (int)LedgerEventType.CreditsBurned, ct) : 0;
        var metering = LedgerWriter.Meter(row, r.Chunk, r.Attempt, r.Device, (Tier)row.Tier, r.RuntimeMs, (int)r.Heartbeats, r.RelayBytes, credits, Rules,
            new LedgerWriter.MeteringContext(new CapabilityReport(), false, 0, prior), now);
        var priced = LedgerPricing.Price(metering);
        if (r.Job.Chunks.Count == 1)
        {
            var completion = Completion(row, r, metering, now);
            return await _settler.CompleteAsync(completion.Final, completion.Attempt, completion.Metering, now, ct);
        }

        var chunk = new JobChunkRow
        {
            JobId = row.JobId, ChunkId = r.Chunk, ChunkIndex = r.Job.Chunks.ToList().IndexOf(r.Chunk), Attempt = r.Attempt, DeviceId = r.Device.DeviceId,
            Output = [], RuntimeMs = metering.RuntimeMs, CostMicro = priced.BurnMicro, EndTimeMs = now,
        };
        if (!await _settler.CompleteChunkAsync(chunk, metering, now, ct))
        {
            return false;
        }

        if ((await _jobs.ListChunkResultsAsync(row.JobId, ct)).Count() == r.Job.Chunks.Count)
        {
            var final = (await _jobs.GetJobByIdAsync(row.JobId, ct))!;
            final.State = (int)JobState.Completed;
            final.EndTimeMs = now;
            Assert.That(await _settler.CompleteChunkedAsync(final, ct), Is.True);
        }

        return true;
    }

    /// <summary>The completion the runner hands the settler for an unchunked job's result (the row as SingleJobStrategy fills it).</summary>
    private static SettlementCompletion Completion(JobRow row, Report r, JobMeteringRow metering, long now)
    {
        var priced = LedgerPricing.Price(metering);
        row.State = (int)JobState.Completed;
        row.DeviceId = r.Device.DeviceId;
        row.EndTimeMs = now;
        row.RuntimeMs = metering.RuntimeMs;
        row.BilledRuntimeMs = priced.BilledMs;
        row.CostMicro = priced.BurnMicro;
        return new SettlementCompletion(row, r.Attempt, metering, [], now);
    }

    /// <summary>A completion of an unchunked job built from a fresh read of its row, without settling it (for a batch of the test's choosing).</summary>
    private async Task<SettlementCompletion> CompletionAsync(CreditSettings credits, Report r)
    {
        var row = (await _jobs.GetJobByIdAsync(r.Job.Row.JobId, CancellationToken.None))!;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var metering = LedgerWriter.Meter(row, "", r.Attempt, r.Device, (Tier)row.Tier, r.RuntimeMs, (int)r.Heartbeats, r.RelayBytes, credits, Rules,
            new LedgerWriter.MeteringContext(new CapabilityReport(), false, 0, 0), now);
        return Completion(row, r, metering, now);
    }

    /// <summary>A terminal failure, through the product's settlement transaction.</summary>
    private async Task<bool> FailAsync(SimJob job)
    {
        var ct = CancellationToken.None;
        var row = (await _jobs.GetJobByIdAsync(job.Row.JobId, ct))!;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        row.State = (int)JobState.Failed;
        row.ErrorMessage = "workload failed";
        row.EndTimeMs = now;
        return await _settler.FinishUnsuccessfullyAsync(row, [], now, ct);
    }

    private async Task<Mesh> SeedNetworkAsync(CreditSettings credits, int devices)
    {
        var ct = CancellationToken.None;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var userId = Ids.New("usr");
        var owner = Ids.New("usr");
        var networkId = Ids.New("net");
        var settings = NetworkDefaults.Create(credits.StartingGrantMicro);
        settings.Credits = credits;
        var rows = new List<DeviceRow>();
        await _database.InTransactionAsync(async (c, tx) =>
        {
            foreach (var u in new[] { userId, owner })
            {
                await c.ExecuteAsync(new CommandDefinition(
                    "INSERT INTO users (user_id, email, display_name, username, create_time_ms) VALUES (@u, @e, @u, @u, @now)",
                    new { u, e = u + "@example.com", now }, tx, cancellationToken: ct));
            }

            await NetworkRepository.InsertNetworkAsync(c, tx, new NetworkRow
            {
                NetworkId = networkId, Name = "ledger", Visibility = 1, BillingMode = 1, CreatedByUserId = userId, CreateTimeMs = now, SettingsJson = NetworkDefaults.ToJson(settings),
            }, ct);
            foreach (var u in new[] { userId, owner })
            {
                await NetworkRepository.InsertMemberAsync(c, tx, new MemberRow { NetworkId = networkId, UserId = u, Role = (int)Role.Member, State = (int)MemberState.Active, JoinTimeMs = now }, ct);
            }

            await LedgerRepository.AppendAsync(c, tx, new LedgerEventRow
            {
                EventId = Ids.New("lev"), NetworkId = networkId, EventType = (int)LedgerEventType.CreditsGranted, UserId = userId,
                AccountKind = (int)(credits.SharedPoolEnabled ? AccountKind.Pool : AccountKind.Member), AmountMicro = credits.StartingGrantMicro,
                IdempotencyKey = LedgerKeys.StartingGrant(networkId), CreateTimeMs = now,
            }, ct);
            for (var d = 0; d < devices; d++)
            {
                var device = new DeviceRow
                {
                    DeviceId = Ids.New("dev"), NetworkId = networkId, OwnerUserId = d % 2 == 0 ? owner : userId, Name = "device-" + d, InstallationId = Guid.NewGuid().ToString("N"),
                    SigningPublicKey = new byte[32], EncryptionPublicKey = new byte[32], Capabilities = [], CertificateSerial = Guid.NewGuid().ToString("N"), CreateTimeMs = now,
                    ContributionEnabled = true, TrustLevel = 1,
                };
                await DeviceRepository.InsertDeviceAsync(c, tx, device, ct);
                rows.Add(device);
            }

            return 0;
        }, ct);
        return new Mesh(networkId, userId, rows);
    }

    private async Task<JobRow> InsertJobAsync(Mesh mesh, int tier, long maxCostMicro)
    {
        var row = new JobRow
        {
            JobId = Ids.New("job"), NetworkId = mesh.NetworkId, SubmittedByUserId = mesh.UserId, WorkloadId = (int)WorkloadClass.DiagnosticEcho,
            State = (int)JobState.Running, RoutingMode = (int)RoutingMode.Auto, Envelope = [], Tier = tier, CreateTimeMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            MaxCostCredits = maxCostMicro, TimeoutMs = 60_000,
        };
        await _jobs.InsertJobAsync(row, CancellationToken.None);
        return row;
    }
}

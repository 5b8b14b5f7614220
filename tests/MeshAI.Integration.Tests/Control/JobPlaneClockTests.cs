using Google.Protobuf;
using MeshAI.Agent.Jobs;
using MeshAI.Common.Seams;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Common.Crypto;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>
/// The job plane's timers on a fake clock (retry backoff, attempt timeout, max_cost_credits), through the real server
/// composition on SQLite: time moves only when the test says, so nothing here waits for real seconds or flakes. Also the
/// regression test for chunk tickets after a key rotation.
/// </summary>
[Category("Integration")]
[NonParallelizable]
public sealed class JobPlaneClockTests
{
    private static readonly string[] ThreeChunks = ["c0000", "c0001", "c0002"];
    private static readonly string[] TwoTimeouts = ["timeout", "timeout"];
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private ControlTestServer _server = null!;
    private string _token = "";

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _server = await ControlTestServer.StartAsync("sqlite", _clock);
        _token = await _server.SignInAsync("clock@example.com");
    }

    [OneTimeTearDown]
    public async Task StopServer() => await _server.DisposeAsync();

    private JobService.JobServiceClient Jobs => new(_server.Channel(_token));

    [Test]
    public async Task A_declined_attempt_is_retried_on_the_next_device_only_after_the_backoff()
    {
        var (network, devices) = await NetworkWithDevicesAsync(2);
        var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = EchoEnvelope(network) })).Job;
        var first = await OfferAsync(job.JobId, 1);
        await Sink.OnDeclinedAsync(Identity(devices, first.DeviceId), new JobDecline { JobId = job.JobId, Attempt = 1, Reason = DeclineReason.Busy }, CancellationToken.None);

        Advance(devices, 249);
        await Settle();
        Assert.That(OffersFor(job.JobId), Has.Count.EqualTo(1), "no retry before the 250 ms backoff");

        _clock.Advance(TimeSpan.FromMilliseconds(1));
        var retried = await WaitForAsync(network, job.JobId, j => j.Attempts.Count == 2);
        Assert.That(retried.Attempts.Select(a => a.Cause), Is.EqualTo(new[] { AttemptCause.NodeDecline, AttemptCause.Unspecified }));
        Assert.That(OffersFor(job.JobId).Select(o => o.DeviceId), Is.EqualTo(new[] { first.DeviceId, devices.Keys.Single(d => d != first.DeviceId) }));
    }

    [Test]
    public async Task Attempts_time_out_on_the_fake_clock_and_the_job_fails_when_no_device_is_left_without_burning()
    {
        var (network, devices) = await NetworkWithDevicesAsync(2);
        var envelope = EchoEnvelope(network);
        envelope.TimeoutMs = 30_000;
        var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
        await AcceptAsync(devices, job.JobId, 1);

        Advance(devices, 29_999);
        await Settle();
        Assert.That((await GetAsync(network, job.JobId)).Attempts.Single().EndTime, Is.Null, "still inside the timeout");

        Advance(devices, 1);
        await WaitForAsync(network, job.JobId, j => j.Attempts.Count == 1 && j.Attempts[0].Cause == AttemptCause.Timeout);
        await AdvanceUntilAsync(devices, 250, network, job.JobId, j => j.Attempts.Count == 2);
        await AcceptAsync(devices, job.JobId, 2);
        Advance(devices, 30_000);
        await WaitForAsync(network, job.JobId, j => j.Attempts.Count == 2 && j.Attempts[1].Cause == AttemptCause.Timeout);
        var failed = await AdvanceUntilAsync(devices, 750, network, job.JobId, j => j.State == JobState.Failed);

        Assert.That(failed.ErrorMessage, Does.StartWith("no eligible device"), "both devices were tried");
        Assert.That(_server.Dispatcher.Cancels.Where(c => c.Cancel.JobId == job.JobId).Select(c => c.Cancel.Reason), Is.EqualTo(TwoTimeouts));
        var events = (await new MeshAI.Contracts.Ledger.V1.LedgerService.LedgerServiceClient(_server.Channel(_token))
            .ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = network, JobId = job.JobId })).Events;
        Assert.That(events.Select(e => e.EventType), Is.EqualTo(new[] { LedgerEventType.JobFailed }));
    }

    [Test]
    public async Task An_accepted_attempt_is_stopped_at_max_cost_credits_and_billed_exactly_the_cap()
    {
        var (network, devices, job) = await CappedJobOneSecondInAsync();
        Assert.That((await GetAsync(network, job.JobId)).State, Is.EqualTo(JobState.Running), "under the cap");

        Advance(devices, 1_000);
        var capped = await WaitForAsync(network, job.JobId, j => j.State == JobState.Cancelled);
        Assert.Multiple(() =>
        {
            Assert.That(capped.Attempts.Single().Cause, Is.EqualTo(AttemptCause.CostCap));
            Assert.That(capped.CostMicro, Is.EqualTo(150_000), "billed exactly the cap");
            Assert.That(_server.Dispatcher.Cancels.Single(c => c.Cancel.JobId == job.JobId).Cancel.Reason, Is.EqualTo("max_cost_micro reached"));
        });
    }

    [Test]
    public async Task A_running_job_resumed_after_a_restart_is_still_stopped_at_its_cost_cap_and_billed_exactly_the_cap()
    {
        var (network, devices, job) = await CappedJobOneSecondInAsync();

        // The embedded server restarts 1 s into the attempt; the resumed execution must arm the cap for the 0.5 s left.
        _server = await _server.RestartAsync(_clock);
        Refresh(devices);
        await WaitForAsync(network, job.JobId, j => j.State == JobState.Running);
        await Settle();
        _clock.Advance(TimeSpan.FromMilliseconds(1_000));
        var capped = await WaitForAsync(network, job.JobId, j => j.State == JobState.Cancelled);
        Assert.Multiple(() =>
        {
            Assert.That(capped.Attempts.Single().Cause, Is.EqualTo(AttemptCause.CostCap));
            Assert.That(capped.CostMicro, Is.EqualTo(150_000), "billed exactly the cap, once, across the restart");
            Assert.That(_server.Dispatcher.Cancels.Single(c => c.Cancel.JobId == job.JobId).Cancel.Reason, Is.EqualTo("max_cost_micro reached"));
        });
    }

    [Test]
    public async Task An_accepted_job_is_written_running_only_after_the_running_write_delay_and_its_end_keeps_the_accept_time_as_start()
    {
        var (network, devices) = await NetworkWithDevicesAsync(1);
        var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = EchoEnvelope(network) })).Job;
        var acceptedAt = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        await AcceptAsync(devices, job.JobId, 1);
        await Settle();
        var soft = await GetAsync(network, job.JobId);
        Assert.Multiple(() =>
        {
            Assert.That(soft.State, Is.EqualTo(JobState.Placed), "soft RUNNING: no store write at the accept (#11)");
            Assert.That(soft.StartTime, Is.Null);
        });

        Advance(devices, 250); // RunningWriteDelayMs: still running, so RUNNING is written with the accept time
        var running = await WaitForAsync(network, job.JobId, j => j.State == JobState.Running);
        Assert.That(running.StartTime.ToDateTimeOffset().ToUnixTimeMilliseconds(), Is.EqualTo(acceptedAt));

        await Sink.OnResultAsync(Identity(devices, devices.Keys.Single()), EchoResult(job.JobId, 1), 100, CancellationToken.None);
        var done = await WaitForAsync(network, job.JobId, j => j.State == JobState.Completed);
        Assert.That(done.StartTime.ToDateTimeOffset().ToUnixTimeMilliseconds(), Is.EqualTo(acceptedAt));
    }

    [Test]
    public async Task A_short_job_goes_from_placed_to_completed_with_its_accept_time_as_start_and_is_billed_once()
    {
        var (network, devices) = await NetworkWithDevicesAsync(1);
        var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = EchoEnvelope(network) })).Job;
        Advance(devices, 5);
        var acceptedAt = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        await AcceptAsync(devices, job.JobId, 1);
        Advance(devices, 100); // ends within RunningWriteDelayMs: RUNNING is never written, the settlement writes the start
        await Sink.OnResultAsync(Identity(devices, devices.Keys.Single()), EchoResult(job.JobId, 1), 100, CancellationToken.None);
        var done = await WaitForAsync(network, job.JobId, j => j.State == JobState.Completed);
        Advance(devices, 1_000); // the disposed RUNNING timer must not write anything after the end
        await Settle();
        var after = await GetAsync(network, job.JobId);
        var events = await LedgerEventsAsync(network, job.JobId);
        Assert.Multiple(() =>
        {
            Assert.That(done.StartTime.ToDateTimeOffset().ToUnixTimeMilliseconds(), Is.EqualTo(acceptedAt));
            Assert.That(after.State, Is.EqualTo(JobState.Completed));
            Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
        });
    }

    [Test]
    public async Task A_submitted_job_is_inserted_placed_with_its_first_attempt_and_its_row_is_updated_only_by_the_settlement()
    {
        // Place at submit (#11): the job row is born PLACED together with its first attempt (one transaction); the
        // placement no longer UPDATEs it. Triggers on the real store count every write of the job row.
        var database = _server.Services.GetRequiredService<MeshAI.Control.Storage.Database>();
        await ExecuteAsync(database,
            "CREATE TABLE IF NOT EXISTS test_job_writes (job_id TEXT NOT NULL, kind TEXT NOT NULL, state INTEGER NOT NULL);" +
            "CREATE TRIGGER IF NOT EXISTS test_job_inserted AFTER INSERT ON jobs BEGIN INSERT INTO test_job_writes VALUES (NEW.job_id, 'insert', NEW.state); END;" +
            "CREATE TRIGGER IF NOT EXISTS test_job_updated AFTER UPDATE ON jobs BEGIN INSERT INTO test_job_writes VALUES (NEW.job_id, 'update', NEW.state); END;");
        try
        {
            var (network, devices) = await NetworkWithDevicesAsync(1);
            var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = EchoEnvelope(network) })).Job;
            var offer = await OfferAsync(job.JobId, 1);
            var placed = await GetAsync(network, job.JobId);
            Assert.Multiple(() =>
            {
                Assert.That(placed.State, Is.EqualTo(JobState.Placed));
                Assert.That(placed.DeviceId, Is.EqualTo(offer.DeviceId));
                Assert.That(placed.Attempts.Select(a => (a.Attempt, a.DeviceId, a.Cause, a.EndTime)), Is.EqualTo(new[] { (1, offer.DeviceId, AttemptCause.Unspecified, (Google.Protobuf.WellKnownTypes.Timestamp?)null) }));
            });

            await AcceptAsync(devices, job.JobId, 1);
            await Sink.OnResultAsync(Identity(devices, offer.DeviceId), EchoResult(job.JobId, 1), 100, CancellationToken.None);
            await WaitForAsync(network, job.JobId, j => j.State == JobState.Completed);
            var writes = await JobWritesAsync(database, job.JobId);
            Assert.That(writes, Is.EqualTo(new[] { ("insert", (int)JobState.Placed), ("update", (int)JobState.Completed) }),
                "inserted PLACED, then only the settlement's update (soft RUNNING: nothing at the accept)");
            Assert.That((await LedgerEventsAsync(network, job.JobId)).Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
        }
        finally
        {
            await ExecuteAsync(database, "DROP TRIGGER IF EXISTS test_job_inserted; DROP TRIGGER IF EXISTS test_job_updated; DROP TABLE IF EXISTS test_job_writes;");
        }
    }

    [Test]
    public async Task RunJob_status_frames_built_from_the_submitted_rows_match_the_store()
    {
        // The placed frame and the first soft-RUNNING frame are built from the rows the submit wrote, not read back (#11):
        // they must show what a read of the store (plus the soft RUNNING state) shows.
        var (network, devices) = await NetworkWithDevicesAsync(1);
        using var run = Jobs.RunJob(new RunJobRequest { Envelope = EchoEnvelope(network) });
        Assert.That(await run.ResponseStream.MoveNext(CancellationToken.None), Is.True);
        var placedFrame = run.ResponseStream.Current.Frame.Status.Job;
        var stored = await GetAsync(network, placedFrame.JobId);
        Assert.That(placedFrame, Is.EqualTo(stored), "the placed frame is the stored job and its attempt");
        Assert.That(placedFrame.State, Is.EqualTo(JobState.Placed));

        var acceptedAt = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        await AcceptAsync(devices, placedFrame.JobId, 1);
        Assert.That(await run.ResponseStream.MoveNext(CancellationToken.None), Is.True);
        var runningFrame = run.ResponseStream.Current.Frame.Status.Job;
        var expected = (await GetAsync(network, placedFrame.JobId)).Clone();
        Assert.That(expected.State, Is.EqualTo(JobState.Placed), "soft RUNNING: the store still says PLACED");
        expected.State = JobState.Running;
        expected.StartTime = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(acceptedAt));
        Assert.That(runningFrame, Is.EqualTo(expected), "the RUNNING frame is the stored job shown running since the accept");

        await Sink.OnResultAsync(Identity(devices, placedFrame.DeviceId), EchoResult(placedFrame.JobId, 1), 100, CancellationToken.None);
        var result = false;
        while (await run.ResponseStream.MoveNext(CancellationToken.None))
        {
            result |= run.ResponseStream.Current.Frame.Result is not null;
        }

        Assert.That(result, Is.True, "the stream ends with the result");
    }

    private static Task<int> ExecuteAsync(MeshAI.Control.Storage.Database database, string sql) =>
        database.RunAsync(async c =>
        {
            await using var command = c.CreateCommand();
            command.CommandText = sql;
            return await command.ExecuteNonQueryAsync();
        }, CancellationToken.None);

    private static Task<List<(string Kind, int State)>> JobWritesAsync(MeshAI.Control.Storage.Database database, string jobId) =>
        database.RunAsync(async c =>
        {
            await using var command = c.CreateCommand();
            command.CommandText = "SELECT kind, state FROM test_job_writes WHERE job_id = $job ORDER BY rowid";
            var parameter = command.CreateParameter();
            parameter.ParameterName = "$job";
            parameter.Value = jobId;
            command.Parameters.Add(parameter);
            var writes = new List<(string, int)>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                writes.Add((reader.GetString(0), reader.GetInt32(1)));
            }

            return writes;
        }, CancellationToken.None);

    [Test]
    public async Task A_restart_while_an_accepted_job_is_soft_running_resumes_it_and_its_result_settles_once()
    {
        var (network, devices) = await NetworkWithDevicesAsync(1);
        var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = EchoEnvelope(network) })).Job;
        await AcceptAsync(devices, job.JobId, 1);
        await Settle();
        Assert.That((await GetAsync(network, job.JobId)).State, Is.EqualTo(JobState.Placed), "accepted, RUNNING not written");

        // The embedded server restarts before RUNNING was written: the resumed execution rebuilds the open attempt from
        // job_attempts (written at placement), so the agent's result still settles the job, once.
        _server = await _server.RestartAsync(_clock);
        Refresh(devices);
        var runner = _server.Services.GetRequiredService<MeshAI.Control.Jobs.JobRunner>();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!runner.Runs(job.JobId))
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the job was not resumed after the restart");
            await Task.Delay(50);
        }

        await Sink.OnResultAsync(Identity(devices, devices.Keys.Single()), EchoResult(job.JobId, 1), 100, CancellationToken.None);
        var done = await WaitForAsync(network, job.JobId, j => j.State == JobState.Completed);
        var events = await LedgerEventsAsync(network, job.JobId);
        Assert.Multiple(() =>
        {
            Assert.That(done.Attempts.Select(a => a.Cause), Is.EqualTo(new[] { AttemptCause.Succeeded }));
            Assert.That(done.StartTime, Is.Not.Null, "the end writes a start time (the placement's, the accept time was lost with the process)");
            Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once across the restart");
        });
    }

    [Test]
    public async Task After_a_key_rotation_chunk_offers_carry_tickets_the_agent_accepts()
    {
        var (network, devices) = await NetworkWithDevicesAsync(1);
        await new NetworkService.NetworkServiceClient(_server.Channel(_token)).RotateNetworkKeysAsync(new RotateNetworkKeysRequest { NetworkId = network });
        var device = devices.Values.Single();

        var envelope = new JobEnvelope
        {
            NetworkId = network,
            WorkloadId = WorkloadClass.BatchJobsEvalOrSynth,
            RoutingMode = RoutingMode.Auto,
            InputManifest = new InputManifest { Payload = new WorkloadInput { Batch = new BatchInput { Items = { "a", "b", "c" }, Operation = "upper" } }.ToByteString() },
            PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
        };
        var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
        var offers = OffersFor(job.JobId);
        Assert.That(offers.Select(o => o.Offer.Chunk?.ChunkId), Is.EquivalentTo(ThreeChunks));

        // The agent still holds the keys it was given at registration (it has not reconnected since the rotation).
        var verifier = new OfferVerifier(_ => device.ControlKeys, device.DeviceId, network, _clock);
        foreach (var (_, offer) in offers)
        {
            var check = verifier.Check(offer);
            Assert.That(check.Accepted, Is.True, $"chunk {offer.Chunk.ChunkId}: {check.Reason} {check.Detail}");
        }

        var single = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = EchoEnvelope(network) })).Job;
        Assert.That(verifier.Check((await OfferAsync(single.JobId, 1)).Offer).Accepted, Is.True, "single jobs follow the same key rule");
    }

    [Test]
    public async Task A_dropped_stream_is_re_offered_to_another_device_at_once_without_waiting_the_reconnect_grace()
    {
        var (network, devices) = await NetworkWithDevicesAsync(2);
        var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = EchoEnvelope(network) })).Job;
        await AcceptAsync(devices, job.JobId, 1);
        var dropped = OffersFor(job.JobId).Single().DeviceId;

        await DropAsync(devices, dropped);
        // The fake clock does not move: neither the 3 s reconnect grace nor the 250 ms backoff can have passed.
        var hedged = await WaitForAsync(network, job.JobId, j => j.Attempts.Count == 2);
        await OfferAsync(job.JobId, 2);
        Assert.Multiple(() =>
        {
            Assert.That(hedged.Attempts[0].Cause, Is.EqualTo(AttemptCause.Disconnect));
            Assert.That(hedged.Attempts[0].Detail, Does.Contain("re-offered at once"));
            Assert.That(hedged.Attempts[1].EndTime, Is.Null, "attempt 2 is open");
            Assert.That(OffersFor(job.JobId).Select(o => o.DeviceId), Is.EqualTo(new[] { dropped, devices.Keys.Single(d => d != dropped) }));
        });
    }

    // An echo job on two devices whose first device dropped: attempt 2 was offered to the other at once and accepted.
    private async Task<(string Network, IReadOnlyDictionary<string, TestDevice> Devices, Job Job, string Dropped, string Other)> HedgedJobAsync()
    {
        var (network, devices) = await NetworkWithDevicesAsync(2);
        var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = EchoEnvelope(network) })).Job;
        await AcceptAsync(devices, job.JobId, 1);
        var dropped = OffersFor(job.JobId).Single().DeviceId;
        var other = devices.Keys.Single(d => d != dropped);
        await DropAsync(devices, dropped);
        await WaitForAsync(network, job.JobId, j => j.Attempts.Count == 2);
        await AcceptAsync(devices, job.JobId, 2);
        return (network, devices, job, dropped, other);
    }

    [Test]
    public async Task A_late_result_of_the_dropped_attempt_completes_the_job_and_cancels_the_hedge_unbilled()
    {
        var (network, devices, job, dropped, other) = await HedgedJobAsync();

        // It was only a blip: the first device comes back and delivers the result it held, before attempt 2 finished.
        await Sink.OnConnectedAsync(Identity(devices, dropped), [new HeldAttempt { JobId = job.JobId, Attempt = 1 }], CancellationToken.None);
        await Sink.OnResultAsync(Identity(devices, dropped), EchoResult(job.JobId, 1), 100, CancellationToken.None);
        var done = await WaitForAsync(network, job.JobId, j => j.State == JobState.Completed);
        // Attempt 2's result arrives after the job ended: ignored.
        await Sink.OnResultAsync(Identity(devices, other), EchoResult(job.JobId, 2), 100, CancellationToken.None);

        var events = await LedgerEventsAsync(network, job.JobId);
        Assert.Multiple(() =>
        {
            Assert.That(done.DeviceId, Is.EqualTo(dropped), "the first result settles");
            Assert.That(done.Attempts.Select(a => a.Cause), Is.EqualTo(new[] { AttemptCause.Succeeded, AttemptCause.Cancelled }));
            Assert.That(_server.Dispatcher.Cancels.Where(c => c.Cancel.JobId == job.JobId).Select(c => (c.DeviceId, c.Cancel.Attempt, c.Cancel.Reason)),
                Is.EqualTo(new[] { (other, 2, "completed by another attempt") }), "the hedge is stopped on its device");
            Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
            Assert.That(events.Where(e => e.EventType == LedgerEventType.CreditsMinted).Select(e => e.DeviceId).Distinct(), Is.EqualTo(new[] { dropped }),
                "only the device whose result settled earns; the cancelled hedge has no execution record");
        });
    }

    [Test]
    public async Task A_result_of_the_dropped_attempt_after_the_hedge_completed_is_ignored_and_billed_once()
    {
        var (network, devices, job, dropped, other) = await HedgedJobAsync();
        await Sink.OnResultAsync(Identity(devices, other), EchoResult(job.JobId, 2), 100, CancellationToken.None);
        var done = await WaitForAsync(network, job.JobId, j => j.State == JobState.Completed);

        // The first device comes back late with its result: the job has ended, so it changes nothing.
        await Sink.OnConnectedAsync(Identity(devices, dropped), [new HeldAttempt { JobId = job.JobId, Attempt = 1 }], CancellationToken.None);
        await Sink.OnResultAsync(Identity(devices, dropped), EchoResult(job.JobId, 1), 100, CancellationToken.None);
        await Settle();

        var after = await GetAsync(network, job.JobId);
        var events = await LedgerEventsAsync(network, job.JobId);
        Assert.Multiple(() =>
        {
            Assert.That(after.DeviceId, Is.EqualTo(other));
            Assert.That(after.Attempts.Select(a => a.Cause), Is.EqualTo(new[] { AttemptCause.Disconnect, AttemptCause.Succeeded }));
            Assert.That(after.CostMicro, Is.EqualTo(done.CostMicro));
            Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
            Assert.That(events.Where(e => e.EventType == LedgerEventType.CreditsMinted).Select(e => e.DeviceId).Distinct(), Is.EqualTo(new[] { other }));
        });
    }

    [Test]
    public async Task A_dropped_stream_with_nobody_else_to_take_the_job_keeps_the_reconnect_grace()
    {
        var (network, devices) = await NetworkWithDevicesAsync(1);
        var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = EchoEnvelope(network) })).Job;
        await AcceptAsync(devices, job.JobId, 1);
        var only = devices.Keys.Single();
        await DropAsync(devices, only);
        _clock.Advance(TimeSpan.FromMilliseconds(2_999));
        await Settle();
        Assert.That((await GetAsync(network, job.JobId)).Attempts.Single().EndTime, Is.Null, "waits the 3 s grace: a blip must not fail the job");

        // Its device comes back with the attempt inside the grace and delivers: completed on the first attempt.
        Refresh(devices);
        await Sink.OnConnectedAsync(Identity(devices, only), [new HeldAttempt { JobId = job.JobId, Attempt = 1 }], CancellationToken.None);
        _clock.Advance(TimeSpan.FromMilliseconds(10));
        await Sink.OnResultAsync(Identity(devices, only), EchoResult(job.JobId, 1), 100, CancellationToken.None);
        var done = await WaitForAsync(network, job.JobId, j => j.State == JobState.Completed);
        Assert.That(done.Attempts.Select(a => a.Cause), Is.EqualTo(new[] { AttemptCause.Succeeded }));
    }

    /// <summary>What the relay does when a device's stream ends: its presence goes, control hears the disconnect.</summary>
    private async Task DropAsync(IReadOnlyDictionary<string, TestDevice> devices, string deviceId)
    {
        _server.Services.GetRequiredService<IPresenceDirectory>().Remove(deviceId);
        await Sink.OnDisconnectedAsync(Identity(devices, deviceId), CancellationToken.None);
    }

    private static JobResult EchoResult(string jobId, int attempt) => new()
    {
        JobId = jobId,
        Attempt = attempt,
        Output = new WorkloadOutput { Echo = new EchoOutput { Data = ByteString.CopyFromUtf8("tick") } }.ToByteString(),
        Metering = new Metering { RuntimeMs = 1_000, Tier = Tier._2 },
    };

    private async Task<IReadOnlyList<LedgerEvent>> LedgerEventsAsync(string networkId, string jobId) =>
        (await new LedgerService.LedgerServiceClient(_server.Channel(_token)).ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = networkId, JobId = jobId })).Events;

    /// <summary>
    /// An echo capped at 1.5 s of runtime (150 000 µ at tier 2's 6 credits/min) on one device, accepted, running, and the
    /// fake clock 1 s into its attempt.
    /// </summary>
    private async Task<(string NetworkId, IReadOnlyDictionary<string, TestDevice> Devices, Job Job)> CappedJobOneSecondInAsync()
    {
        var (network, devices) = await NetworkWithDevicesAsync(1);
        var envelope = EchoEnvelope(network);
        envelope.MaxCostCredits = 150_000;
        envelope.TimeoutMs = 600_000;
        var job = (await Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
        await AcceptAsync(devices, job.JobId, 1);
        await WaitForAsync(network, job.JobId, j => j.State == JobState.Running);
        Advance(devices, 1_000);
        await Settle();
        return (network, devices, job);
    }

    /// <summary>Keeps the devices present (their heartbeats are fake too) and moves the fake clock.</summary>
    private void Advance(IReadOnlyDictionary<string, TestDevice> devices, int milliseconds)
    {
        Refresh(devices);
        _clock.Advance(TimeSpan.FromMilliseconds(milliseconds));
    }

    /// <summary>
    /// Moves the clock by a backoff and waits for what it releases. The strategy ends an attempt in the store before it arms
    /// the backoff's timer, so a test that saw the ended attempt may move the clock before the timer exists: then the clock
    /// is moved by the backoff again (a later due time changes nothing else here).
    /// </summary>
    private async Task<Job> AdvanceUntilAsync(IReadOnlyDictionary<string, TestDevice> devices, int milliseconds, string networkId, string jobId, Func<Job, bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            Advance(devices, milliseconds);
            var waitUntil = DateTime.UtcNow.AddMilliseconds(500);
            while (DateTime.UtcNow < waitUntil)
            {
                var job = await GetAsync(networkId, jobId);
                if (condition(job))
                {
                    return job;
                }

                await Task.Delay(25);
            }

            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "condition not reached after moving the clock by " + milliseconds + " ms");
        }
    }

    private async Task AcceptAsync(IReadOnlyDictionary<string, TestDevice> devices, string jobId, int attempt)
    {
        var offer = await OfferAsync(jobId, attempt);
        await Sink.OnAcceptedAsync(Identity(devices, offer.DeviceId), new JobAccept { JobId = jobId, Attempt = attempt }, CancellationToken.None);
    }

    /// <summary>The placer writes the attempt row before it sends the offer: a test that saw the row waits for the offer too.</summary>
    private async Task<(string DeviceId, JobOffer Offer)> OfferAsync(string jobId, int attempt)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var offers = OffersFor(jobId).Where(o => PlacementTicketDetails.Parser.ParseFrom(o.Offer.Ticket.Details).Attempt == attempt).ToList();
            if (offers.Count > 0)
            {
                return offers.Single();
            }

            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"attempt {attempt} of {jobId} was never offered");
            await Task.Delay(10);
        }
    }

    private IJobEventSink Sink => _server.Services.GetRequiredService<IJobEventSink>();

    private sealed record TestDevice(string DeviceId, DeviceIdentity Identity, IReadOnlyDictionary<string, byte[]> ControlKeys);

    private static DeviceIdentity Identity(IReadOnlyDictionary<string, TestDevice> devices, string deviceId) => devices[deviceId].Identity;

    private List<(string DeviceId, JobOffer Offer)> OffersFor(string jobId) =>
        _server.Dispatcher.Offers.Where(o => PlacementTicketDetails.Parser.ParseFrom(o.Offer.Ticket.Details).JobId == jobId).ToList();

    private void Refresh(IReadOnlyDictionary<string, TestDevice> devices)
    {
        foreach (var device in devices.Values)
        {
            _server.Services.GetRequiredService<IPresenceDirectory>().Upsert(new PresenceRecord(device.DeviceId, device.Identity.NetworkId, "relay-test", Capabilities(), true, _clock.GetUtcNow(), 10));
        }
    }

    private async Task<(string NetworkId, IReadOnlyDictionary<string, TestDevice> Devices)> NetworkWithDevicesAsync(int count)
    {
        var network = (await new NetworkService.NetworkServiceClient(_server.Channel(_token)).CreateNetworkAsync(new CreateNetworkRequest { Name = "clock " + Guid.NewGuid().ToString("N")[..6] })).Network;
        var devices = new Dictionary<string, TestDevice>(StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            var join = await new DeviceService.DeviceServiceClient(_server.Channel(_token)).CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId });
            Assert.That(JoinLink.TryParse(join.JoinLink, out var link), Is.True);
            var signing = SigningKeyPair.Generate();
            var encryption = EncryptionKeyPair.Generate();
            var installation = Guid.NewGuid().ToString("N");
            var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
            var registered = await new DeviceService.DeviceServiceClient(_server.Channel()).RegisterDeviceAsync(new RegisterDeviceRequest
            {
                JoinToken = link!.Token,
                DeviceName = "device-" + i,
                InstallationId = installation,
                SigningPublicKey = ByteString.CopyFrom(signing.PublicKey),
                EncryptionPublicKey = ByteString.CopyFrom(encryption.PublicKey),
                Capabilities = Capabilities(),
                TimestampUnixMs = now,
                ProofSignature = ByteString.CopyFrom(signing.Sign(ProofMessages.Register(link.Token, installation, now, signing.PublicKey, encryption.PublicKey))),
            });
            var details = DeviceCertificateDetails.Parser.ParseFrom(registered.Certificate.Details);
            var keys = registered.NetworkKeys.Where(k => k.Purpose == NetworkKeyPurpose.ControlSigning).ToDictionary(k => k.KeyId, k => k.PublicKey.ToByteArray());
            devices[details.DeviceId] = new TestDevice(details.DeviceId,
                new DeviceIdentity(details.DeviceId, details.NetworkId, details.OwnerUserId, details.SigningPublicKey.ToByteArray(), details.Serial), keys);
        }

        Refresh(devices);
        return (network.NetworkId, devices);
    }

    private static CapabilityReport Capabilities() => new()
    {
        CpuCores = 8,
        CpuArch = "x64",
        RamMb = 16_000,
        Os = "linux",
        Platform = Platform.Linux,
        NetworkRttMs = 10,
        Workloads = { WorkloadClass.DiagnosticEcho, WorkloadClass.BatchJobsEvalOrSynth },
    };

    private static JobEnvelope EchoEnvelope(string networkId) => new()
    {
        NetworkId = networkId,
        WorkloadId = WorkloadClass.DiagnosticEcho,
        RoutingMode = RoutingMode.Auto,
        InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("tick") } }.ToByteString() },
        PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
    };

    private async Task<Job> GetAsync(string networkId, string jobId) =>
        (await Jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = jobId })).Job;

    /// <summary>Lets the mailboxes drain what the last clock step posted (real time, never asserted on).</summary>
    private static Task Settle() => Task.Delay(300);

    private async Task<Job> WaitForAsync(string networkId, string jobId, Func<Job, bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var job = await GetAsync(networkId, jobId);
            if (condition(job))
            {
                return job;
            }

            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "condition not reached; job is " + job);
            await Task.Delay(25);
        }
    }
}

#pragma warning disable CA1861 // expected values read best inline
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Issue 5 through real processes: three agents per test in a fresh network; the device doing the work is killed
/// mid-job and the scheduler's retry / chunking / explain / ledger behaviour is checked end to end.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class SchedulingEndToEndTests
{
    private const int GraceSeconds = 10;
    private const string AdminEmail = "sched-admin@example.com";
    private LocalMesh _mesh = null!;
    private string _cliConfig = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;

    /// <summary>Server and a CLI signed in as the admin.</summary>
    [OneTimeSetUp]
    public async Task StartMeshAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = GraceSeconds });
        _cliConfig = Path.Combine(_mesh.DataDirectory, "cli.json");
        var token = await _mesh.SignInWithCliAsync(_cliConfig, AdminEmail);
        _channel = _mesh.Channel(token);
    }

    /// <summary>Stops every process.</summary>
    [OneTimeTearDown]
    public async Task StopMeshAsync()
    {
        _channel?.Dispose();
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task Killing_the_chosen_agent_mid_job_retries_on_another_device_explains_why_and_bills_once()
    {
        var (networkId, agents) = await NetworkWithAgentsAsync("retry");
        var jobs = new JobService.JobServiceClient(_channel);
        var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("survive"), DelayMs = 6_000 } };
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(networkId, WorkloadClass.DiagnosticEcho, input) })).Job;

        var running = await WaitForJobAsync(jobs, networkId, job.JobId, j => j.State == JobState.Running);
        var chosen = agents.Single(a => a.DeviceId == running.DeviceId);
        chosen.Process.Kill();

        var done = await WaitForJobAsync(jobs, networkId, job.JobId, j => j.State is JobState.Completed or JobState.Failed or JobState.Cancelled, TimeSpan.FromSeconds(90));
        Assert.That(done.State, Is.EqualTo(JobState.Completed), done.ErrorMessage);
        Assert.That(done.DeviceId, Is.Not.EqualTo(chosen.DeviceId));
        Assert.That(agents.Select(a => a.DeviceId), Does.Contain(done.DeviceId));
        var result = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = job.JobId })).Result;
        Assert.That(WorkloadOutput.Parser.ParseFrom(result.Output).Echo.Data.ToStringUtf8(), Is.EqualTo("survive"));

        var explain = (await jobs.ExplainJobAsync(new ExplainJobRequest { NetworkId = networkId, JobId = job.JobId })).DebugView;
        Assert.That(explain.Retries, Has.Count.EqualTo(2));
        Assert.That(explain.Retries[0].DeviceId, Is.EqualTo(chosen.DeviceId));
        Assert.That(explain.Retries[0].Cause, Is.EqualTo(AttemptCause.Disconnect));
        Assert.That(explain.Retries[1].Cause, Is.EqualTo(AttemptCause.Succeeded));
        Assert.That(explain.SelectedDeviceId, Is.EqualTo(done.DeviceId));
        Assert.That(explain.SelectionReason, Does.Contain("retry"));
        Assert.That(explain.Eligibility.Where(e => e.Eligible).Select(e => e.DeviceId), Does.Not.Contain(chosen.DeviceId), "the killed device is offline or excluded for the retry");
        Assert.That(explain.Eligibility.Count(e => e.Eligible), Is.EqualTo(2));
        Assert.That(explain.TopCandidates, Is.Not.Empty);
        Assert.That(explain.TopCandidates[0].Features.Select(f => f.Name), Is.EqualTo(new[] { "rtt_ms", "is_plugged_in", "thermal_headroom", "idle_score", "credit_rate_efficiency" }));

        var events = await LedgerEventsAsync(networkId, job.JobId);
        Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed exactly once");
        Assert.That(events.Count(e => e.EventType == LedgerEventType.JobCompleted), Is.EqualTo(1));
        Assert.That(events.Where(e => e.EventType == LedgerEventType.CreditsMinted).Select(e => e.DeviceId), Is.All.EqualTo(done.DeviceId));
        Assert.That(events.Select(e => e.IdempotencyKey), Is.Unique);

        var cli = await LocalMesh.RunCliAsync(_cliConfig, ["jobs", "explain", job.JobId, "--network", networkId]);
        Assert.That(cli.ExitCode, Is.Zero, cli.StandardError);
        Assert.That(cli.StandardOutput, Does.Contain("Retries").And.Contain("DISCONNECT").IgnoreCase.And.Contain(chosen.DeviceId).And.Contain("rtt_ms"));
        var json = await LocalMesh.RunCliAsync(_cliConfig, ["jobs", "explain", job.JobId, "--network", networkId, "--json"]);
        Assert.That(json.ExitCode, Is.Zero, json.StandardError);
        Assert.That(JsonDocument.Parse(json.StandardOutput).RootElement.GetProperty("debugView").GetProperty("retries").GetArrayLength(), Is.EqualTo(2));
    }

    [Test]
    public async Task A_chunked_batch_over_three_agents_survives_a_killed_agent_with_every_chunk_once_in_result_and_ledger()
    {
        var (networkId, agents) = await NetworkWithAgentsAsync("chunks");
        var jobs = new JobService.JobServiceClient(_channel);
        var items = Enumerable.Range(0, 9).Select(i => $"item-{i}").ToList();
        var input = new WorkloadInput { Batch = new BatchInput { Operation = "upper:delay=4000", Items = { items } } };
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(networkId, WorkloadClass.BatchJobsEvalOrSynth, input) })).Job;
        Assert.That(job.ChunkCount, Is.EqualTo(9));

        using var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = networkId, JobId = job.JobId });
        var running = await WaitForJobAsync(jobs, networkId, job.JobId, j => j.State == JobState.Running && j.Attempts.Select(a => a.DeviceId).Distinct().Count() == 3);
        Assert.That(running.Attempts.Select(a => a.ChunkId).Distinct().Count(), Is.EqualTo(9), "every chunk dispatched at once");
        var victim = agents.Single(a => a.DeviceId == running.Attempts[0].DeviceId);
        victim.Process.Kill();

        var progress = new List<JobProgressFrame>();
        JobResultFrame? resultFrame = null;
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120)))
        {
            await foreach (var frame in watch.ResponseStream.ReadAllAsync(cts.Token))
            {
                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Progress && frame.Progress.ChunkCount > 0)
                {
                    progress.Add(frame.Progress);
                }

                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
                {
                    resultFrame = frame.Result;
                    break;
                }

                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && frame.Status.Job.State is JobState.Failed or JobState.Cancelled)
                {
                    Assert.Fail("job ended " + frame.Status.Job.State + ": " + frame.Status.Job.ErrorMessage);
                }
            }
        }

        Assert.That(resultFrame, Is.Not.Null);
        var output = WorkloadOutput.Parser.ParseFrom(resultFrame!.Output).Batch;
        Assert.That(output.Results, Is.EqualTo(items.Select(i => i.ToUpperInvariant())), "every chunk exactly once, in order");
        Assert.That(progress.Max(p => p.ChunksCompleted), Is.EqualTo(9));
        Assert.That(progress.Where(p => p.ChunksCompleted > 0).Select(p => p.ChunkId).Distinct().Count(), Is.GreaterThanOrEqualTo(1));

        var done = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = job.JobId })).Job;
        Assert.That(done.State, Is.EqualTo(JobState.Completed));
        Assert.That(done.ChunksCompleted, Is.EqualTo(9));
        var disconnected = done.Attempts.Where(a => a.Cause == AttemptCause.Disconnect).ToList();
        Assert.That(disconnected, Is.Not.Empty);
        Assert.That(disconnected.Select(a => a.DeviceId), Is.All.EqualTo(victim.DeviceId));
        Assert.That(done.Attempts.Where(a => a.Cause == AttemptCause.Succeeded).Select(a => a.ChunkId), Is.EquivalentTo(Enumerable.Range(0, 9).Select(i => $"c{i:D4}")));

        var events = await LedgerEventsAsync(networkId, job.JobId);
        var burns = events.Where(e => e.EventType == LedgerEventType.CreditsBurned).ToList();
        Assert.That(burns.Select(e => e.ChunkId), Is.EquivalentTo(Enumerable.Range(0, 9).Select(i => $"c{i:D4}")), "each chunk billed exactly once");
        Assert.That(events.Select(e => e.IdempotencyKey), Is.Unique);
        Assert.That(-burns.Sum(b => b.AmountMicro), Is.EqualTo(done.CostMicro));

        var explain = await LocalMesh.RunCliAsync(_cliConfig, ["jobs", "explain", job.JobId, "--network", networkId]);
        Assert.That(explain.ExitCode, Is.Zero, explain.StandardError);
        Assert.That(explain.StandardOutput, Does.Contain("c0008").And.Contain("DISCONNECT").IgnoreCase);
    }

    [Test]
    public async Task Policies_are_data_edited_through_the_cli_and_stored_tests_guard_every_save()
    {
        var networkId = (await new NetworkService.NetworkServiceClient(_channel).CreateNetworkAsync(new CreateNetworkRequest { Name = "sched-policy" })).Network.NetworkId;
        var shown = await LocalMesh.RunCliAsync(_cliConfig, ["policy", "show", "--network", networkId, "--json"]);
        Assert.That(shown.ExitCode, Is.Zero, shown.StandardError);
        var policy = Google.Protobuf.JsonParser.Default.Parse<Policy>(shown.StandardOutput);
        Assert.That(policy.Rules.Select(r => r.Name), Does.Contain("mobile-no-sensitive").And.Contain("sensitive-admins").And.Contain("guests-public-data-only"));

        var tested = await LocalMesh.RunCliAsync(_cliConfig, ["policy", "test", "--network", networkId]);
        Assert.That(tested.ExitCode, Is.Zero, tested.StandardOutput + tested.StandardError);
        Assert.That(tested.StandardOutput, Does.Contain($"All {policy.Tests.Count} policy test(s) pass."));

        var broken = policy.Clone();
        broken.Rules.Remove(broken.Rules.Single(r => r.Name == "mobile-no-sensitive"));
        var brokenFile = Path.Combine(_mesh.DataDirectory, "broken-policy.json");
        await File.WriteAllTextAsync(brokenFile, Google.Protobuf.JsonFormatter.Default.Format(broken));
        var refused = await LocalMesh.RunCliAsync(_cliConfig, ["policy", "set", "--network", networkId, "--file", brokenFile]);
        Assert.That(refused.ExitCode, Is.EqualTo(1));
        Assert.That(refused.StandardError, Does.Contain("mobile").And.Contain("policy test"));

        var night = policy.Clone();
        night.Rules.Insert(0, new PolicyRule { Name = "no-chat-at-night", Effect = PolicyEffect.Deny, WorkloadClasses = { WorkloadClass.SmallChat }, TimeOfDay = "22:00-06:00" });
        night.Tests.Add(new PolicyTest
        {
            Name = "no chat at 23:00", Expect = PolicyEffect.Deny,
            Query = new PolicyQuery { WorkloadClass = WorkloadClass.SmallChat, SensitivityTag = DataSensitivityTag.Private, MemberRole = Role.Admin, DeviceTier = Tier._2, MinuteOfDay = 23 * 60 },
        });
        var nightFile = Path.Combine(_mesh.DataDirectory, "night-policy.json");
        await File.WriteAllTextAsync(nightFile, Google.Protobuf.JsonFormatter.Default.Format(night));
        var saved = await LocalMesh.RunCliAsync(_cliConfig, ["policy", "set", "--network", networkId, "--file", nightFile]);
        Assert.That(saved.ExitCode, Is.Zero, saved.StandardError);
        Assert.That(saved.StandardOutput, Does.Contain("version 1"));

        var query = await LocalMesh.RunCliAsync(_cliConfig, ["policy", "test", "--network", networkId, "--workload", "small_chat", "--time", "23:30"]);
        Assert.That(query.ExitCode, Is.Zero, query.StandardError);
        Assert.That(query.StandardOutput, Does.Contain("no-chat-at-night").And.Contain("deny").IgnoreCase);

        var tune = await LocalMesh.RunCliAsync(_cliConfig, ["net", "tune", "--network", networkId, "--weight", "rtt_ms=-0.6", "--max-attempts", "4", "--json"]);
        Assert.That(tune.ExitCode, Is.Zero, tune.StandardError);
        var tuned = JsonDocument.Parse(tune.StandardOutput).RootElement;
        Assert.That(tuned.GetProperty("scoringWeights").GetProperty("rttMs").GetDouble(), Is.EqualTo(-0.6));
        Assert.That(tuned.GetProperty("scoringWeights").GetProperty("idleScore").GetDouble(), Is.EqualTo(0.15));
        Assert.That(tuned.GetProperty("retryPolicy").GetProperty("maxAttempts").GetInt32(), Is.EqualTo(4));
    }

    private Task<(string NetworkId, IReadOnlyList<MeshAgent> Agents)> NetworkWithAgentsAsync(string name) => MeshJobs.NetworkWithAgentsAsync(_mesh, _channel, name);

    private static Task<Job> WaitForJobAsync(JobService.JobServiceClient jobs, string networkId, string jobId, Func<Job, bool> condition, TimeSpan? timeout = null) =>
        MeshJobs.WaitForJobAsync(jobs, networkId, jobId, condition, timeout);

    private Task<IReadOnlyList<LedgerEvent>> LedgerEventsAsync(string networkId, string jobId) => MeshJobs.LedgerEventsAsync(_channel, networkId, jobId);

    private static JobEnvelope Envelope(string networkId, WorkloadClass workload, WorkloadInput input) => new()
    {
        NetworkId = networkId,
        WorkloadId = workload,
        RoutingMode = RoutingMode.Auto,
        DataSensitivityTag = DataSensitivityTag.Private,
        TimeoutMs = 60_000,
        InputManifest = new InputManifest { Payload = input.ToByteString() },
        PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
    };
}

using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Google.Rpc;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Phase 0 through real processes: meshai-server (control plane + relay), two meshai-agent processes and the
/// meshnet CLI — on the embedded SQLite store and on PostgreSQL.
/// </summary>
[TestFixture(MeshStore.Sqlite)]
[TestFixture(MeshStore.Postgres)]
[Category("EndToEnd")]
public sealed class PhaseZeroEndToEndTests(MeshStore store)
{
    // Longer than the 5 s heartbeat interval (the spec's 20 s would only make the suite slower).
    private const int GraceSeconds = 10;
    private const string AdminEmail = "admin@example.com";
    private LocalMesh _mesh = null!;
    private string _cliConfig = null!;
    private string _token = null!;
    private string _networkId = null!;
    private MeshAgent _agentA = null!;
    private MeshAgent _agentB = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;

    /// <summary>Server, CLI sign-in, network, two joined agents.</summary>
    [OneTimeSetUp]
    public async Task StartMeshAsync()
    {
        var pg = store == MeshStore.Postgres ? await SharedInfrastructure.CreatePostgresDatabaseAsync("e2e") : null;
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { Store = store, PostgresConnectionString = pg, HeartbeatGraceSeconds = GraceSeconds });
        _cliConfig = Path.Combine(_mesh.DataDirectory, "cli.json");

        // Real device-code login through the CLI, approved by opening the magic link from the outbox.
        _token = await _mesh.SignInWithCliAsync(_cliConfig, AdminEmail);
        _channel = _mesh.Channel(_token);

        var created = await CliJsonAsync("net", "create", "E2E Mesh");
        _networkId = created.GetProperty("networkId").GetString()!;
        _agentA = await _mesh.StartAgentAsync(await JoinLinkAsync(), "agent-a");
        _agentB = await _mesh.StartAgentAsync(await JoinLinkAsync(), "agent-b");
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
    public async Task Devices_list_shows_both_agents_online_with_their_capability_tier()
    {
        var devices = await WaitForDevicesAsync(d => d.Count(x => x.OnlineStatus == OnlineStatus.Online && (x.DeviceId == _agentA.DeviceId || x.DeviceId == _agentB.DeviceId)) == 2, TimeSpan.FromSeconds(15));
        devices = devices.Where(d => d.DeviceId == _agentA.DeviceId || d.DeviceId == _agentB.DeviceId).ToList();
        Assert.That(devices.Select(d => d.CapabilityTier), Is.All.Not.EqualTo(Tier.Unspecified));
        Assert.That(devices.Select(d => d.Capabilities.CpuCores), Is.All.GreaterThan(0));

        var cli = await LocalMesh.RunCliAsync(_cliConfig, ["devices", "list"]);
        Assert.That(cli.ExitCode, Is.Zero, cli.StandardError);
        Assert.That(cli.StandardOutput, Does.Contain("agent-a").And.Contain("agent-b").And.Contain("online").IgnoreCase);
    }

    [Test]
    public async Task Embeddings_through_the_cli_are_unit_vectors_of_the_model_dimension()
    {
        var result = await CliJsonAsync("run", "embeddings", "--text", "The cat sat on the mat.", "--text", "Stock markets fell sharply today.");
        Assert.That(result.GetProperty("state").GetString(), Is.EqualTo("COMPLETED"));
        Assert.That(result.GetProperty("deviceId").GetString(), Is.AnyOf(_agentA.DeviceId, _agentB.DeviceId));
        var embeddings = result.GetProperty("embeddings").EnumerateArray().ToList();
        Assert.That(embeddings, Has.Count.EqualTo(2));
        foreach (var embedding in embeddings)
        {
            var values = embedding.GetProperty("values").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            Assert.That(values, Has.Length.EqualTo(384), "all-minilm-l6-v2, the default model");
            Assert.That(Math.Sqrt(values.Sum(v => v * v)), Is.EqualTo(1.0).Within(1e-4));
        }

        var human = await LocalMesh.RunCliAsync(_cliConfig, ["run", "embeddings", "--text", "hello world"]);
        Assert.That(human.ExitCode, Is.Zero, human.StandardError);
        Assert.That(human.StandardOutput, Does.Contain("dimension 384"));
    }

    [Test]
    public async Task Embeddings_through_the_csharp_client_match_on_both_devices_and_are_billed_once_each()
    {
        var jobs = new JobService.JobServiceClient(_channel);
        var onA = await RunEmbeddingsAsync(jobs, _agentA.DeviceId, "the quick brown fox", "a slow green turtle");
        var onB = await RunEmbeddingsAsync(jobs, _agentB.DeviceId, "the quick brown fox", "a slow green turtle");
        Assert.That(onA.Job.DeviceId, Is.EqualTo(_agentA.DeviceId));
        Assert.That(onB.Job.DeviceId, Is.EqualTo(_agentB.DeviceId));
        for (var i = 0; i < 2; i++)
        {
            var a = onA.Output.Embeddings[i].Values.ToArray();
            var b = onB.Output.Embeddings[i].Values.ToArray();
            Assert.That(a, Has.Length.EqualTo(onA.Output.Dimension));
            Assert.That(Math.Sqrt(a.Sum(v => (double)v * v)), Is.EqualTo(1.0).Within(1e-4));
            Assert.That(b, Is.EqualTo(a).Within(1e-5), "the same model on two devices gives the same vector");
        }

        Assert.That(Cosine(onA.Output.Embeddings[0].Values, onA.Output.Embeddings[1].Values), Is.LessThan(0.9999), "different texts give different vectors");
        Assert.That(onA.Output.Model, Is.EqualTo(ProvisionedModels.MiniLm), "agents serve the real default model");

        var ledger = new LedgerService.LedgerServiceClient(_channel);
        foreach (var run in new[] { onA, onB })
        {
            var events = (await ledger.ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = _networkId, JobId = run.Job.JobId, PageSize = 100 })).Events;
            Assert.That(events.Select(e => e.EventType), Is.EquivalentTo(new[]
            {
                LedgerEventType.JobStarted, LedgerEventType.JobCompleted, LedgerEventType.CreditsBurned, LedgerEventType.CreditsMinted,
            }), $"ledger of {run.Job.JobId}");
            var burned = events.Single(e => e.EventType == LedgerEventType.CreditsBurned);
            var minted = events.Single(e => e.EventType == LedgerEventType.CreditsMinted);
            Assert.That(burned.AmountMicro, Is.Negative);
            Assert.That(minted.AmountMicro, Is.Positive);
            Assert.That(burned.AmountMicro, Is.EqualTo(-run.Job.CostMicro));
            Assert.That(burned.BilledRuntimeMs, Is.GreaterThanOrEqualTo(run.Job.RuntimeMs));
            Assert.That(burned.BilledRuntimeMs % 1000, Is.Zero, "runtime is rounded up to the 1 s billing granularity");
            Assert.That(minted.DeviceId, Is.EqualTo(run.Job.DeviceId));
            Assert.That(events.Select(e => e.IdempotencyKey), Is.Unique);
        }
    }

    [Test]
    public async Task Ledger_show_reports_balances_that_equal_the_sum_of_events()
    {
        await RunEmbeddingsAsync(new JobService.JobServiceClient(_channel), _agentA.DeviceId, "ledger check");
        var ledger = new LedgerService.LedgerServiceClient(_channel);
        var balances = (await ledger.GetBalancesAsync(new GetBalancesRequest { NetworkId = _networkId })).Balances;
        var events = (await ledger.ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = _networkId, PageSize = 1000 })).Events;
        Assert.That(balances.MintedTotalMicro, Is.EqualTo(events.Where(e => e.EventType == LedgerEventType.CreditsMinted).Sum(e => e.AmountMicro)));
        Assert.That(balances.BurnedTotalMicro, Is.EqualTo(-events.Where(e => e.EventType == LedgerEventType.CreditsBurned).Sum(e => e.AmountMicro)));
        Assert.That(balances.MintedTotalMicro, Is.Positive);

        var cli = await LocalMesh.RunCliAsync(_cliConfig, ["ledger", "show"]);
        Assert.That(cli.ExitCode, Is.Zero, cli.StandardError);
        Assert.That(cli.StandardOutput, Does.Contain("Earned by devices").And.Contain("Spent by jobs").And.Contain("device earned").And.Contain("job paid"));

        var reconciled = await ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = _networkId });
        Assert.That(reconciled.Balanced, Is.True, string.Join("; ", reconciled.Mismatches.Select(m => $"{m.Subject}: {m.Detail}")));
        var reconcileCli = await LocalMesh.RunCliAsync(_cliConfig, ["ledger", "reconcile"]);
        Assert.That(reconcileCli.ExitCode, Is.Zero, reconcileCli.StandardOutput + reconcileCli.StandardError);
    }

    [Test]
    public async Task Unknown_network_is_NOT_FOUND_for_grpc_and_a_clear_cli_message()
    {
        var jobs = new JobService.JobServiceClient(_channel);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope("net_doesnotexist00000000", "hi") }));
        Assert.That(ex!.StatusCode, Is.EqualTo(StatusCode.NotFound));

        var cli = await LocalMesh.RunCliAsync(_cliConfig, ["run", "embeddings", "--network", "net_doesnotexist00000000", "--text", "hi"]);
        Assert.That(cli.ExitCode, Is.EqualTo(1));
        Assert.That(cli.StandardError, Does.Contain("NotFound").Or.Contain("not found"));
        Assert.That(cli.StandardError, Does.Not.Contain("   at "), "no stack trace");
    }

    [Test]
    public async Task Oversized_and_malformed_requests_are_INVALID_ARGUMENT_with_field_violations()
    {
        var jobs = new JobService.JobServiceClient(_channel);
        var huge = Envelope(_networkId, new string('x', 5 * 1024 * 1024));
        var tooBig = await Assert.ThrowsAsync<RpcException>(async () => await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = huge }));
        Assert.That(tooBig!.StatusCode, Is.AnyOf(StatusCode.InvalidArgument, StatusCode.ResourceExhausted));
        if (tooBig.StatusCode == StatusCode.InvalidArgument)
        {
            Assert.That(tooBig.GetRpcStatus()?.GetDetail<BadRequest>()?.FieldViolations.Select(v => v.Field), Has.Some.Contains("payload"));
        }

        var malformed = Envelope(_networkId, "hi");
        malformed.WorkloadId = WorkloadClass.Unspecified;
        var bad = await Assert.ThrowsAsync<RpcException>(async () => await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = malformed }));
        Assert.That(bad!.StatusCode, Is.EqualTo(StatusCode.InvalidArgument));
        Assert.That(bad.GetRpcStatus()?.GetDetail<BadRequest>()?.FieldViolations, Is.Not.Empty);

        var garbage = Envelope(_networkId, "hi");
        garbage.InputManifest.Payload = ByteString.CopyFrom(0xff, 0xff, 0xff, 0x01);
        var notInput = await Assert.ThrowsAsync<RpcException>(async () => await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = garbage }));
        Assert.That(notInput!.StatusCode, Is.EqualTo(StatusCode.InvalidArgument));

        var tooMany = new List<string> { "run", "embeddings" };
        for (var i = 0; i < 300; i++)
        {
            tooMany.AddRange(["--text", "t" + i]);
        }

        var cli = await LocalMesh.RunCliAsync(_cliConfig, tooMany);
        Assert.That(cli.ExitCode, Is.EqualTo(1));
        // One clean CLI line naming the field and the bound, never a stack trace.
        Assert.That(cli.StandardError.Trim(), Does.StartWith("error: invalid envelope.input_manifest.payload.embeddings.texts"));
        Assert.That(cli.StandardError, Does.Contain("1 to 256 texts (got 300)"));
        Assert.That(cli.StandardError.Trim().Split('\n'), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task Expired_join_token_is_refused_with_a_clear_agent_message()
    {
        var devices = new DeviceService.DeviceServiceClient(_channel);
        var join = await devices.CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = _networkId, TtlSeconds = 1 });
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        var state = Path.Combine(_mesh.DataDirectory, "expired-agent");
        await using var run = await ProcessRunner.RunAsync(new ProcessRunnerOptions
        {
            FileName = ProcessRunner.DotnetHostPath,
            Arguments = [RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent"), "join", join.JoinLink, "--state-dir", state],
        }, TimeSpan.FromSeconds(60));
        Assert.That(run.ExitCode, Is.Not.Zero);
        Assert.That(run.Output, Does.Contain("expired").IgnoreCase);
        Assert.That(run.Output, Does.Not.Contain("   at "), "no stack trace");
    }

    [Test]
    public async Task Presence_flips_to_offline_when_an_agent_is_killed_and_its_stream_drops()
    {
        // Its own third agent, so the other tests keep both of theirs whatever order NUnit picks.
        var doomed = await _mesh.StartAgentAsync(await JoinLinkAsync(), "agent-doomed");
        await WaitForDevicesAsync(d => d.Any(x => x.DeviceId == doomed.DeviceId && x.OnlineStatus == OnlineStatus.Online), TimeSpan.FromSeconds(15));
        doomed.Process.Kill();
        var devices = await WaitForDevicesAsync(
            d => d.Single(x => x.DeviceId == doomed.DeviceId).OnlineStatus == OnlineStatus.Offline,
            TimeSpan.FromSeconds(GraceSeconds + 15));
        Assert.That(devices.Single(x => x.DeviceId == _agentA.DeviceId).OnlineStatus, Is.EqualTo(OnlineStatus.Online));

        var cli = await LocalMesh.RunCliAsync(_cliConfig, ["devices", "list", "--json"]);
        Assert.That(cli.ExitCode, Is.Zero, cli.StandardError);
        Assert.That(cli.StandardOutput, Does.Contain("OFFLINE").IgnoreCase);
    }

    [Test]
    public async Task Presence_is_soft_state_a_frozen_agent_stays_online_within_the_grace_then_goes_offline()
    {
        // SIGSTOP keeps the TCP stream open but stops heartbeats: only the grace period can take it offline.
        var frozen = await _mesh.StartAgentAsync(await JoinLinkAsync(), "agent-frozen");
        await WaitForDevicesAsync(d => d.Any(x => x.DeviceId == frozen.DeviceId && x.OnlineStatus == OnlineStatus.Online), TimeSpan.FromSeconds(15));
        Signal("STOP", frozen.Process.Id);
        try
        {
            var stoppedAt = DateTimeOffset.UtcNow;
            var justAfter = (await new DeviceService.DeviceServiceClient(_channel).ListDevicesAsync(new ListDevicesRequest { NetworkId = _networkId })).Devices;
            Assert.That(justAfter.Single(x => x.DeviceId == frozen.DeviceId).OnlineStatus, Is.EqualTo(OnlineStatus.Online), "an open stream without heartbeats stays online until the grace ends");
            await WaitForDevicesAsync(
                d => d.Single(x => x.DeviceId == frozen.DeviceId).OnlineStatus == OnlineStatus.Offline,
                TimeSpan.FromSeconds(GraceSeconds + 15));
            TestContext.Out.WriteLine($"frozen agent went offline {(DateTimeOffset.UtcNow - stoppedAt).TotalSeconds:F1} s after SIGSTOP (grace {GraceSeconds} s, heartbeat 5 s)");
        }
        finally
        {
            Signal("CONT", frozen.Process.Id);
            frozen.Process.Kill();
        }
    }

    private static void Signal(string signal, int pid)
    {
        using var kill = System.Diagnostics.Process.Start("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.That(kill.ExitCode, Is.Zero, $"kill -{signal} {pid}");
    }

    private async Task<IReadOnlyList<Device>> WaitForDevicesAsync(Func<IReadOnlyList<Device>, bool> condition, TimeSpan timeout)
    {
        var client = new DeviceService.DeviceServiceClient(_channel);
        var deadline = DateTimeOffset.UtcNow + timeout;
        IReadOnlyList<Device> devices;
        do
        {
            devices = (await client.ListDevicesAsync(new ListDevicesRequest { NetworkId = _networkId })).Devices;
            if (condition(devices))
            {
                return devices;
            }

            await Task.Delay(250);
        }
        while (DateTimeOffset.UtcNow < deadline);
        Assert.Fail("condition not met; devices: " + string.Join(", ", devices.Select(d => $"{d.Name}={d.OnlineStatus}")));
        return devices;
    }

    private async Task<(Job Job, EmbeddingsOutput Output)> RunEmbeddingsAsync(JobService.JobServiceClient jobs, string deviceId, params string[] texts)
    {
        var envelope = Envelope(_networkId, texts);
        envelope.RoutingMode = RoutingMode.PinnedDevice;
        envelope.ResourceRequest = new ResourceRequest { RequiresPinnedDeviceIdsOptional = { deviceId } };
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
        using var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = _networkId, JobId = job.JobId });
        await foreach (var frame in watch.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                var done = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = _networkId, JobId = job.JobId })).Job;
                Assert.That(done.State, Is.EqualTo(JobState.Completed));
                return (done, WorkloadOutput.Parser.ParseFrom(frame.Result.Output).Embeddings);
            }
        }

        Assert.Fail($"watch of {job.JobId} ended without a result");
        throw new InvalidOperationException();
    }

    private static JobEnvelope Envelope(string networkId, params string[] texts)
    {
        var input = new WorkloadInput { Embeddings = new EmbeddingsInput() };
        input.Embeddings.Texts.Add(texts);
        return new JobEnvelope
        {
            NetworkId = networkId,
            WorkloadId = WorkloadClass.Embeddings,
            RoutingMode = RoutingMode.Auto,
            DataSensitivityTag = DataSensitivityTag.Private,
            TimeoutMs = 60_000,
            InputManifest = new InputManifest { Payload = input.ToByteString() },
            PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
        };
    }

    private static double Cosine(IList<float> a, IList<float> b) =>
        a.Zip(b, (x, y) => (double)x * y).Sum() / Math.Sqrt(a.Sum(x => (double)x * x) * b.Sum(y => (double)y * y));

    private async Task<JsonElement> CliJsonAsync(params string[] arguments)
    {
        var result = await LocalMesh.RunCliAsync(_cliConfig, [.. arguments, "--json"]);
        Assert.That(result.ExitCode, Is.Zero, $"meshnet {string.Join(' ', arguments)}: {result.StandardError}");
        return JsonDocument.Parse(result.StandardOutput).RootElement;
    }

    private async Task<string> JoinLinkAsync()
    {
        var join = await CliJsonAsync("device", "join", "--network", _networkId);
        return join.GetProperty("joinLink").GetString()!;
    }
}

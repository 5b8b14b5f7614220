using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Model.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Signed model manifests per network: an admin publishes (control signs with the network's control key), a real agent
/// fetches as its device (`meshai-agent models fetch`), verifies the signature and every file from a file:// origin,
/// and serves embeddings from the fetched directory; a hash mismatch installs nothing. A manifest published while an agent
/// runs reaches it as a NetworkUpdate: it fetches, verifies and re-announces without a restart.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class ModelManifestEndToEndTests
{
    private const string AdminEmail = "models@example.com";

    private LocalMesh _mesh = null!;
    private string _cliConfig = null!;
    private string _networkId = null!;
    private string _token = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;
    private string _origin = null!;

    /// <summary>Server, admin sign-in, a network and a model origin holding the generated tiny embeddings model.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 10 });
        _cliConfig = Path.Combine(_mesh.DataDirectory, "cli.json");
        _token = await _mesh.SignInWithCliAsync(_cliConfig, AdminEmail);
        _channel = _mesh.Channel(_token);
        _networkId = (await CliJsonAsync("net", "create", "Model Mesh")).GetProperty("networkId").GetString()!;
        _origin = Path.Combine(_mesh.DataDirectory, "origin");
        var generated = await AgentAsync(["models", "generate-tiny", "--out", _origin]);
        Assert.That(generated.ExitCode, Is.Zero, generated.Output);
    }

    /// <summary>Stops everything.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        _channel?.Dispose();
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task A_published_manifest_is_fetched_verified_and_serves_embeddings()
    {
        var models = new ModelService.ModelServiceClient(_channel);
        var published = (await models.PublishModelManifestAsync(new PublishModelManifestRequest { Details = Details("tiny-embed") })).Manifest;
        Assert.That(published.Signature.Length, Is.EqualTo(64));
        Assert.That((await models.ListModelManifestsAsync(new ListModelManifestsRequest { NetworkId = _networkId })).Manifests.Select(m => m.ManifestId), Does.Contain(published.ManifestId));
        var got = (await models.GetModelManifestAsync(new GetModelManifestRequest { NetworkId = _networkId, Name = "tiny-embed" })).Manifest;
        Assert.That(got.Details, Is.EqualTo(published.Details));

        string fetchOutput = "";
        var link = (await CliJsonAsync("device", "join", "--network", _networkId)).GetProperty("joinLink").GetString()!;
        var agent = await _mesh.StartAgentAsync(link, "fetcher", [], state =>
        {
            // Replace the generated default model with the network's: the agent then starts on the fetched directory.
            using var fetch = AgentAsync(["models", "fetch", "--name", "tiny-embed", "--state-dir", state, "--model-origin", new Uri(_origin).AbsoluteUri]).GetAwaiter().GetResult();
            fetchOutput = fetch.Output;
            Assert.That(fetch.ExitCode, Is.Zero, fetch.Output);
        });
        TestContext.Out.WriteLine(fetchOutput);
        Assert.That(fetchOutput, Does.Contain("MESHAI_MODEL_FETCHED name=tiny-embed version=1 files=2"));

        var jobs = new JobService.JobServiceClient(_channel);
        var input = new WorkloadInput { Embeddings = new EmbeddingsInput { Model = "tiny-embed", Texts = { "hello world", "the cat sat on the mat" } } };
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(input, agent.DeviceId) })).Job;
        EmbeddingsOutput? output = null;
        using var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = _networkId, JobId = job.JobId });
        await foreach (var frame in watch.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                output = WorkloadOutput.Parser.ParseFrom(frame.Result.Output).Embeddings;
                break;
            }

            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && frame.Status.Job?.State is JobState.Failed or JobState.Cancelled)
            {
                Assert.Fail($"embeddings job {frame.Status.Job.State}: {frame.Status.Job.ErrorMessage}");
            }
        }

        Assert.That(output, Is.Not.Null);
        Assert.That(output!.Model, Is.EqualTo("tiny-embed"), "the job's model selects the fetched model");
        Assert.That(output.Embeddings, Has.Count.EqualTo(2));
        Assert.That(output.Dimension, Is.EqualTo(32));
    }

    [Test]
    public async Task A_file_whose_hash_does_not_match_the_signed_manifest_is_refused_and_nothing_is_installed()
    {
        var models = new ModelService.ModelServiceClient(_channel);
        var details = Details("tampered-embed");
        details.Files[0].Sha256 = new string('0', 64);
        await models.PublishModelManifestAsync(new PublishModelManifestRequest { Details = details });
        var link = (await CliJsonAsync("device", "join", "--network", _networkId)).GetProperty("joinLink").GetString()!;
        var agent = await _mesh.StartAgentAsync(link, "refuser", [], null);
        var target = Path.Combine(_mesh.DataDirectory, "tampered-target");

        await using var fetch = await AgentAsync(["models", "fetch", "--name", "tampered-embed", "--state-dir", agent.StateDirectory, "--out", target]);

        TestContext.Out.WriteLine(fetch.Output);
        Assert.That(fetch.ExitCode, Is.EqualTo(5));
        Assert.That(fetch.Output, Does.Contain("MESHAI_MODEL_REFUSED name=tampered-embed").And.Contain("SHA-256").And.Contain("does not match"));
        Assert.That(Directory.Exists(target), Is.False, "a mismatching model is never installed");
        Assert.That(Directory.GetDirectories(_mesh.DataDirectory).Where(d => d.Contains("tampered-target", StringComparison.Ordinal)), Is.Empty, "no staging left");
    }

    [Test]
    public async Task An_auto_install_manifest_is_fetched_at_agent_start_advertised_and_selected_by_jobs()
    {
        var models = new ModelService.ModelServiceClient(_channel);
        var details = Details("auto-embed");
        details.AutoInstall = true;
        await models.PublishModelManifestAsync(new PublishModelManifestRequest { Details = details });
        var link = (await CliJsonAsync("device", "join", "--network", _networkId)).GetProperty("joinLink").GetString()!;

        var agent = await _mesh.StartAgentAsync(link, "auto-fetcher", ["--model-origin", new Uri(_origin).AbsoluteUri], null);
        var plainLink = (await CliJsonAsync("device", "join", "--network", _networkId)).GetProperty("joinLink").GetString()!;
        var plain = await _mesh.StartAgentAsync(plainLink, "no-sync", ["--no-model-sync"], null);

        TestContext.Out.WriteLine(agent.Process.OutputTail(20));
        Assert.That(agent.Process.StandardOutputText, Does.Contain("MESHAI_MODEL_FETCHED name=auto-embed version=1").And.Contain("(auto_install)"));
        Assert.That(File.Exists(Path.Combine(agent.StateDirectory, "models", "auto-embed", "manifest.json")), Is.True, "installed into the agent's own cache");
        var devices = new Contracts.Device.V1.DeviceService.DeviceServiceClient(_channel);
        var card = (await devices.ListDevicesAsync(new Contracts.Device.V1.ListDevicesRequest { NetworkId = _networkId, PageSize = 100 })).Devices.Single(d => d.DeviceId == agent.DeviceId);
        var advertised = card.Capabilities.Models.ToDictionary(m => m.Name);
        Assert.That(advertised.Keys, Is.SupersetOf(new[] { "auto-embed", ProvisionedModels.MiniLm, ProvisionedModels.ArcticXs }));
        Assert.That(advertised["auto-embed"].Sha256, Is.EqualTo(details.Files.Single(f => f.Path == "model.onnx").Sha256));
        Assert.That(advertised["auto-embed"].Dimension, Is.EqualTo(32));
        Assert.That(advertised[ProvisionedModels.MiniLm].IsDefault, Is.True);
        Assert.That(advertised[ProvisionedModels.MiniLm].Dimension, Is.EqualTo(384));

        // Not pinned: model_available alone sends it to the only device that has the model.
        var jobs = new JobService.JobServiceClient(_channel);
        var input = new WorkloadInput { Embeddings = new EmbeddingsInput { Model = "auto-embed", Texts = { "hello world" } } };
        var envelope = Envelope(input, agent.DeviceId);
        envelope.RoutingMode = RoutingMode.Auto;
        envelope.ResourceRequest = new ResourceRequest();
        var estimate = await jobs.EstimateJobAsync(new EstimateJobRequest { Envelope = envelope });
        var lacking = estimate.Eligibility.Single(e => e.DeviceId == plain.DeviceId);
        Assert.That(lacking.Eligible, Is.False);
        Assert.That(lacking.FailingFilter, Is.EqualTo(EligibilityFilter.ModelAvailable));
        Assert.That(lacking.Reason, Does.Contain("no model auto-embed").And.Contain(ProvisionedModels.MiniLm));
        Assert.That(plain.Process.StandardOutputText, Does.Not.Contain("MESHAI_MODEL_FETCHED"), "--no-model-sync fetches nothing");
        Assert.That(estimate.Eligibility.Single(e => e.DeviceId == agent.DeviceId).Eligible, Is.True);
        var output = await RunAsync(envelope);
        Assert.That(output.Model, Is.EqualTo("auto-embed"));
        Assert.That(output.Dimension, Is.EqualTo(32));
    }

    [Test]
    public async Task A_model_published_while_an_agent_runs_is_fetched_verified_and_served_without_a_restart()
    {
        // A network of its own: the fixture's other agents are not told about these manifests.
        var networkId = (await CliJsonAsync("net", "create", "Pushed Models")).GetProperty("networkId").GetString()!;
        var link = (await CliJsonAsync("device", "join", "--network", networkId)).GetProperty("joinLink").GetString()!;
        var agent = await _mesh.StartAgentAsync(link, "pushed", ["--model-origin", new Uri(_origin).AbsoluteUri], null);
        var pid = agent.Process.Id;
        var devices = new Contracts.Device.V1.DeviceService.DeviceServiceClient(_channel);
        async Task<IReadOnlyList<string>> AdvertisedAsync() =>
            [.. (await devices.ListDevicesAsync(new Contracts.Device.V1.ListDevicesRequest { NetworkId = networkId, PageSize = 100 }))
                .Devices.Single(d => d.DeviceId == agent.DeviceId).Capabilities.Models.Select(m => m.Name)];
        Assert.That(await AdvertisedAsync(), Does.Not.Contain("pushed-embed").And.Contain(ProvisionedModels.MiniLm));
        var models = new ModelService.ModelServiceClient(_channel);

        // A file whose hash does not match the signed manifest: refused with one clean line, nothing installed or advertised.
        var tampered = Details("pushed-tampered");
        tampered.NetworkId = networkId;
        tampered.AutoInstall = true;
        tampered.Files[0].Sha256 = new string('0', 64);
        await models.PublishModelManifestAsync(new PublishModelManifestRequest { Details = tampered });
        var refused = await agent.Process.WaitForLineAsync("MESHAI_MODEL_REFUSED name=pushed-tampered", TimeSpan.FromSeconds(60));
        Assert.That(refused.IsStandardError, Is.True);
        Assert.That(refused.Text, Does.Contain("SHA-256").And.Contain("does not match").And.Contain("nothing was installed"));
        Assert.That(agent.Process.StandardErrorText, Does.Not.Contain("   at "), "no stack trace");
        Assert.That(Directory.Exists(Path.Combine(agent.StateDirectory, "models", "pushed-tampered")), Is.False);

        // The model the agent lacks: pushed as a NetworkUpdate, fetched, verified, re-announced by the same process.
        var details = Details("pushed-embed");
        details.NetworkId = networkId;
        details.AutoInstall = true;
        await models.PublishModelManifestAsync(new PublishModelManifestRequest { Details = details });
        await agent.Process.WaitForLineAsync("MESHAI_MODEL_FETCHED name=pushed-embed version=1", TimeSpan.FromSeconds(60));
        var deadline = DateTimeOffset.UtcNow.AddSeconds(60);
        while (!(await AdvertisedAsync()).Contains("pushed-embed"))
        {
            Assert.That(DateTimeOffset.UtcNow, Is.LessThan(deadline), "the running agent advertises the fetched model");
            await Task.Delay(250);
        }

        TestContext.Out.WriteLine(agent.Process.OutputTail(20));
        Assert.That(agent.Process.HasExited, Is.False);
        Assert.That(agent.Process.Id, Is.EqualTo(pid), "the same agent process, never restarted");
        Assert.That(Directory.Exists(Path.Combine(agent.StateDirectory, "models", "pushed-tampered")), Is.False, "the tampered model is still refused");
        Assert.That(await AdvertisedAsync(), Does.Not.Contain("pushed-tampered"));

        var list = await CliJsonAsync("models", "list", "--network", networkId);
        var listed = list.GetProperty("models").EnumerateArray().Single(m => m.GetProperty("name").GetString() == "pushed-embed");
        var server = listed.GetProperty("devices").EnumerateArray().Single();
        Assert.That(server.GetProperty("deviceId").GetString(), Is.EqualTo(agent.DeviceId));
        Assert.That(server.GetProperty("sha256").GetString(), Is.EqualTo(details.Files.Single(f => f.Path == "model.onnx").Sha256));

        // Not pinned: the scheduler places it on the device that now serves the model.
        var envelope = Envelope(new WorkloadInput { Embeddings = new EmbeddingsInput { Model = "pushed-embed", Texts = { "hello world", "a pushed model" } } }, agent.DeviceId);
        envelope.NetworkId = networkId;
        envelope.RoutingMode = RoutingMode.Auto;
        envelope.ResourceRequest = new ResourceRequest();
        var estimate = await new JobService.JobServiceClient(_channel).EstimateJobAsync(new EstimateJobRequest { Envelope = envelope });
        Assert.That(estimate.Eligibility.Single(e => e.DeviceId == agent.DeviceId).Eligible, Is.True, estimate.Eligibility.Single(e => e.DeviceId == agent.DeviceId).Reason);
        var output = await RunAsync(envelope);
        Assert.That(output.Model, Is.EqualTo("pushed-embed"));
        Assert.That(output.Embeddings, Has.Count.EqualTo(2));
        Assert.That(output.Dimension, Is.EqualTo(32));
        Assert.That(agent.Process.Id, Is.EqualTo(pid));
    }

    [Test]
    public async Task An_unknown_model_is_invalid_argument_naming_the_available_ones()
    {
        var link = (await CliJsonAsync("device", "join", "--network", _networkId)).GetProperty("joinLink").GetString()!;
        var agent = await _mesh.StartAgentAsync(link, "namer", [], null);
        var jobs = new JobService.JobServiceClient(_channel);
        var input = new WorkloadInput { Embeddings = new EmbeddingsInput { Model = "no-such-model", Texts = { "hello" } } };

        var error = await Assert.ThrowsAsync<RpcException>(async () => await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(input, agent.DeviceId) }));

        Assert.That(error!.StatusCode, Is.EqualTo(StatusCode.InvalidArgument));
        Assert.That(error.Status.Detail, Does.Contain("no-such-model").And.Contain(ProvisionedModels.MiniLm).And.Contain(ProvisionedModels.ArcticXs));
        Assert.That(error.GetRpcStatus()?.GetDetail<Google.Rpc.ErrorInfo>()?.Reason, Is.EqualTo("MODEL_NOT_AVAILABLE"));
        var violation = error.GetRpcStatus()?.GetDetail<Google.Rpc.BadRequest>()?.FieldViolations.Single();
        Assert.That(violation?.Field, Is.EqualTo("envelope.input_manifest.payload"));

        var viaResources = Envelope(new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { "hello" } } }, agent.DeviceId);
        viaResources.ResourceRequest.Model = "no-such-model";
        var second = await Assert.ThrowsAsync<RpcException>(async () => await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = viaResources }));
        Assert.That(second!.GetRpcStatus()?.GetDetail<Google.Rpc.BadRequest>()?.FieldViolations.Single().Field, Is.EqualTo("envelope.resource_request.model"));

        var cli = await LocalMesh.RunCliAsync(_cliConfig, ["run", "embeddings", "--network", _networkId, "--model", "no-such-model", "--text", "hi"]);
        TestContext.Out.WriteLine(cli.StandardError);
        Assert.That(cli.ExitCode, Is.Not.Zero);
        Assert.That(cli.StandardError, Does.Contain("no-such-model").And.Contain(ProvisionedModels.MiniLm).And.Not.Contain("   at "));
    }

    [Test]
    public async Task Models_list_shows_which_devices_serve_which_model()
    {
        var link = (await CliJsonAsync("device", "join", "--network", _networkId)).GetProperty("joinLink").GetString()!;
        var agent = await _mesh.StartAgentAsync(link, "lister", [], null);

        var json = await CliJsonAsync("models", "list", "--network", _networkId);
        var models = json.GetProperty("models").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        var minilm = models[ProvisionedModels.MiniLm];
        Assert.That(minilm.GetProperty("dimension").GetInt32(), Is.EqualTo(384));
        var server = minilm.GetProperty("devices").EnumerateArray().Single(d => d.GetProperty("deviceId").GetString() == agent.DeviceId);
        Assert.That(server.GetProperty("isDefault").GetBoolean(), Is.True);
        Assert.That(server.GetProperty("sha256").GetString(), Is.EqualTo("4a64cee3d4134bbdc86eed96e1a660efec58975417204ecfcf134140edb6e0e2"));
        Assert.That(models.ContainsKey(ProvisionedModels.ArcticXs), Is.True);

        var table = await LocalMesh.RunCliAsync(_cliConfig, ["models", "list", "--network", _networkId]);
        TestContext.Out.WriteLine(table.StandardOutput);
        Assert.That(table.ExitCode, Is.Zero, table.StandardError);
        Assert.That(table.StandardOutput, Does.Contain("MODEL").And.Contain(ProvisionedModels.MiniLm).And.Contain("lister").And.Contain("4a64cee3d413"));
    }

    [Test]
    public async Task Guests_run_embeddings_only_after_the_network_publishes_the_model_as_public()
    {
        var networks = new Contracts.Network.V1.NetworkService.NetworkServiceClient(_channel);
        var invite = (await networks.InviteMemberAsync(new Contracts.Network.V1.InviteMemberRequest
        {
            NetworkId = _networkId, InviteType = Contracts.Network.V1.InviteType.ShareLinkWithApproval, Role = Role.Guest,
        })).InviteLink;
        var guestToken = await _mesh.SignInAsync("guest-models@example.com");
        using var guestChannel = _mesh.Channel(guestToken);
        var pending = (await new Contracts.Network.V1.NetworkService.NetworkServiceClient(guestChannel).AcceptInviteAsync(new Contracts.Network.V1.AcceptInviteRequest { InviteToken = invite })).Member;
        await networks.ApproveMemberAsync(new Contracts.Network.V1.ApproveMemberRequest { NetworkId = _networkId, UserId = pending.UserId });
        var link = (await CliJsonAsync("device", "join", "--network", _networkId)).GetProperty("joinLink").GetString()!;
        var agent = await _mesh.StartAgentAsync(link, "guest-server", [], null);
        var guestJobs = new JobService.JobServiceClient(guestChannel);
        JobEnvelope PublicJob()
        {
            var envelope = Envelope(new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { "public text" } } }, agent.DeviceId);
            envelope.DataSensitivityTag = DataSensitivityTag.Public;
            return envelope;
        }

        // Wait until the device is eligible for a member (first heartbeat processed), so the guest's refusal below is the policy's.
        var adminJobs = new JobService.JobServiceClient(_channel);
        var deadline = DateTimeOffset.UtcNow.AddSeconds(60);
        while (!(await adminJobs.EstimateJobAsync(new EstimateJobRequest { Envelope = PublicJob() })).Eligibility.Single(e => e.DeviceId == agent.DeviceId).Eligible)
        {
            Assert.That(DateTimeOffset.UtcNow, Is.LessThan(deadline), "the new agent becomes eligible for a member");
            await Task.Delay(250);
        }

        var refused = await Assert.ThrowsAsync<RpcException>(async () => await guestJobs.SubmitJobAsync(new SubmitJobRequest { Envelope = PublicJob() }));
        Assert.That(refused!.StatusCode, Is.EqualTo(StatusCode.FailedPrecondition), "the packaged default model is not public until the network says so");
        var explained = await guestJobs.EstimateJobAsync(new EstimateJobRequest { Envelope = PublicJob() });
        var verdict = explained.Eligibility.Single(e => e.DeviceId == agent.DeviceId);
        Assert.That(verdict.FailingFilter, Is.EqualTo(EligibilityFilter.PolicyAllows), verdict.Reason);

        var publish = await LocalMesh.RunCliAsync(_cliConfig, ["models", "publish", "--network", _networkId, "--dir", ProvisionedModels.Directory(ProvisionedModels.MiniLm), "--public"]);
        TestContext.Out.WriteLine(publish.StandardOutput + publish.StandardError);
        Assert.That(publish.ExitCode, Is.Zero, publish.StandardError);
        Assert.That(publish.StandardOutput, Does.Contain("Published all-minilm-l6-v2 v24.9.52193 (2 files, public)"));

        var job = (await guestJobs.SubmitJobAsync(new SubmitJobRequest { Envelope = PublicJob() })).Job;
        Assert.That(job.DeviceId, Is.Empty.Or.EqualTo(agent.DeviceId));
        using var watch = guestJobs.WatchJob(new WatchJobRequest { NetworkId = _networkId, JobId = job.JobId });
        EmbeddingsOutput? output = null;
        await foreach (var frame in watch.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                output = WorkloadOutput.Parser.ParseFrom(frame.Result.Output).Embeddings;
                break;
            }

            Assert.That(frame.Status?.Job?.State, Is.Not.EqualTo(JobState.Failed), frame.Status?.Job?.ErrorMessage);
        }

        Assert.That(output?.Model, Is.EqualTo(ProvisionedModels.MiniLm), "a guest runs the public model");
    }

    [Test]
    public async Task Manifests_are_admin_published_validated_and_not_readable_anonymously()
    {
        var models = new ModelService.ModelServiceClient(_channel);
        var bad = Details("insecure");
        bad.Files[0].Source = "http://models.example.com/model.onnx";
        var invalid = await Assert.ThrowsAsync<RpcException>(async () => await models.PublishModelManifestAsync(new PublishModelManifestRequest { Details = bad }));
        Assert.That(invalid!.StatusCode, Is.EqualTo(StatusCode.InvalidArgument));

        await models.PublishModelManifestAsync(new PublishModelManifestRequest { Details = Details("once") });
        var again = await Assert.ThrowsAsync<RpcException>(async () => await models.PublishModelManifestAsync(new PublishModelManifestRequest { Details = Details("once") }));
        Assert.That(again!.StatusCode, Is.EqualTo(StatusCode.AlreadyExists), "a published version is immutable");

        using var anonymous = _mesh.Channel();
        var client = new ModelService.ModelServiceClient(anonymous);
        var denied = await Assert.ThrowsAsync<RpcException>(async () => await client.GetModelManifestAsync(new GetModelManifestRequest { NetworkId = _networkId, Name = "once" }));
        Assert.That(denied!.StatusCode, Is.EqualTo(StatusCode.Unauthenticated));
        var forged = new Metadata
        {
            { "meshai-device-certificate-bin", new byte[] { 1, 2, 3 } },
            { "meshai-device-timestamp", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture) },
            { "meshai-device-proof-bin", new byte[64] },
        };
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await client.GetModelManifestAsync(new GetModelManifestRequest { NetworkId = _networkId, Name = "once" }, forged));
        Assert.That(refused!.StatusCode, Is.EqualTo(StatusCode.Unauthenticated));
        var publishAnonymously = await Assert.ThrowsAsync<RpcException>(async () => await client.PublishModelManifestAsync(new PublishModelManifestRequest { Details = Details("anon") }));
        Assert.That(publishAnonymously!.StatusCode, Is.EqualTo(StatusCode.Unauthenticated));
    }

    private ModelManifestDetails Details(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_origin, "manifest.json")));
        var root = doc.RootElement;
        var details = new ModelManifestDetails
        {
            NetworkId = _networkId,
            Name = name,
            Version = "1",
            WorkloadClass = WorkloadClass.Embeddings,
            Parameters =
            {
                ["dimension"] = root.GetProperty("dimension").GetInt32().ToString(CultureInfo.InvariantCulture),
                ["max_tokens"] = root.GetProperty("max_tokens").GetInt32().ToString(CultureInfo.InvariantCulture),
                ["model_file"] = root.GetProperty("model_file").GetString()!,
                ["vocab_file"] = root.GetProperty("vocab_file").GetString()!,
            },
        };
        foreach (var file in root.GetProperty("files").EnumerateArray())
        {
            var path = file.GetProperty("path").GetString()!;
            details.Files.Add(new ModelFile
            {
                Path = path,
                Sha256 = file.GetProperty("sha256").GetString()!,
                SizeBytes = file.GetProperty("size").GetInt64(),
                Source = new Uri(Path.Combine(_origin, path)).AbsoluteUri,
            });
        }

        return details;
    }

    private async Task<EmbeddingsOutput> RunAsync(JobEnvelope envelope)
    {
        var jobs = new JobService.JobServiceClient(_channel);
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
        using var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = envelope.NetworkId, JobId = job.JobId });
        await foreach (var frame in watch.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                return WorkloadOutput.Parser.ParseFrom(frame.Result.Output).Embeddings;
            }

            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && frame.Status.Job?.State is JobState.Failed or JobState.Cancelled)
            {
                Assert.Fail($"embeddings job {frame.Status.Job.State}: {frame.Status.Job.ErrorMessage}");
            }
        }

        throw new AssertionException("the watch ended without a result");
    }

    private JobEnvelope Envelope(WorkloadInput input, string deviceId) => new()
    {
        NetworkId = _networkId,
        WorkloadId = WorkloadClass.Embeddings,
        RoutingMode = RoutingMode.PinnedDevice,
        ResourceRequest = new ResourceRequest { RequiresPinnedDeviceIdsOptional = { deviceId } },
        DataSensitivityTag = DataSensitivityTag.Private,
        TimeoutMs = 120_000,
        InputManifest = new InputManifest { Payload = input.ToByteString() },
        PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
    };

    private static Task<ProcessRunner> AgentAsync(IReadOnlyList<string> arguments) =>
        ProcessRunner.RunAsync(
            new ProcessRunnerOptions { FileName = ProcessRunner.DotnetHostPath, Arguments = [RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent"), .. arguments], Name = "meshai-agent-models" },
            TimeSpan.FromSeconds(60));

    private async Task<JsonElement> CliJsonAsync(params string[] args)
    {
        var result = await LocalMesh.RunCliAsync(_cliConfig, [.. args, "--json"]);
        Assert.That(result.ExitCode, Is.Zero, $"meshnet {string.Join(' ', args)}\n{result.StandardError}\n{result.StandardOutput}");
        return JsonDocument.Parse(result.StandardOutput).RootElement;
    }
}

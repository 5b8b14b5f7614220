using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Issue #4 through real processes: key rotation keeps online agents working without a restart and moves them to the new
/// CA on their next connect; revocation cuts a live agent and refuses its reconnect.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class SecurityEndToEndTests
{
    private const string AdminEmail = "security-admin@example.com";
    private LocalMesh _mesh = null!;
    private string _cliConfig = null!;
    private string _networkId = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;

    /// <summary>Server, CLI sign-in, one network.</summary>
    [OneTimeSetUp]
    public async Task StartMeshAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 10 });
        _cliConfig = Path.Combine(_mesh.DataDirectory, "cli.json");
        var token = await _mesh.SignInWithCliAsync(_cliConfig, AdminEmail);
        _channel = _mesh.Channel(token);
        _networkId = (await CliJsonAsync("net", "create", "Security E2E")).GetProperty("networkId").GetString()!;
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
    public async Task Rotated_ca_keeps_every_online_agent_working_without_a_restart_and_reissues_certificates_on_reconnect()
    {
        var agents = new[]
        {
            await _mesh.StartAgentAsync(await JoinLinkAsync(), "rot-a"),
            await _mesh.StartAgentAsync(await JoinLinkAsync(), "rot-b"),
        };
        var before = agents.ToDictionary(a => a.DeviceId, a => StoredCertificate(a));
        var oldCaKeyIds = before.Values.Select(c => c.CaKeyId).Distinct().ToList();
        Assert.That(oldCaKeyIds, Has.Count.EqualTo(1));
        foreach (var agent in agents)
        {
            Assert.That(await RunEmbeddingsAsync(agent.DeviceId, "before rotation"), Is.EqualTo(JobState.Completed));
        }

        var rotated = await new NetworkService.NetworkServiceClient(_channel).RotateNetworkKeysAsync(new RotateNetworkKeysRequest { NetworkId = _networkId });
        Assert.That(rotated.NewCaKeyId, Is.Not.Empty.And.Not.EqualTo(oldCaKeyIds[0]));

        // Same processes, same streams: tickets are still signed with the control key each device was given.
        foreach (var agent in agents)
        {
            Assert.That(await RunEmbeddingsAsync(agent.DeviceId, "after rotation, same stream"), Is.EqualTo(JobState.Completed), agent.Name);
            Assert.That(agent.Process.HasExited, Is.False, agent.Name);
        }

        // Drop every stream (server restart); the agents reconnect on their own and renew from the new CA first.
        var linesBefore = agents.ToDictionary(a => a.DeviceId, a => a.Process.LineCount);
        await _mesh.RestartServerAsync();
        foreach (var agent in agents)
        {
            await agent.Process.WaitForLineAsync("MESHAI_AGENT_ONLINE", TimeSpan.FromSeconds(60), fromIndex: linesBefore[agent.DeviceId]);
        }

        var devices = new DeviceService.DeviceServiceClient(_channel);
        foreach (var agent in agents)
        {
            Assert.That(agent.Process.HasExited, Is.False, $"{agent.Name} was not restarted");
            var renewed = StoredCertificate(agent);
            Assert.That(renewed.CaKeyId, Is.EqualTo(rotated.NewCaKeyId), $"{agent.Name} certificate comes from the new CA");
            Assert.That(renewed.Serial, Is.Not.EqualTo(before[agent.DeviceId].Serial), agent.Name);
            var device = (await devices.GetDeviceAsync(new GetDeviceRequest { NetworkId = _networkId, DeviceId = agent.DeviceId })).Device;
            Assert.That(device.CertificateSerial, Is.EqualTo(renewed.Serial), $"{agent.Name}: control knows the re-issued serial");
            Assert.That(await RunEmbeddingsAsync(agent.DeviceId, "after reconnect"), Is.EqualTo(JobState.Completed), agent.Name);
        }
    }

    [Test]
    public async Task Revoked_device_stream_is_cut_at_once_and_its_reconnect_is_refused_with_a_clear_message()
    {
        var doomed = await _mesh.StartAgentAsync(await JoinLinkAsync(), "revoked-agent");
        Assert.That(await RunEmbeddingsAsync(doomed.DeviceId, "still trusted"), Is.EqualTo(JobState.Completed));

        var revoke = await LocalMesh.RunCliAsync(_cliConfig, ["device", "revoke", doomed.DeviceId, "--reason", "laptop stolen"]);
        Assert.That(revoke.ExitCode, Is.Zero, revoke.StandardError);

        // The relay cuts the live stream; the agent stops with the revoked exit code instead of reconnecting.
        var exitCode = await doomed.Process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.That(exitCode, Is.EqualTo(3), doomed.Process.Output);
        Assert.That(doomed.Process.Output, Does.Contain("MESHAI_AGENT_REVOKED"));

        // Starting it again with the same state dir (same keys, same certificate) is refused with a clear message.
        await using var again = await ProcessRunner.RunAsync(new ProcessRunnerOptions
        {
            FileName = ProcessRunner.DotnetHostPath,
            Arguments = [RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent"), "run", "--state-dir", doomed.StateDirectory],
            Name = "agent-revoked-again",
        }, TimeSpan.FromSeconds(60));
        Assert.That(again.ExitCode, Is.EqualTo(3), again.Output);
        Assert.That(again.Output, Does.Contain("MESHAI_AGENT_REVOKED").And.Contain("revoked").And.Contain("Rejoining needs"));
        Assert.That(again.Output, Does.Not.Contain("MESHAI_AGENT_ONLINE"));
        Assert.That(again.Output, Does.Not.Contain("   at "), "no stack trace");

        // Nothing can be placed on it any more.
        var jobs = new JobService.JobServiceClient(_channel);
        var envelope = Envelope("no revoked device");
        envelope.RoutingMode = RoutingMode.PinnedDevice;
        envelope.ResourceRequest = new ResourceRequest { RequiresPinnedDeviceIdsOptional = { doomed.DeviceId } };
        var state = JobState.Unspecified;
        try
        {
            var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
            state = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = _networkId, JobId = job.JobId })).Job.State;
        }
        catch (RpcException ex)
        {
            TestContext.Out.WriteLine($"pinned submit to the revoked device refused: {ex.StatusCode} {ex.Status.Detail}");
        }

        Assert.That(state, Is.Not.EqualTo(JobState.Completed).And.Not.EqualTo(JobState.Running));
    }

    private static DeviceCertificateDetails StoredCertificate(MeshAgent agent)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(agent.StateDirectory, "enrollment.json")));
        var certificate = DeviceCertificate.Parser.ParseFrom(json.RootElement.GetProperty("certificate").GetBytesFromBase64());
        return DeviceCertificateDetails.Parser.ParseFrom(certificate.Details);
    }

    private async Task<JobState> RunEmbeddingsAsync(string deviceId, string text)
    {
        var jobs = new JobService.JobServiceClient(_channel);
        var envelope = Envelope(text);
        envelope.RoutingMode = RoutingMode.PinnedDevice;
        envelope.ResourceRequest = new ResourceRequest { RequiresPinnedDeviceIdsOptional = { deviceId } };
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
        using var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = _networkId, JobId = job.JobId }, deadline: DateTime.UtcNow.AddSeconds(60));
        await foreach (var frame in watch.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                break;
            }
        }

        var done = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = _networkId, JobId = job.JobId })).Job;
        Assert.That(done.DeviceId, Is.EqualTo(deviceId));
        return done.State;
    }

    private JobEnvelope Envelope(string text)
    {
        var input = new WorkloadInput { Embeddings = new EmbeddingsInput() };
        input.Embeddings.Texts.Add(text);
        return new JobEnvelope
        {
            NetworkId = _networkId,
            WorkloadId = WorkloadClass.Embeddings,
            RoutingMode = RoutingMode.Auto,
            DataSensitivityTag = DataSensitivityTag.Private,
            TimeoutMs = 60_000,
            InputManifest = new InputManifest { Payload = input.ToByteString() },
            PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
        };
    }

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

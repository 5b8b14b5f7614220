using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Agent.Device;
using MeshAI.Agent.Jobs;
using MeshAI.Agent.State;
using MeshAI.Agent.Workloads;
using MeshAI.Common.Crypto;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Relay;

/// <summary>The real agent session (meshai-agent run's core) against the real relay on Kestrel.</summary>
[TestFixture]
[Category("Integration")]
public sealed class AgentOverRelayTests
{
    private RelayTestHost _host = null!;
    private readonly SigningKeyPair _control = SigningKeyPair.Generate();

    [OneTimeSetUp]
    public async Task StartRelay() => _host = await RelayTestHost.StartAsync();

    [OneTimeTearDown]
    public async Task StopRelay() => await _host.DisposeAsync();

    private (AgentEnrollment Enrollment, AgentKeys Keys) Enroll(string deviceId)
    {
        var device = _host.Authority.Issue(deviceId);
        var keys = new AgentKeys("inst_test", device.Keys.PrivateKey, device.Keys.PublicKey, new byte[32], new byte[32]);
        var enrollment = new AgentEnrollment(_host.Url, _host.Fingerprint, _host.Url, "relay-test", deviceId, _host.Authority.NetworkId, "test", device.Certificate.ToByteArray(),
            [new TrustedKey(SigningKeyPair.KeyId(_control.PublicKey), _control.PublicKey, nameof(NetworkKeyPurpose.ControlSigning), null)]);
        return (enrollment, keys);
    }

    private JobOffer EchoOffer(string deviceId, string jobId, byte[] data)
    {
        var envelope = new JobEnvelope
        {
            JobId = jobId,
            NetworkId = _host.Authority.NetworkId,
            WorkloadId = MeshAI.Contracts.Common.V1.WorkloadClass.DiagnosticEcho,
            InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFrom(data), DelayMs = 50 } }.ToByteString() },
        }.ToByteString();
        var details = new PlacementTicketDetails
        {
            JobId = jobId, Attempt = 1, DeviceId = deviceId, NetworkId = _host.Authority.NetworkId,
            EnvelopeSha256 = Secrets.Sha256Hex(envelope.Span), ExpireTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddMinutes(1)),
        };
        return new JobOffer { Ticket = PlacementTickets.Sign(details, _control), Envelope = envelope };
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!condition())
        {
            await Task.Delay(20, cts.Token);
        }
    }

    [Test]
    public async Task Agent_goes_online_runs_an_offered_echo_job_and_the_result_reaches_the_sink()
    {
        var deviceId = "dev_" + Guid.NewGuid().ToString("N")[..20];
        var (enrollment, keys) = Enroll(deviceId);
        using var registry = new WorkloadRegistry([new EchoHandler()]);
        var announced = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var session = new RelaySession(enrollment, keys, new LinuxDeviceStateProvider(), registry,
            new OfferVerifier(enrollment.ControlKeys, deviceId, enrollment.NetworkId), NullLogger.Instance, announced.Enqueue);
        using var channel = _host.CreateChannel();
        using var stop = new CancellationTokenSource();
        var run = session.RunAsync(new RelayService.RelayServiceClient(channel), stop.Token);

        var presence = _host.Services.GetRequiredService<IPresenceDirectory>();
        await WaitUntil(() => !announced.IsEmpty && presence.GetOnline(deviceId, DateTimeOffset.UtcNow)?.Capabilities.Workloads.Count > 0);
        Assert.That(announced, Does.Contain($"MESHAI_AGENT_ONLINE device_id={deviceId}"));

        var dispatcher = _host.Services.GetRequiredService<IJobDispatcher>();
        Assert.That(dispatcher.TryOffer(deviceId, EchoOffer(deviceId, "job_echo", [1, 2, 3])), Is.True);

        var accept = await _host.Sink.NextAsync(deviceId);
        var progress = await _host.Sink.NextAsync(deviceId);
        var result = await _host.Sink.NextAsync(deviceId);
        Assert.That(accept.Kind, Is.EqualTo("accept"));
        Assert.That(progress.Kind, Is.EqualTo("progress"));
        Assert.That(result.Kind, Is.EqualTo("result"), (result.Frame as JobFailure)?.Error);
        var jobResult = (JobResult)result.Frame!;
        Assert.That(WorkloadOutput.Parser.ParseFrom(jobResult.Output).Echo.Data.ToByteArray(), Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.That(jobResult.Metering.RuntimeMs, Is.GreaterThanOrEqualTo(40));
        Assert.That(jobResult.Metering.Tier, Is.Not.EqualTo(MeshAI.Contracts.Common.V1.Tier.Unspecified));
        Assert.That(result.RelayBytes, Is.GreaterThan(0));

        Assert.That(dispatcher.TryOffer(deviceId, EchoOffer(deviceId, "job_echo", [1, 2, 3])), Is.True, "the relay delivers; the agent must refuse the replay");
        var decline = await _host.Sink.NextAsync(deviceId);
        Assert.That(decline.Kind, Is.EqualTo("decline"));
        Assert.That(((JobDecline)decline.Frame!).Reason, Is.EqualTo(DeclineReason.Replayed));

        _host.Authority.Revoke(deviceId);
        dispatcher.Cut(deviceId, CutReason.Revoked, "revoked by admin");
        var end = await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(end.Cut, Is.EqualTo(CutReason.Revoked));
    }
}

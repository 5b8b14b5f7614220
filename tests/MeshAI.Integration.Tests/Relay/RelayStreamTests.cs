using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Relay.V1;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Relay;

[TestFixture]
[Category("Integration")]
public sealed class RelayStreamTests
{
    private const string RelayId = "relay-test";
    private RelayTestHost _host = null!;

    [OneTimeSetUp]
    public async Task StartRelay() => _host = await RelayTestHost.StartAsync();

    [OneTimeTearDown]
    public async Task StopRelay() => await _host.DisposeAsync();

    private static string NewDeviceId() => "dev_" + Guid.NewGuid().ToString("N")[..20];

    [Test]
    public async Task Device_with_a_certificate_from_the_network_CA_is_welcomed_and_online()
    {
        var device = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);

        var welcome = await stream.HandshakeAsync(device, RelayId);

        Assert.That(welcome.FrameCase, Is.EqualTo(ConnectResponse.FrameOneofCase.Welcome));
        Assert.That(welcome.Welcome.DeviceId, Is.EqualTo(device.DeviceId));
        Assert.That(welcome.Welcome.RelayId, Is.EqualTo(RelayId));
        Assert.That(welcome.Welcome.HeartbeatIntervalMs, Is.EqualTo(5000));
        Assert.That(welcome.Welcome.GraceMs, Is.EqualTo(20_000));
        var presence = _host.Services.GetRequiredService<IPresenceDirectory>();
        Assert.That(presence.GetOnline(device.DeviceId, DateTimeOffset.UtcNow)?.NetworkId, Is.EqualTo(_host.Authority.NetworkId));

        await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = 7, ContributionEnabled = true, Capabilities = new() { CpuCores = 8, NetworkRttMs = 3 } } });
        var ack = await stream.NextAsync();
        Assert.That(ack.HeartbeatAck.Sequence, Is.EqualTo(7));
        var record = presence.GetOnline(device.DeviceId, DateTimeOffset.UtcNow)!;
        Assert.That(record.ContributionEnabled, Is.True);
        Assert.That(record.Capabilities.CpuCores, Is.EqualTo(8));
        Assert.That(record.RttMs, Is.EqualTo(3));
    }

    /// <summary>An agent below protocol 4 (sparse acknowledgements, issue #11) keeps getting an acknowledgement for every heartbeat.</summary>
    [TestCase(0)]
    [TestCase(3)]
    public async Task An_agent_below_protocol_4_gets_every_heartbeat_acknowledged(int protocol)
    {
        var device = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);

        var welcome = await stream.HandshakeAsync(device, RelayId, protocol: protocol);

        Assert.That(welcome.Welcome.ProtocolVersion, Is.EqualTo(Math.Max(1, protocol)));
        Assert.That(welcome.Welcome.HeartbeatAckEvery, Is.Zero, "0: every heartbeat, what older agents expect");
        for (var sequence = 1; sequence <= 5; sequence++)
        {
            await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = sequence } });
            Assert.That((await NextNotUpdateAsync(stream)).HeartbeatAck?.Sequence, Is.EqualTo(sequence));
        }
    }

    [Test]
    public async Task Wrong_challenge_signature_is_refused()
    {
        var device = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);

        var answer = await stream.HandshakeAsync(device, RelayId, signer: SigningKeyPair.Generate());

        Assert.That(answer.FrameCase, Is.EqualTo(ConnectResponse.FrameOneofCase.Cut));
        Assert.That(answer.Cut.Reason, Is.EqualTo(CutReason.AuthFailed));
        var ex = await Assert.ThrowsAsync<RpcException>(() => stream.NextAsync());
        Assert.That(ex!.StatusCode, Is.EqualTo(StatusCode.Unauthenticated));
    }

    [Test]
    public async Task Certificate_from_a_foreign_CA_is_refused()
    {
        var foreign = TestAuthority.Issue(SigningKeyPair.Generate(), _host.Authority.NetworkId, NewDeviceId());
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);

        var answer = await stream.HandshakeAsync(foreign, RelayId);

        Assert.That(answer.FrameCase, Is.EqualTo(ConnectResponse.FrameOneofCase.Cut));
        Assert.That(answer.Cut.Reason, Is.EqualTo(CutReason.AuthFailed));
        Assert.That(answer.Cut.Detail, Does.Contain("unknown CA"));
        var ex = await Assert.ThrowsAsync<RpcException>(() => stream.NextAsync());
        Assert.That(ex!.StatusCode, Is.EqualTo(StatusCode.PermissionDenied));
    }

    [Test]
    public async Task First_frame_other_than_hello_is_refused()
    {
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);

        await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat() });
        var answer = await stream.NextAsync();

        Assert.That(answer.Cut.Reason, Is.EqualTo(CutReason.AuthFailed));
    }

    [Test]
    public async Task A_revoked_device_stream_is_cut_at_a_heartbeat_once_the_network_serial_moved()
    {
        var device = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);
        await stream.HandshakeAsync(device, RelayId);

        // No cut command and no pushed update reach the relay (both lost): the revocation's serial is found by the relay's
        // per-network poll (at most one heartbeat interval old) and the next heartbeat re-reads the revocation.
        _host.Authority.Revoke(device.DeviceId);
        var cut = await HeartbeatUntilCutAsync(stream);

        Assert.That(cut.Reason, Is.EqualTo(CutReason.Revoked));
        var ex = await Assert.ThrowsAsync<RpcException>(() => stream.NextAsync());
        Assert.That(ex!.StatusCode, Is.EqualTo(StatusCode.PermissionDenied));
        Assert.That(MeshAI.Common.Errors.RpcErrors.ReasonOf(ex), Is.EqualTo(MeshAI.Common.Errors.ErrorReasons.DeviceRevoked));
        Assert.That(_host.Services.GetRequiredService<IPresenceDirectory>().GetOnline(device.DeviceId, DateTimeOffset.UtcNow), Is.Null);
    }

    [Test]
    public async Task A_network_update_naming_a_device_as_revoked_cuts_its_stream_at_once()
    {
        var device = _host.Authority.Issue(NewDeviceId());
        var bystander = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);
        using var other = new TestAgentStream(channel);
        await stream.HandshakeAsync(device, RelayId);
        await other.HandshakeAsync(bystander, RelayId);

        var hub = _host.Services.GetRequiredService<MeshAI.Relay.Core.RelayHub>();
        hub.PushNetworkUpdate(_host.Authority.NetworkId, new NetworkUpdate { Serial = 1_000, RevokedDeviceIds = { device.DeviceId } });

        var cut = await stream.NextAsync();
        Assert.That(cut.Cut?.Reason, Is.EqualTo(CutReason.Revoked), "cut without waiting for a heartbeat");
        await other.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = 1 } });
        Assert.That((await NextNotUpdateAsync(other)).HeartbeatAck?.Sequence, Is.EqualTo(1), "the other device of the network keeps its stream");
    }

    [Test]
    public async Task Heartbeats_do_not_read_the_revocation_while_the_network_serial_stays()
    {
        var device = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);
        await stream.HandshakeAsync(device, RelayId);
        // Let a first check (the serial this stream was authenticated under) happen, then count.
        await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = 1 } });
        await NextNotUpdateAsync(stream);
        await Task.Delay(200);
        var before = _host.Authority.RevocationReads;

        for (var i = 2; i <= 6; i++)
        {
            await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = i } });
            Assert.That((await NextNotUpdateAsync(stream)).HeartbeatAck?.Sequence, Is.EqualTo(i));
        }

        await Task.Delay(200);
        Assert.That(_host.Authority.RevocationReads - before, Is.LessThanOrEqualTo(1),
            "five heartbeats with the network serial unchanged: no revocation read each (at most one from a moved serial of another test)");
    }

    /// <summary>Sends a heartbeat every 200 ms until a Cut arrives (at most 30 s).</summary>
    private static async Task<Cut> HeartbeatUntilCutAsync(TestAgentStream stream)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var sequence = 1L;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = sequence++ } });
            }
            catch (RpcException)
            {
                // The relay already ended the call: what it sent before (acks, the cut) is still to be read.
            }

            var frame = await stream.NextAsync();
            if (frame.FrameCase == ConnectResponse.FrameOneofCase.Cut)
            {
                return frame.Cut;
            }

            await Task.Delay(200);
        }

        throw new AssertionException("no cut within 30 s of heartbeats");
    }

    private static async Task<ConnectResponse> NextNotUpdateAsync(TestAgentStream stream)
    {
        while (true)
        {
            var frame = await stream.NextAsync();
            if (frame.FrameCase != ConnectResponse.FrameOneofCase.NetworkUpdate)
            {
                return frame;
            }
        }
    }

    [Test]
    public async Task Dispatcher_cut_ends_the_stream_at_once()
    {
        var device = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);
        await stream.HandshakeAsync(device, RelayId);

        var dispatcher = _host.Services.GetRequiredService<IJobDispatcher>();
        Assert.That(dispatcher.Cut(device.DeviceId, CutReason.Revoked, "admin revoked"), Is.True);

        var cut = await stream.NextAsync();
        Assert.That(cut.Cut.Reason, Is.EqualTo(CutReason.Revoked));
        Assert.That(cut.Cut.Detail, Is.EqualTo("admin revoked"));
    }

    [Test]
    public async Task A_second_stream_for_the_same_device_replaces_the_first()
    {
        var device = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var first = new TestAgentStream(channel);
        await first.HandshakeAsync(device, RelayId);
        using var second = new TestAgentStream(channel);
        var welcome = await second.HandshakeAsync(device, RelayId);

        var cut = await first.NextAsync();

        Assert.That(welcome.FrameCase, Is.EqualTo(ConnectResponse.FrameOneofCase.Welcome));
        Assert.That(cut.Cut.Reason, Is.EqualTo(CutReason.Replaced));
        await Task.Delay(200);
        Assert.That(_host.Services.GetRequiredService<IPresenceDirectory>().GetOnline(device.DeviceId, DateTimeOffset.UtcNow), Is.Not.Null,
            "the replacing stream keeps the device online");
        Assert.That(_host.Services.GetRequiredService<IJobDispatcher>().TryCancel(device.DeviceId, new JobCancel { JobId = "job_none", Attempt = 1 }), Is.False);
    }

    [Test]
    public async Task Offer_accept_result_reaches_the_sink_with_relay_bytes_counted()
    {
        var device = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);
        await stream.HandshakeAsync(device, RelayId);
        var control = SigningKeyPair.Generate();
        var envelope = ByteString.CopyFromUtf8("serialized envelope");
        var offer = new JobOffer
        {
            Ticket = PlacementTickets.Sign(new PlacementTicketDetails
            {
                JobId = "job_1", Attempt = 1, DeviceId = device.DeviceId, NetworkId = _host.Authority.NetworkId,
                EnvelopeSha256 = Secrets.Sha256Hex(envelope.Span), ExpireTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddMinutes(1)),
            }, control),
            Envelope = envelope,
        };

        Assert.That(_host.Services.GetRequiredService<IJobDispatcher>().TryOffer(device.DeviceId, offer), Is.True);
        var received = await stream.NextAsync();
        Assert.That(received.JobOffer, Is.EqualTo(offer));

        var accept = new ConnectRequest { JobAccept = new JobAccept { JobId = "job_1", Attempt = 1 } };
        var progress = new ConnectRequest { JobProgress = new JobProgress { JobId = "job_1", Attempt = 1, Fraction = 0.5 } };
        var result = new ConnectRequest
        {
            JobResult = new JobResult { JobId = "job_1", Attempt = 1, Output = ByteString.CopyFrom(new byte[1000]), Metering = new Metering { RuntimeMs = 5 } },
        };
        await stream.SendAsync(accept);
        await stream.SendAsync(progress);
        await stream.SendAsync(result);

        var acceptEvent = await _host.Sink.NextAsync(device.DeviceId);
        var progressEvent = await _host.Sink.NextAsync(device.DeviceId);
        var resultEvent = await _host.Sink.NextAsync(device.DeviceId);
        Assert.That(acceptEvent.Kind, Is.EqualTo("accept"));
        Assert.That(acceptEvent.Device.DeviceId, Is.EqualTo(device.DeviceId));
        Assert.That(progressEvent.Kind, Is.EqualTo("progress"));
        Assert.That(resultEvent.Kind, Is.EqualTo("result"));
        Assert.That(resultEvent.Frame, Is.EqualTo(result.JobResult));
        var expected = received.CalculateSize() + accept.CalculateSize() + progress.CalculateSize() + result.CalculateSize();
        Assert.That(resultEvent.RelayBytes, Is.EqualTo(expected));
        Assert.That(resultEvent.RelayBytes, Is.GreaterThan(1000));

        await stream.CompleteAsync();
        var disconnected = await _host.Sink.NextAsync(device.DeviceId);
        Assert.That(disconnected.Kind, Is.EqualTo("disconnected"));
        Assert.That(disconnected.Device.DeviceId, Is.EqualTo(device.DeviceId));
    }

    [Test]
    public async Task Frames_about_jobs_not_offered_to_the_device_are_ignored()
    {
        var device = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);
        await stream.HandshakeAsync(device, RelayId);

        await stream.SendAsync(new ConnectRequest { JobResult = new JobResult { JobId = "job_someone_elses", Attempt = 1 } });
        await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = 1 } });
        await stream.NextAsync();
        await stream.CompleteAsync();

        var next = await _host.Sink.NextAsync(device.DeviceId);
        Assert.That(next.Kind, Is.EqualTo("disconnected"), "the foreign result never reached the sink");
    }

    private static readonly string[] OneDisconnect = ["disconnected"];
    private static readonly CutReason[] ReplacedOnly = [CutReason.Replaced];

    [Test]
    public async Task A_stream_replaced_by_a_newer_one_of_the_same_device_is_not_reported_as_a_disconnect()
    {
        var device = _host.Authority.Issue(NewDeviceId());
        using var channel = _host.CreateChannel();
        using var first = new TestAgentStream(channel);
        await first.HandshakeAsync(device, RelayId);
        using var second = new TestAgentStream(channel);
        await second.HandshakeAsync(device, RelayId);

        var cut = (await first.DrainAsync()).Where(f => f.Cut is not null).Select(f => f.Cut.Reason).ToList();
        Assert.That(cut, Is.EqualTo(ReplacedOnly), "the older stream is cut as replaced and ends");
        Assert.That(_host.Sink.Pending(device.DeviceId), Is.Zero, "no disconnect while the device is online on the newer stream");

        await second.CompleteAsync();
        await second.DrainAsync();
        var events = new List<string>();
        while (_host.Sink.Pending(device.DeviceId) > 0)
        {
            events.Add((await _host.Sink.NextAsync(device.DeviceId)).Kind);
        }

        Assert.That(events, Is.EqualTo(OneDisconnect), "the newer stream's end is the one disconnect");
    }

    [Test]
    public async Task Offer_to_a_device_without_a_stream_is_refused()
    {
        var dispatcher = _host.Services.GetRequiredService<IJobDispatcher>();
        Assert.That(dispatcher.TryOffer("dev_nobody", new JobOffer()), Is.False);
        Assert.That(dispatcher.Cut("dev_nobody", CutReason.Revoked, ""), Is.False);
        await Task.CompletedTask;
    }
}

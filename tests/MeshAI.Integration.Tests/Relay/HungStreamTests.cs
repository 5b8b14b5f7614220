using Grpc.Core;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Relay.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Relay;

/// <summary>
/// A hung or partitioned agent keeps its TCP connection (and so its stream) open but stops sending heartbeats: the relay's
/// watchdog cuts the stream once the grace period (20 s here) passes without one, so the device's jobs go elsewhere instead
/// of waiting for the transport to notice. The relay runs on a fake clock: nothing waits for real seconds.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class HungStreamTests
{
    private const string RelayId = "relay-test";
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private RelayTestHost _host = null!;

    [OneTimeSetUp]
    public async Task StartRelay() => _host = await RelayTestHost.StartAsync(_clock);

    [OneTimeTearDown]
    public async Task StopRelay() => await _host.DisposeAsync();

    [Test]
    public async Task A_stream_that_stops_heartbeating_is_cut_after_the_grace_period_and_every_heartbeat_rearms_the_watchdog()
    {
        var device = _host.Authority.Issue("dev_" + Guid.NewGuid().ToString("N")[..20]);
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);
        await stream.HandshakeAsync(device, RelayId);

        // Heartbeats every 15 s: 45 s pass in all, more than the 20 s grace, and the stream stays (each one re-arms the watchdog).
        for (var sequence = 1; sequence <= 3; sequence++)
        {
            await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = sequence } });
            var ack = await stream.NextAsync();
            Assert.That(ack.FrameCase, Is.EqualTo(ConnectResponse.FrameOneofCase.HeartbeatAck), "heartbeat " + sequence);
            Assert.That(ack.HeartbeatAck.Sequence, Is.EqualTo(sequence));
            _clock.Advance(TimeSpan.FromSeconds(15));
        }

        Assert.That(_host.Services.GetRequiredService<IPresenceDirectory>().GetOnline(device.DeviceId, _clock.GetUtcNow()), Is.Not.Null);

        // Then silence: 6 more seconds make 21 s since the last heartbeat.
        _clock.Advance(TimeSpan.FromSeconds(6));
        var cut = await stream.NextAsync();
        Assert.That(cut.FrameCase, Is.EqualTo(ConnectResponse.FrameOneofCase.Cut));
        Assert.That(cut.Cut.Reason, Is.EqualTo(CutReason.HeartbeatTimeout));
        var disconnected = await _host.Sink.NextAsync(device.DeviceId);
        Assert.That(disconnected.Kind, Is.EqualTo("disconnected"), "control is told, so the device's jobs are offered elsewhere");
        Exception? ended = null;
        try
        {
            await stream.NextAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException)
        {
            ended = e;
        }

        Assert.That(ended, Is.Not.Null, "the stream ends after the cut");
    }

    /// <summary>
    /// Protocol 4 (sparse acknowledgements, issue #11): the relay announces that it acknowledges every 2nd heartbeat (5 s
    /// interval, 20 s grace: at least every grace / 2) and heartbeat 1; a heartbeat it does not acknowledge still counts
    /// for presence and re-arms the watchdog, and a silent stream is still cut one grace after its last heartbeat.
    /// </summary>
    [Test]
    public async Task Protocol_4_acknowledges_every_second_heartbeat_and_a_silent_stream_is_still_cut_after_the_grace()
    {
        var device = _host.Authority.Issue("dev_" + Guid.NewGuid().ToString("N")[..20]);
        using var channel = _host.CreateChannel();
        using var stream = new TestAgentStream(channel);
        var welcome = await stream.HandshakeAsync(device, RelayId, protocol: 4);
        Assert.That(welcome.Welcome.ProtocolVersion, Is.EqualTo(4));
        Assert.That(welcome.Welcome.HeartbeatAckEvery, Is.EqualTo(2), "an acknowledgement at least every grace / 2 = 10 s at 5 s heartbeats");

        // Heartbeats 1..4 in one go: acknowledged are 1 (the agent goes online on it), 2 and 4; not 3.
        for (var sequence = 1; sequence <= 4; sequence++)
        {
            await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = sequence } });
        }

        var acked = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            var ack = await stream.NextAsync();
            Assert.That(ack.FrameCase, Is.EqualTo(ConnectResponse.FrameOneofCase.HeartbeatAck));
            acked.Add(ack.HeartbeatAck.Sequence);
        }

        Assert.That(acked, Is.EqualTo(new long[] { 1, 2, 4 }));

        // An unacknowledged heartbeat (5) 15 s later: presence takes its capabilities and it re-arms the watchdog, so 15 s
        // more (30 s since the last acknowledged one) the stream is still up and heartbeat 6 is acknowledged.
        var presence = _host.Services.GetRequiredService<IPresenceDirectory>();
        _clock.Advance(TimeSpan.FromSeconds(15));
        await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = 5, Capabilities = new() { CpuCores = 5 } } });
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (presence.GetOnline(device.DeviceId, _clock.GetUtcNow())?.Capabilities.CpuCores != 5 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.That(presence.GetOnline(device.DeviceId, _clock.GetUtcNow())?.Capabilities.CpuCores, Is.EqualTo(5), "an unacknowledged heartbeat still updates presence");
        _clock.Advance(TimeSpan.FromSeconds(15));
        await stream.SendAsync(new ConnectRequest { Heartbeat = new Heartbeat { Sequence = 6 } });
        var sixth = await stream.NextAsync();
        Assert.That(sixth.FrameCase, Is.EqualTo(ConnectResponse.FrameOneofCase.HeartbeatAck), "heartbeat 5 re-armed the watchdog");
        Assert.That(sixth.HeartbeatAck.Sequence, Is.EqualTo(6));

        // Then silence: 21 s after heartbeat 6 the stream is cut, as for any protocol.
        _clock.Advance(TimeSpan.FromSeconds(21));
        var cut = await stream.NextAsync();
        Assert.That(cut.FrameCase, Is.EqualTo(ConnectResponse.FrameOneofCase.Cut));
        Assert.That(cut.Cut.Reason, Is.EqualTo(CutReason.HeartbeatTimeout));
        Assert.That((await _host.Sink.NextAsync(device.DeviceId)).Kind, Is.EqualTo("disconnected"));
    }
}

using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Crypto;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Relay.Core;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Relay;

[TestFixture]
[Category("Unit")]
public sealed class DeviceConnectionTests
{
    private static readonly ConnectResponse.FrameOneofCase[] Expected = [ConnectResponse.FrameOneofCase.Cut];
    private static readonly DeviceIdentity Device = new("dev_a", "net_1", "usr_1", new byte[32], "ser_1");

    private static JobOffer Offer(string deviceId, string jobId, int attempt = 1) => new()
    {
        Ticket = PlacementTickets.Sign(
            new PlacementTicketDetails { JobId = jobId, Attempt = attempt, DeviceId = deviceId, NetworkId = "net_1", ExpireTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddMinutes(1)) },
            SigningKeyPair.Generate()),
        Envelope = ByteString.CopyFromUtf8("envelope"),
    };

    [Test]
    public void Bytes_of_the_offer_and_every_inbound_frame_are_counted_until_the_result()
    {
        var connection = new DeviceConnection(Device, 8, 8);
        var offer = Offer("dev_a", "job_1");
        Assert.That(connection.TryOffer(offer, out _), Is.True);
        var offerBytes = new ConnectResponse { JobOffer = offer }.CalculateSize();

        Assert.That(connection.TryCountInbound("job_1", 1, "", 10, close: false, out var afterAccept), Is.True);
        Assert.That(connection.TryCountInbound("job_1", 1, null, 5, close: false, out _), Is.True);
        Assert.That(connection.TryCountInbound("job_1", 1, "", 100, close: true, out var total), Is.True);

        Assert.That(afterAccept, Is.EqualTo(offerBytes + 10));
        Assert.That(total, Is.EqualTo(offerBytes + 115));
        Assert.That(connection.OpenJobs(), Is.Empty);
    }

    [Test]
    public void Frames_for_jobs_never_offered_to_the_device_are_not_accepted()
    {
        var connection = new DeviceConnection(Device, 8, 8);
        connection.TryOffer(Offer("dev_a", "job_1"), out _);

        Assert.That(connection.TryCountInbound("job_2", 1, "", 10, close: true, out _), Is.False);
        Assert.That(connection.TryCountInbound("job_1", 2, "", 10, close: true, out _), Is.False);
    }

    [Test]
    public void Offer_whose_ticket_names_another_device_is_refused()
    {
        var connection = new DeviceConnection(Device, 8, 8);

        Assert.That(connection.TryOffer(Offer("dev_b", "job_1"), out var reason), Is.False);
        Assert.That(reason, Does.Contain("not for this device"));
    }

    [Test]
    public void Offers_are_refused_when_the_outbound_queue_is_full()
    {
        var connection = new DeviceConnection(Device, 2, 8);

        Assert.That(connection.TryOffer(Offer("dev_a", "job_1"), out _), Is.True);
        Assert.That(connection.TryOffer(Offer("dev_a", "job_2"), out _), Is.True);
        Assert.That(connection.TryOffer(Offer("dev_a", "job_3"), out _), Is.False);
    }

    [Test]
    public async Task A_cut_jumps_the_queue_and_ends_the_writer()
    {
        var connection = new DeviceConnection(Device, 8, 8);
        connection.TryOffer(Offer("dev_a", "job_1"), out _);
        connection.Cut(CutReason.Revoked, "revoked");
        var written = new List<ConnectResponse>();

        await connection.RunWriterAsync((frame, _) =>
        {
            written.Add(frame);
            return Task.CompletedTask;
        }, CancellationToken.None);

        Assert.That(written.Select(f => f.FrameCase).ToList(), Is.EqualTo(Expected));
        Assert.That(connection.TryOffer(Offer("dev_a", "job_2"), out _), Is.False);
    }

    /// <summary>Sparse heartbeat acknowledgements (protocol 4, issue #11): one at least every grace / 2, never fewer than every heartbeat.</summary>
    [TestCase(5000, 20, 2)]
    [TestCase(1000, 20, 10)]
    [TestCase(15_000, 20, 1)]
    [TestCase(600_000, 1, 1)]
    public void Heartbeats_per_acknowledgement_keep_one_at_least_every_half_grace(int intervalMs, int graceSeconds, int expected)
    {
        var options = new RelayOptions { HeartbeatIntervalMs = intervalMs, HeartbeatGraceSeconds = graceSeconds };
        Assert.That(options.HeartbeatAckEvery, Is.EqualTo(expected));
        Assert.That(options.HeartbeatAckEvery * (long)intervalMs, Is.LessThanOrEqualTo(Math.Max(intervalMs, graceSeconds * 500L)));
    }

    [Test]
    public void Protocol_4_streams_acknowledge_heartbeat_1_and_every_nth_older_ones_every_heartbeat()
    {
        Assert.That(new DeviceConnection(Device, 8, 8, protocol: 4, heartbeatAckEvery: 3).HeartbeatAckEvery, Is.EqualTo(3));
        Assert.That(new DeviceConnection(Device, 8, 8, protocol: 3, heartbeatAckEvery: 3).HeartbeatAckEvery, Is.Zero, "an older agent expects every acknowledgement");
        long[] acknowledged = [.. Enumerable.Range(1, 9).Select(i => (long)i).Where(s => RelayOptions.AcknowledgesHeartbeat(s, 3))];
        Assert.That(acknowledged, Is.EqualTo(new long[] { 1, 3, 6, 9 }));
        Assert.That(Enumerable.Range(1, 9).All(s => RelayOptions.AcknowledgesHeartbeat(s, 0) && RelayOptions.AcknowledgesHeartbeat(s, 1)), Is.True);
    }
}

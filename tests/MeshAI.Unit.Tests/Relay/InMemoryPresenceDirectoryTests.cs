using MeshAI.Common.Seams;
using MeshAI.Contracts.Device.V1;
using MeshAI.Relay.Core;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Relay;

[TestFixture]
[Category("Unit")]
public sealed class InMemoryPresenceDirectoryTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    private static PresenceRecord Record(string device, string network, DateTimeOffset seen) =>
        new(device, network, "relay-local", new CapabilityReport { CpuCores = 4 }, true, seen, 12);

    [Test]
    public void Device_is_online_until_the_grace_period_has_passed()
    {
        var directory = new InMemoryPresenceDirectory(TimeSpan.FromSeconds(20));
        directory.Upsert(Record("dev_a", "net_1", T0));

        Assert.That(directory.GetOnline("dev_a", T0.AddSeconds(20)), Is.Not.Null);
        Assert.That(directory.GetOnline("dev_a", T0.AddSeconds(20.001)), Is.Null);
    }

    [Test]
    public void A_heartbeat_extends_the_grace_period()
    {
        var directory = new InMemoryPresenceDirectory(TimeSpan.FromSeconds(20));
        directory.Upsert(Record("dev_a", "net_1", T0));
        directory.Upsert(Record("dev_a", "net_1", T0.AddSeconds(15)));

        Assert.That(directory.GetOnline("dev_a", T0.AddSeconds(30))?.LastSeen, Is.EqualTo(T0.AddSeconds(15)));
    }

    [Test]
    public void An_older_record_never_overwrites_a_newer_one()
    {
        var directory = new InMemoryPresenceDirectory(TimeSpan.FromSeconds(20));
        directory.Upsert(Record("dev_a", "net_1", T0.AddSeconds(10)));
        directory.Upsert(Record("dev_a", "net_1", T0));

        Assert.That(directory.GetOnline("dev_a", T0.AddSeconds(25)), Is.Not.Null);
    }

    [Test]
    public void Removed_device_is_offline_at_once()
    {
        var directory = new InMemoryPresenceDirectory(TimeSpan.FromSeconds(20));
        directory.Upsert(Record("dev_a", "net_1", T0));
        directory.Remove("dev_a");

        Assert.That(directory.GetOnline("dev_a", T0), Is.Null);
    }

    [Test]
    public void Listing_is_scoped_to_the_network_and_skips_stale_devices()
    {
        var directory = new InMemoryPresenceDirectory(TimeSpan.FromSeconds(20));
        directory.Upsert(Record("dev_b", "net_1", T0.AddSeconds(10)));
        directory.Upsert(Record("dev_a", "net_1", T0.AddSeconds(10)));
        directory.Upsert(Record("dev_stale", "net_1", T0.AddSeconds(-30)));
        directory.Upsert(Record("dev_other", "net_2", T0.AddSeconds(10)));

        var online = directory.ListOnline("net_1", T0.AddSeconds(11));

        Assert.That(string.Join(",", online.Select(r => r.DeviceId)), Is.EqualTo("dev_a,dev_b"));
    }

    [Test]
    public async Task Concurrent_heartbeats_keep_the_latest_record()
    {
        var directory = new InMemoryPresenceDirectory(TimeSpan.FromSeconds(20));
        await Task.WhenAll(Enumerable.Range(0, 1000).Select(i => Task.Run(() => directory.Upsert(Record("dev_a", "net_1", T0.AddMilliseconds(i))))));

        Assert.That(directory.GetOnline("dev_a", T0)?.LastSeen, Is.EqualTo(T0.AddMilliseconds(999)));
    }
}

using MeshAI.Common.Bus;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Relay.Core;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Relay;

[TestFixture]
[Category("Unit")]
public sealed class BusPresenceDirectoryTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    private static PresenceRecord Record(DateTimeOffset seen, int rtt = 12, params WorkloadClass[] workloads) =>
        new("dev_a", "net_1", "relay-a", new CapabilityReport { CpuCores = 4, NetworkRttMs = rtt, Workloads = { workloads } }, true, seen, rtt);

    [Test]
    public async Task Unchanged_heartbeats_are_published_to_other_instances_at_most_every_third_of_the_grace_and_changes_at_once()
    {
        var clock = TimeProvider.System;
        await using var bus = new InProcessMeshBus(clock);
        var names = new BusNames("test:");
        var published = new List<long>();
        await using var subscription = await bus.SubscribeAsync(names.Presence, m =>
        {
            lock (published)
            {
                published.Add(MeshAI.Contracts.Bus.V1.PresenceUpdate.Parser.ParseFrom(m).LastSeenMs);
            }

            return Task.CompletedTask;
        }, CancellationToken.None);
        var directory = new BusPresenceDirectory(bus, names, Options.Create(new RelayOptions { HeartbeatGraceSeconds = 20 }), clock);

        directory.Upsert(Record(T0, 12, WorkloadClass.DiagnosticEcho));                  // new: published
        directory.Upsert(Record(T0.AddSeconds(5), 15, WorkloadClass.DiagnosticEcho));    // only the RTT moved: local only
        directory.Upsert(Record(T0.AddSeconds(7), 15, WorkloadClass.DiagnosticEcho));    // a third of the grace passed: published
        directory.Upsert(Record(T0.AddSeconds(8), 15, WorkloadClass.DiagnosticEcho, WorkloadClass.Embeddings)); // workloads changed: at once
        await Task.Delay(100);

        Assert.That(directory.GetOnline("dev_a", T0.AddSeconds(8))?.RttMs, Is.EqualTo(15), "the local mirror has every heartbeat");
        Assert.That(directory.GetOnline("dev_a", T0.AddSeconds(5))?.LastSeen, Is.EqualTo(T0.AddSeconds(8)));
        lock (published)
        {
            Assert.That(published, Is.EqualTo(new[] { T0.AddSeconds(0), T0.AddSeconds(7), T0.AddSeconds(8) }.Select(t => t.ToUnixTimeMilliseconds())));
        }
    }
}

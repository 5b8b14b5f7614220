using MeshAI.Common.Bus;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Device.V1;
using MeshAI.Relay.Core;
using MeshAI.Server;
using MeshAI.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Relay;

/// <summary>
/// A Redis restart in scale-out mode (issue 10): every key and subscription is gone. The product's bus (RedisMeshBus)
/// reconnects and re-subscribes by itself, and presence — soft state refreshed by every heartbeat — is back after the
/// next heartbeat: on instances that were subscribed before the restart, on instances that start after it (from the
/// keys), and shared counters (rate limits) count again. A real redis-server process is killed and started again.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class RedisRestartTests
{
    [Test]
    public async Task After_a_Redis_restart_the_bus_reconnects_and_presence_is_rebuilt_by_the_next_heartbeat()
    {
        await using var redis = await RedisServer.StartAsync();
        var url = $"redis://{redis.ConnectionString}";
        await using var relayBus = RedisMeshBus.Connect(url, NullLogger<RedisMeshBus>.Instance);
        await using var controlBus = RedisMeshBus.Connect(url, NullLogger<RedisMeshBus>.Instance);
        var names = new BusNames("restart-" + Guid.NewGuid().ToString("N")[..8] + ":");
        await using var relay = await DirectoryAsync(relayBus, names);
        await using var control = await DirectoryAsync(controlBus, names);

        relay.Upsert(Heartbeat("dev_before"));
        await WaitUntilAsync(() => control.GetOnline("dev_before", DateTimeOffset.UtcNow) is not null, "presence crossed the bus before the restart");
        Assert.That(await controlBus.IncrementAsync(names.Rate("peer"), TimeSpan.FromMinutes(1), CancellationToken.None), Is.EqualTo(1));

        await redis.RestartAsync();

        // The relay keeps heartbeating (every 200 ms here); the first one after the bus is back rebuilds the key and reaches
        // the control instance's subscription, which the client re-established on its own.
        using var heartbeats = new CancellationTokenSource();
        var beating = Task.Run(async () =>
        {
            while (!heartbeats.IsCancellationRequested)
            {
                relay.Upsert(Heartbeat("dev_after"));
                await Task.Delay(200);
            }
        });
        try
        {
            await WaitUntilAsync(() => control.GetOnline("dev_after", DateTimeOffset.UtcNow) is not null, "the re-subscribed instance saw a heartbeat after the restart");
            await using var late = await DirectoryAsync(controlBus, names);
            Assert.That(late.GetOnline("dev_after", DateTimeOffset.UtcNow)?.RelayId, Is.EqualTo("relay-a"), "an instance started after the restart rebuilds presence from the keys");
            Assert.That(await controlBus.IncrementAsync(names.Rate("peer"), TimeSpan.FromMinutes(1), CancellationToken.None), Is.EqualTo(1),
                "counters work again (the restart emptied them: a rate-limit window starts over)");
        }
        finally
        {
            await heartbeats.CancelAsync();
            await beating;
        }
    }

    private static async Task<BusPresenceDirectory> DirectoryAsync(IMeshBus bus, BusNames names)
    {
        var directory = new BusPresenceDirectory(bus, names, Options.Create(new RelayOptions { HeartbeatGraceSeconds = 20 }), TimeProvider.System);
        await directory.StartAsync(CancellationToken.None);
        return directory;
    }

    private static PresenceRecord Heartbeat(string deviceId) =>
        new(deviceId, "net_restart", "relay-a", new CapabilityReport { CpuCores = 2 }, true, DateTimeOffset.UtcNow, 5);

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "timed out waiting until " + what);
            await Task.Delay(50);
        }
    }
}

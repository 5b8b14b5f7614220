using MeshAI.Common.Bus;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control;
using MeshAI.Control.Identity;
using MeshAI.Control.Jobs;
using MeshAI.Control.Networks;
using MeshAI.Control.Security;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Security;

/// <summary>The authorisation cache's own rules (docs/security.md, "Authorisation cache"): kept for the TTL, never past a session's expiry, never a refusal, cleared by an invalidation here and on another instance, and never keeping a read that overlapped an invalidation.</summary>
[TestFixture]
public sealed class AccessCacheTests
{
    private sealed class Clock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.FromUnixTimeMilliseconds(1_000_000);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static readonly Membership Member = new(new NetworkRow { NetworkId = "net_a" }, new NetworkSettings(), Role.Member);

    private static AccessCache Cache(IMeshBus bus, TimeProvider clock, string instance, int ttlMs = 1_000) =>
        new(bus, new BusNames("t:"), new ControlInstance(Options.Create(new ControlPlaneOptions { Jobs = { InstanceId = instance } })), clock,
            Options.Create(new SecurityOptions { AccessCacheTtlMs = ttlMs, AccessCacheEntries = 16 }));

    [Test]
    public async Task A_caller_is_kept_for_the_ttl_but_never_past_its_session_expiry()
    {
        var clock = new Clock();
        await using var bus = new InProcessMeshBus(clock);
        var cache = Cache(bus, clock, "a");
        var reads = 0;
        var caller = new Caller("usr_1", "a@example.com", "ses_1");
        Task<(Caller, long)?> Read(long expireMs)
        {
            reads++;
            return Task.FromResult<(Caller, long)?>((caller, expireMs));
        }

        var expire = clock.Now.ToUnixTimeMilliseconds() + 300;
        Assert.That(await cache.CallerAsync("h", () => Read(expire)), Is.SameAs(caller));
        Assert.That(await cache.CallerAsync("h", () => Read(expire)), Is.SameAs(caller));
        Assert.That(reads, Is.EqualTo(1), "the second call is answered from the cache");

        clock.Now = clock.Now.AddMilliseconds(300); // the session's expiry comes before the TTL
        await cache.CallerAsync("h", () => Read(long.MaxValue));
        Assert.That(reads, Is.EqualTo(2));
        clock.Now = clock.Now.AddMilliseconds(999);
        await cache.CallerAsync("h", () => Read(long.MaxValue));
        Assert.That(reads, Is.EqualTo(2));
        clock.Now = clock.Now.AddMilliseconds(1);
        await cache.CallerAsync("h", () => Read(long.MaxValue));
        Assert.That(reads, Is.EqualTo(3), "the TTL bounds how long an answer is kept");
    }

    [Test]
    public async Task A_refusal_is_never_kept_and_a_zero_ttl_turns_the_cache_off()
    {
        var clock = new Clock();
        await using var bus = new InProcessMeshBus(clock);
        var cache = Cache(bus, clock, "a");
        var reads = 0;
        Assert.That(await cache.MembershipAsync("net_a", "usr_1", () => { reads++; return Task.FromResult<Membership?>(null); }), Is.Null);
        Assert.That(await cache.MembershipAsync("net_a", "usr_1", () => { reads++; return Task.FromResult<Membership?>(null); }), Is.Null);
        Assert.That(reads, Is.EqualTo(2));

        var off = Cache(bus, clock, "b", ttlMs: 0);
        await off.MembershipAsync("net_a", "usr_1", () => { reads++; return Task.FromResult<Membership?>(Member); });
        await off.MembershipAsync("net_a", "usr_1", () => { reads++; return Task.FromResult<Membership?>(Member); });
        Assert.That(reads, Is.EqualTo(4));
    }

    [Test]
    public async Task An_invalidation_clears_this_instance_at_once_and_the_other_instance_through_the_bus()
    {
        var clock = new Clock();
        await using var bus = new InProcessMeshBus(clock);
        var a = Cache(bus, clock, "a", ttlMs: 60_000);
        var b = Cache(bus, clock, "b", ttlMs: 60_000);
        await a.StartAsync(CancellationToken.None);
        await b.StartAsync(CancellationToken.None);
        try
        {
            var readsA = 0;
            var readsB = 0;
            await a.MembershipAsync("net_a", "usr_1", () => { readsA++; return Task.FromResult<Membership?>(Member); });
            await b.MembershipAsync("net_a", "usr_1", () => { readsB++; return Task.FromResult<Membership?>(Member); });

            a.MembershipsChanged();
            await a.MembershipAsync("net_a", "usr_1", () => { readsA++; return Task.FromResult<Membership?>(Member); });
            Assert.That(readsA, Is.EqualTo(2), "the instance that wrote reads the store on its next call");

            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (readsB < 2)
            {
                Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "instance b never heard the invalidation");
                await Task.Delay(10);
                await b.MembershipAsync("net_a", "usr_1", () => { readsB++; return Task.FromResult<Membership?>(Member); });
            }

            // Callers are a table of their own: a membership change leaves them, a revocation clears them.
            var callerReads = 0;
            var caller = new Caller("usr_1", "a@example.com", "ses_1");
            Task<(Caller, long)?> Read()
            {
                callerReads++;
                return Task.FromResult<(Caller, long)?>((caller, long.MaxValue));
            }

            await a.CallerAsync("h", Read);
            a.MembershipsChanged();
            await a.CallerAsync("h", Read);
            Assert.That(callerReads, Is.EqualTo(1));
            a.CallersChanged();
            await a.CallerAsync("h", Read);
            Assert.That(callerReads, Is.EqualTo(2));
        }
        finally
        {
            await a.DisposeAsync();
            await b.DisposeAsync();
        }
    }

    [Test]
    public async Task A_read_that_overlaps_an_invalidation_is_not_kept()
    {
        var clock = new Clock();
        await using var bus = new InProcessMeshBus(clock);
        var cache = Cache(bus, clock, "a", ttlMs: 60_000);
        var reads = 0;
        // The row was read, then a write committed and invalidated before the read was stored: it may predate the write.
        await cache.MembershipAsync("net_a", "usr_1", () =>
        {
            reads++;
            cache.MembershipsChanged();
            return Task.FromResult<Membership?>(Member);
        });
        await cache.MembershipAsync("net_a", "usr_1", () => { reads++; return Task.FromResult<Membership?>(Member); });
        Assert.That(reads, Is.EqualTo(2));
        await cache.MembershipAsync("net_a", "usr_1", () => { reads++; return Task.FromResult<Membership?>(Member); });
        Assert.That(reads, Is.EqualTo(2), "a read with no invalidation in between is kept");
    }

    [Test]
    public async Task Ticket_key_rows_and_a_devices_given_key_are_kept_until_keys_change()
    {
        var clock = new Clock();
        await using var bus = new InProcessMeshBus(clock);
        var cache = Cache(bus, clock, "a", ttlMs: 60_000);
        var reads = 0;
        IReadOnlyList<NetworkKeyRow> rows = [new NetworkKeyRow { KeyId = "k1", NetworkId = "net_a" }];
        Task<IReadOnlyList<NetworkKeyRow>> ReadRows()
        {
            reads++;
            return Task.FromResult(rows);
        }

        Task<string?> ReadGiven()
        {
            reads++;
            return Task.FromResult<string?>(null); // registered before keys were recorded per device
        }

        await cache.NetworkKeysAsync("net_a", ReadRows);
        await cache.NetworkKeysAsync("net_a", ReadRows);
        Assert.That(await cache.DeviceControlKeyAsync("dev_a", ReadGiven), Is.Null);
        Assert.That(await cache.DeviceControlKeyAsync("dev_a", ReadGiven), Is.Null, "a device with no recorded key is kept as such");
        Assert.That(reads, Is.EqualTo(2));

        cache.MembershipsChanged();
        await cache.NetworkKeysAsync("net_a", ReadRows);
        Assert.That(reads, Is.EqualTo(2), "a membership change leaves the keys");
        cache.KeysChanged();
        await cache.NetworkKeysAsync("net_a", ReadRows);
        await cache.DeviceControlKeyAsync("dev_a", ReadGiven);
        Assert.That(reads, Is.EqualTo(4), "a rotation or a device given another key reads both again");
    }
}

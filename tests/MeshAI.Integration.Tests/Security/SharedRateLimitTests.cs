using Grpc.Core;
using MeshAI.Common.Bus;
using MeshAI.Control.Security;
using MeshAI.Server;
using MeshAI.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Security;

/// <summary>
/// Rate limits are shared across control instances in scale-out (issue 10): the counters live in Redis, so a client that
/// spreads its calls over two instances behind the front door gets the same per-minute budget as on one.
/// </summary>
[TestFixture]
[Category("Integration")]
public sealed class SharedRateLimitTests
{
    [Test]
    public async Task Two_control_instances_count_one_window_per_peer_through_Redis()
    {
        var redis = await SharedInfrastructure.Redis;
        var url = $"redis://{redis.ConnectionString}";
        await using var busA = RedisMeshBus.Connect(url, NullLogger<RedisMeshBus>.Instance);
        await using var busB = RedisMeshBus.Connect(url, NullLogger<RedisMeshBus>.Instance);
        var names = new BusNames("rate-" + Guid.NewGuid().ToString("N")[..8] + ":");
        // Both instances' clocks sit at the start of one minute, so the fixed window cannot roll over mid-test.
        var minute = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 60 * 60);
        var options = Options.Create(new SecurityOptions { AuthCallsPerMinutePerPeer = 4 });
        var a = new RateLimits(options, new FakeTimeProvider(minute), busA, names);
        var b = new RateLimits(options, new FakeTimeProvider(minute), busB, names);

        await a.CheckAsync("auth:ipv4:10.0.0.7:50001", a.AuthPerMinute, CancellationToken.None);
        await b.CheckAsync("auth:ipv4:10.0.0.7:50002", b.AuthPerMinute, CancellationToken.None);
        await a.CheckAsync("auth:ipv4:10.0.0.7:50003", a.AuthPerMinute, CancellationToken.None);
        await b.CheckAsync("auth:ipv4:10.0.0.7:50004", b.AuthPerMinute, CancellationToken.None);
        var over = await Assert.ThrowsAsync<RpcException>(() => a.CheckAsync("auth:ipv4:10.0.0.7:50005", a.AuthPerMinute, CancellationToken.None));
        Assert.That(over!.StatusCode, Is.EqualTo(StatusCode.ResourceExhausted), "the fifth call in the minute, counted across both instances");
        await b.CheckAsync("auth:ipv4:10.0.0.8:50001", b.AuthPerMinute, CancellationToken.None); // another peer has its own budget
    }
}

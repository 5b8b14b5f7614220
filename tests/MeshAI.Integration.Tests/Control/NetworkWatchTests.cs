#pragma warning disable CA1861 // expected values read best inline
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Client;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Integration.Tests.Security;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>
/// WatchNetwork (services/MeshAI.Control/Networks/NetworkWatch.cs) on the real server with a real agent session: a snapshot
/// then deltas with a serial that grows by one per frame — a device coming online, a job's states, the balances after it
/// is billed, a revoked device; guests are refused, outsiders see nothing, a removed member loses the stream.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class NetworkWatchTests
{
    [Test]
    public async Task A_watch_sends_a_snapshot_then_ordered_deltas_for_devices_jobs_balances_and_members()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var admin = await host.SignInAsync("watch-admin@example.com");
        using var client = new MeshClient(host.Url, host.Fingerprint, admin);
        var network = await client.CreateNetworkAsync("watched");
        using var watch = new NetworkService.NetworkServiceClient(host.Channel(admin)).WatchNetwork(new WatchNetworkRequest { NetworkId = network.NetworkId });
        var frames = Channel.CreateUnbounded<WatchNetworkResponse>();
        var reader = Task.Run(async () =>
        {
            try
            {
                await foreach (var frame in watch.ResponseStream.ReadAllAsync())
                {
                    await frames.Writer.WriteAsync(frame);
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
            {
            }
        });
        var seen = new List<WatchNetworkResponse>();
        async Task<WatchNetworkResponse> UntilAsync(Func<WatchNetworkResponse, bool> condition, string what)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (true)
            {
                WatchNetworkResponse frame;
                try
                {
                    frame = await frames.Reader.ReadAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"no frame with {what} within 30 s; frames: {string.Join(" | ", seen.Select(f => f.ToString()))}");
                    throw;
                }

                seen.Add(frame);
                Assert.That(frame.Serial, Is.EqualTo(seen.Count), "the serial grows by one per frame, from 1");
                Assert.That(frame.Snapshot, Is.EqualTo(seen.Count == 1), "only the first frame is a snapshot");
                if (condition(frame))
                {
                    return frame;
                }
            }
        }

        var snapshot = await UntilAsync(_ => true, "the snapshot");
        Assert.Multiple(() =>
        {
            Assert.That(snapshot.Network.NetworkId, Is.EqualTo(network.NetworkId));
            Assert.That(snapshot.DevicesChanged, Is.Empty);
            Assert.That(snapshot.MembersChanged.Select(m => m.Email), Is.EqualTo(new[] { "watch-admin@example.com" }));
            Assert.That(snapshot.Balances.PoolBalanceMicro, Is.EqualTo(network.CreditBalanceSummary.PoolBalanceMicro), "the starting grant");
        });

        var (enrollment, keys) = await host.JoinAsync(admin, network.NetworkId, "watched-laptop");
        await host.GoOnlineAsync(enrollment, keys);
        var online = await UntilAsync(f => f.DevicesChanged.Any(d => d.DeviceId == enrollment.DeviceId && d.OnlineStatus == OnlineStatus.Online), "the device online");
        Assert.That(online.Network?.OnlineDevicesCount ?? seen.Last(f => f.Network is not null).Network.OnlineDevicesCount, Is.EqualTo(1), "the summary's online count follows");

        var run = await client.RunAsync(network.NetworkId, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("watch me") } });
        await UntilAsync(f => f.JobsChanged.Any(j => j.JobId == run.Job.JobId && j.State == JobState.Completed), "the job completed");
        // The final state and the ledger events commit together, so the billed balances may ride in the same frame.
        var billed = seen.LastOrDefault(f => f.Balances is not null && f.Balances.BurnedTotalMicro > 0)
                     ?? await UntilAsync(f => f.Balances is not null && f.Balances.BurnedTotalMicro > 0, "the balances after billing");
        Assert.That(billed.Balances.Devices.Single().DeviceId, Is.EqualTo(enrollment.DeviceId), "the device's mint is in the per-device breakdown");
        Assert.That(seen.SelectMany(f => f.JobsChanged).Where(j => j.JobId == run.Job.JobId).Select(j => j.State), Does.Contain(JobState.Completed));

        await new DeviceService.DeviceServiceClient(host.Channel(admin)).RevokeDeviceAsync(new RevokeDeviceRequest { NetworkId = network.NetworkId, DeviceId = enrollment.DeviceId });
        await UntilAsync(f => f.DevicesChanged.Any(d => d.DeviceId == enrollment.DeviceId && d.OnlineStatus == OnlineStatus.Revoked), "the device revoked");

        // Nothing changes now: the stream stays quiet (keepalives only), and no frame repeats a device that did not change.
        Assert.That(seen.Count(f => f.DevicesChanged.Any(d => d.DeviceId == enrollment.DeviceId)), Is.LessThanOrEqualTo(6), "heartbeats alone do not resend a card");
        watch.Dispose();
        await reader;
    }

    [Test]
    public async Task Guests_are_refused_outsiders_see_nothing_and_a_removed_member_loses_the_stream()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var admin = await host.SignInAsync("watch-owner@example.com");
        var guest = await host.SignInAsync("watch-guest@example.com");
        var member = await host.SignInAsync("watch-member@example.com");
        var outsider = await host.SignInAsync("watch-outsider@example.com");
        var networks = new NetworkService.NetworkServiceClient(host.Channel(admin));
        var networkId = (await networks.CreateNetworkAsync(new CreateNetworkRequest { Name = "guarded" })).Network.NetworkId;
        var memberId = await JoinAsync(host, networks, networkId, guest, Role.Guest);
        memberId = await JoinAsync(host, networks, networkId, member, Role.Member);

        await Rpc.ThrowsAsync(StatusCode.PermissionDenied, () => FirstFrameAsync(host, guest, networkId));
        await Rpc.ThrowsAsync(StatusCode.NotFound, () => FirstFrameAsync(host, outsider, networkId));

        using var watch = new NetworkService.NetworkServiceClient(host.Channel(member)).WatchNetwork(new WatchNetworkRequest { NetworkId = networkId });
        Assert.That(await watch.ResponseStream.MoveNext(CancellationToken.None), Is.True);
        Assert.That(watch.ResponseStream.Current.Snapshot, Is.True);
        await networks.RemoveMemberAsync(new RemoveMemberRequest { NetworkId = networkId, UserId = memberId });
        var ended = await Rpc.ThrowsAsync(StatusCode.NotFound, async () =>
        {
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (await watch.ResponseStream.MoveNext(limit.Token))
            {
            }
        });
        Assert.That(ended.Status.Detail, Does.Contain(networkId));
    }

    private static async Task FirstFrameAsync(SecureMeshHost host, string token, string networkId)
    {
        using var call = new NetworkService.NetworkServiceClient(host.Channel(token)).WatchNetwork(new WatchNetworkRequest { NetworkId = networkId });
        await call.ResponseStream.MoveNext(CancellationToken.None);
    }

    private static async Task<string> JoinAsync(SecureMeshHost host, NetworkService.NetworkServiceClient admin, string networkId, string token, Role role)
    {
        var invite = await admin.InviteMemberAsync(new InviteMemberRequest { NetworkId = networkId, InviteType = InviteType.ShareLinkWithApproval, Role = role });
        var accepted = await new NetworkService.NetworkServiceClient(host.Channel(token)).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = invite.InviteLink });
        await admin.ApproveMemberAsync(new ApproveMemberRequest { NetworkId = networkId, UserId = accepted.Member.UserId });
        return accepted.Member.UserId;
    }
}

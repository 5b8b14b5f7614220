using Google.Protobuf;
using Grpc.Core;
using MeshAI.Agent.Jobs;
using MeshAI.Agent.State;
using MeshAI.Agent.Workloads;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Client;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Storage;
using MeshAI.Integration.Tests.Security;
using MeshAI.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>
/// Two real control instances (Kestrel, role all) over one PostgreSQL database and one Redis bus (issue 10). The agents are
/// connected to instance B's relay; jobs are submitted through instance A, which owns them. A stops without finishing
/// (its host is disposed: executions are abandoned without a write, as in a crash) and B, whose claim round finds A's
/// expired lease, carries the work on: a running job completes billed once, and a spot-check re-run in flight ends with the
/// original device's held mint settled exactly once. A late watcher on B of a chat job run by A gets every token from index
/// 0, then the live ones, once each.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class TwoControlInstanceTests
{
    /// <summary>A chat "model" that streams <see cref="Count"/> numbered words, one every 100 ms.</summary>
    private sealed class SlowChatHandler : IWorkloadHandler
    {
        public const int Count = 40;

        public WorkloadClass Workload => WorkloadClass.SmallChat;

        public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Chat;

        public async Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
        {
            var text = new System.Text.StringBuilder();
            for (var i = 0; i < Count; i++)
            {
                await Task.Delay(100, cancellationToken);
                var token = $"w{i} ";
                text.Append(token);
                await context.EmitTokenAsync(token, i, cancellationToken);
            }

            return new WorkloadOutput { Chat = new ChatOutput { Text = text.ToString(), CompletionTokens = Count, FinishReason = "length" } };
        }
    }

    /// <summary>Instances A and B of one mesh, a signed-in user with a client on each, and a network of theirs.</summary>
    private sealed record Pair(SecureMeshHost A, SecureMeshHost B, string Token, MeshClient ViaA, MeshClient ViaB, string NetworkId) : IAsyncDisposable
    {
        public const string RelayOne = "https://relay-one.example:7443";

        /// <summary>The arguments of instance <paramref name="id"/> (A and B differ only in their ids).</summary>
        public IReadOnlyList<string> Arguments { get; private init; } = [];

        public static async Task<Pair> StartAsync(string email, NetworkSettings settings, params string[] extra)
        {
            var redis = await SharedInfrastructure.Redis;
            var prefix = "pair-" + Guid.NewGuid().ToString("N")[..8] + ":";
            string[] shared =
            [
                "--bus", "redis://" + redis.ConnectionString, "--Bus:Prefix", prefix, "--relay-urls", RelayOne,
                "--Control:Jobs:LeaseMs", "2000", "--Control:Jobs:LeaseRenewIntervalMs", "500", "--Control:Jobs:ClaimIntervalMs", "500",
                .. extra,
            ];
            var a = await SecureMeshHost.StartAsync("postgres", [.. Args("a"), .. shared], null);
            SecureMeshHost? b = null;
            try
            {
                b = await SecureMeshHost.StartAsync("postgres", [.. Args("b"), .. shared], null, sibling: a);
                var token = await a.SignInAsync(email);
                var viaA = new MeshClient(a.Url, a.Fingerprint, token) { EncryptPayloads = false };
                var viaB = new MeshClient(b.Url, b.Fingerprint, token) { EncryptPayloads = false };
                var network = await viaA.CreateNetworkAsync("pair", settings);
                return new Pair(a, b, token, viaA, viaB, network.NetworkId) { Arguments = shared };
            }
            catch
            {
                await a.DisposeAsync();
                if (b is not null)
                {
                    await b.DisposeAsync();
                }

                throw;
            }
        }

        private static string[] Args(string id) => ["--instance-id", "ctl-" + id, "--relay-id", "relay-" + id];

        /// <summary>
        /// Registers a device (through A) and brings it online on B's relay; waits until A sees it too (presence over Redis).
        /// Network is the agent's view of its network (pushed updates land there); Session ends when the agent's stream does.
        /// </summary>
        public async Task<(AgentEnrollment Enrollment, AgentNetworkState Network, Task<SessionEnd> Session)> DeviceOnBAsync(string name, CapabilityReport? capabilities = null, IWorkloadHandler? handler = null)
        {
            var (enrollment, keys) = await A.JoinAsync(Token, NetworkId, name, capabilities);
            var network = new AgentNetworkState(enrollment);
            var session = await B.GoOnlineAsync(enrollment, keys, handler: handler, network: network);
            var presence = A.Services.GetRequiredService<IPresenceDirectory>();
            await WaitUntilAsync(() => Task.FromResult(presence.GetOnline(enrollment.DeviceId, DateTimeOffset.UtcNow) is { ContributionEnabled: true }), "presence reached instance A");
            return (enrollment, network, session);
        }

        /// <summary>Stops A and starts it again (same id, store, bus and data dir) with <paramref name="extra"/> arguments after the shared ones.</summary>
        public async Task<Pair> RestartAAsync(params string[] extra)
        {
            await A.DisposeAsync();
            return this with { A = await SecureMeshHost.StartAsync("postgres", [.. Args("a"), .. Arguments, .. extra], null, sibling: B) };
        }

        public async Task<string?> OwnerAsync(string jobId) =>
            (await B.Services.GetRequiredService<JobRepository>().GetJobByIdAsync(jobId, CancellationToken.None))?.OwnerInstance;

        public async ValueTask DisposeAsync()
        {
            ViaA.Dispose();
            ViaB.Dispose();
            await A.DisposeAsync();
            await B.DisposeAsync();
            if (Restarted is { } restarted)
            {
                await restarted.DisposeAsync();
            }
        }

        /// <summary>The instance A was restarted as (disposed with the pair).</summary>
        public SecureMeshHost? Restarted { get; set; }
    }

    private static async Task<Job> WaitForJobAsync(MeshClient client, string networkId, string jobId, Func<Job, bool> done, string what)
    {
        Job? job = null;
        await WaitUntilAsync(async () => done(job = (await client.Jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = jobId })).Job), what, () => job?.ToString() ?? "");
        return job!;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, Func<string>? state = null, int deadlineSeconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(deadlineSeconds);
        while (!await condition())
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), what + " " + state?.Invoke());
            await Task.Delay(50);
        }
    }

    private static bool IsSpotCheck(JobAttempt a) => a.Detail.StartsWith(SpotCheck.AttemptDetailPrefix, StringComparison.Ordinal);

    private static string Why(ReconcileLedgerResponse r) => string.Join("; ", r.Mismatches.Select(m => $"{m.Subject}: {m.Detail} ({m.LedgerMicro} vs {m.RecomputedMicro})"));

    [Test]
    public async Task Access_changes_made_on_one_instance_are_seen_by_the_other_through_the_bus()
    {
        // Both caches would keep an answer for a minute: only the bus's AccessInvalidation can make B see A's writes in time.
        await using var pair = await Pair.StartAsync("cache-pair@example.com", new NetworkSettings(), "--Control:Security:AccessCacheTtlMs", "60000");
        var (a, b) = (pair.A, pair.B);
        NetworkService.NetworkServiceClient Networks(SecureMeshHost host, string token) => new(host.Channel(token));
        IdentityService.IdentityServiceClient Identity(SecureMeshHost host, string token) => new(host.Channel(token));
        async Task SeenOnB(StatusCode code, Func<Task> call, string what) =>
            await WaitUntilAsync(async () =>
            {
                try
                {
                    await call();
                    return false;
                }
                catch (RpcException e) when (e.StatusCode == code)
                {
                    return true;
                }
            }, what + " on instance B", deadlineSeconds: 10);

        var dana = await a.SignInAsync("cache-pair-dana@example.com");
        var invite = await Networks(a, pair.Token).InviteMemberAsync(new InviteMemberRequest { NetworkId = pair.NetworkId, InviteType = InviteType.Email, Invitee = "cache-pair-dana@example.com", Role = Role.Member });
        var member = (await Networks(a, dana).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = invite.InviteLink })).Member;
        await Networks(b, dana).ListMembersAsync(new ListMembersRequest { NetworkId = pair.NetworkId }); // B caches the membership

        await Networks(a, pair.Token).UpdateMemberRoleAsync(new UpdateMemberRoleRequest { NetworkId = pair.NetworkId, UserId = member.UserId, Role = Role.Guest });
        await SeenOnB(StatusCode.PermissionDenied, () => Networks(b, dana).ListMembersAsync(new ListMembersRequest { NetworkId = pair.NetworkId }).ResponseAsync, "the role change");
        await Networks(b, dana).GetNetworkAsync(new GetNetworkRequest { NetworkId = pair.NetworkId }); // a guest still sees the network

        await Networks(a, pair.Token).RemoveMemberAsync(new RemoveMemberRequest { NetworkId = pair.NetworkId, UserId = member.UserId });
        await SeenOnB(StatusCode.NotFound, () => Networks(b, dana).GetNetworkAsync(new GetNetworkRequest { NetworkId = pair.NetworkId }).ResponseAsync, "the removal");

        var erin = await a.SignInAsync("cache-pair-erin@example.com");
        await Identity(b, erin).GetCurrentUserAsync(new GetCurrentUserRequest()); // B caches the session
        var session = (await Identity(a, erin).ListSessionsAsync(new ListSessionsRequest())).Sessions.Single(s => !s.Revoked);
        await Identity(a, erin).RevokeSessionAsync(new RevokeSessionRequest { SessionId = session.SessionId });
        await SeenOnB(StatusCode.Unauthenticated, () => Identity(b, erin).GetCurrentUserAsync(new GetCurrentUserRequest()).ResponseAsync, "the session revocation");
    }

    [Test]
    public async Task A_job_running_on_a_stopped_instance_is_claimed_by_the_other_and_completes_billed_once()
    {
        await using var pair = await Pair.StartAsync("claim@example.com", new NetworkSettings());
        var (a, b, viaA, viaB) = (pair.A, pair.B, pair.ViaA, pair.ViaB);
        await pair.DeviceOnBAsync("worker");

        var data = "claimed-" + Guid.NewGuid().ToString("N");
        var submitted = await viaA.SubmitJobAsync(pair.NetworkId, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8(data), DelayMs = 3_000 } });
        await WaitForJobAsync(viaA, pair.NetworkId, submitted.JobId, j => j.State == JobState.Running, "the worker accepted the job on instance A");
        Assert.That(await pair.OwnerAsync(submitted.JobId), Is.EqualTo("ctl-a"));

        await a.DisposeAsync(); // A stops mid-job: nothing written, its lease runs out

        var run = await viaB.WaitForResultAsync(pair.NetworkId, submitted);
        var owner = await pair.OwnerAsync(submitted.JobId);
        var ledger = b.Services.GetRequiredService<LedgerRepository>();
        var events = (await ledger.ListAsync(pair.NetworkId, submitted.JobId, 0, 100, CancellationToken.None)).ToList();
        var reconciled = await viaB.Ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = pair.NetworkId });
        Assert.Multiple(() =>
        {
            Assert.That(run.Output.Echo.Data.ToStringUtf8(), Is.EqualTo(data));
            Assert.That(run.Job.State, Is.EqualTo(JobState.Completed));
            Assert.That(owner, Is.EqualTo("ctl-b"), "B claimed the job");
            Assert.That(run.Job.Attempts.Count(x => x.Cause == AttemptCause.Succeeded), Is.EqualTo(1), "one attempt succeeded: " + string.Join(" | ", run.Job.Attempts.Select(x => x.Detail)));
            Assert.That(events.Select(e => (LedgerEventType)e.EventType), Is.EquivalentTo(new[]
            {
                LedgerEventType.JobStarted, LedgerEventType.JobCompleted, LedgerEventType.CreditsBurned, LedgerEventType.CreditsMinted,
            }), "billed once");
            Assert.That(reconciled.Balanced, Is.True, Why(reconciled));
        });
    }

    [Test]
    public async Task A_spot_check_in_flight_on_a_stopped_instance_is_checked_again_by_the_other_and_its_mint_settled_once()
    {
        await using var pair = await Pair.StartAsync("spot-claim@example.com", new NetworkSettings { Credits = new CreditSettings { SpotCheckSampleBps = 10_000 } });
        var (a, b, viaA, viaB) = (pair.A, pair.B, pair.ViaA, pair.ViaB);
        var original = await pair.DeviceOnBAsync("original");

        // Only the original device is online when the job is placed; the second joins while it runs, so the re-run goes there.
        var data = "spot-claim-" + Guid.NewGuid().ToString("N");
        var submitted = await viaA.SubmitJobAsync(pair.NetworkId, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8(data), DelayMs = 3_000 } });
        var second = await pair.DeviceOnBAsync("second");
        var checking = await WaitForJobAsync(viaA, pair.NetworkId, submitted.JobId, j => j.Attempts.Any(x => IsSpotCheck(x) && x.EndTime is null), "instance A placed the spot-check re-run");
        var orphan = checking.Attempts.Single(IsSpotCheck);

        await a.DisposeAsync(); // A stops while the re-run runs: its mint stays held until another instance acts

        var ledger = b.Services.GetRequiredService<LedgerRepository>();
        await WaitUntilAsync(async () => (await ledger.ListMeteringsAsync(pair.NetworkId, CancellationToken.None)).Single(m => m.JobId == submitted.JobId).MintWithheldReason != SpotCheck.PendingReason,
            "instance B settled the held mint");
        var final = await WaitForJobAsync(viaB, pair.NetworkId, submitted.JobId, j => j.Attempts.Count(IsSpotCheck) >= 2 && j.Attempts.All(x => x.EndTime is not null), "the re-run placed by B ended");
        var owner = await pair.OwnerAsync(submitted.JobId);
        var metering = (await ledger.ListMeteringsAsync(pair.NetworkId, CancellationToken.None)).Single(m => m.JobId == submitted.JobId);
        var events = (await ledger.ListAsync(pair.NetworkId, submitted.JobId, 0, 100, CancellationToken.None)).ToList();
        var balances = await viaB.Ledger.GetBalancesAsync(new GetBalancesRequest { NetworkId = pair.NetworkId });
        var reconciled = await viaB.Ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = pair.NetworkId });
        var orphanEnded = final.Attempts.Single(x => x.Attempt == orphan.Attempt);
        var recheck = final.Attempts.Where(IsSpotCheck).Single(x => x.Attempt > orphan.Attempt);
        var minted = events.Where(e => e.EventType == (int)LedgerEventType.CreditsMinted).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(final.State, Is.EqualTo(JobState.Completed));
            Assert.That(final.DeviceId, Is.EqualTo(original.Enrollment.DeviceId));
            Assert.That(owner, Is.EqualTo("ctl-b"), "B claimed the finished job with its held mint");
            Assert.That(orphanEnded.Cause, Is.EqualTo(AttemptCause.Cancelled));
            Assert.That(orphanEnded.Detail, Does.Contain("re-run abandoned"));
            Assert.That(recheck.DeviceId, Is.EqualTo(second.Enrollment.DeviceId), "the check ran again on the second device");
            Assert.That(recheck.Detail, Does.Contain("outputs match").Or.Contain("inconclusive"), "match or inconclusive release the mint");
            Assert.That(metering.MintWithheldReason, Is.Empty, "the held mint was released");
            Assert.That(minted, Has.Count.EqualTo(1), "minted exactly once");
            Assert.That(minted.Single().DeviceId, Is.EqualTo(original.Enrollment.DeviceId));
            Assert.That(minted.Single().AmountMicro, Is.EqualTo(LedgerPricing.Price(metering).MintMicro));
            Assert.That(balances.Balances.MintedTotalMicro, Is.EqualTo(minted.Single().AmountMicro));
            Assert.That(reconciled.Balanced, Is.True, Why(reconciled));
        });
    }

    [Test]
    public async Task A_late_watcher_on_another_instance_gets_the_earlier_tokens_then_the_live_ones_once_each()
    {
        await using var pair = await Pair.StartAsync("watch@example.com", new NetworkSettings());
        var (viaA, viaB) = (pair.ViaA, pair.ViaB);
        await pair.DeviceOnBAsync("chatter", new CapabilityReport
        {
            CpuCores = 4, RamMb = 8000, Os = "linux", Platform = Platform.Linux, Workloads = { WorkloadClass.SmallChat },
        }, new SlowChatHandler());

        var submitted = await viaA.SubmitJobAsync(pair.NetworkId, new WorkloadInput
        {
            Chat = new ChatInput { Messages = { new ChatMessage { Role = ChatRole.User, Content = "count" } }, MaxTokens = SlowChatHandler.Count },
        });
        Assert.That(await pair.OwnerAsync(submitted.JobId), Is.EqualTo("ctl-a"));

        // An early watcher on A (the owner) until ten tokens streamed, then a late watcher on B.
        var early = new List<int>();
        var lateStarted = new TaskCompletionSource<Task<List<int>>>();
        var earlyRun = viaA.WaitForResultAsync(pair.NetworkId, submitted, f =>
        {
            if (f.FrameCase == WatchJobResponse.FrameOneofCase.Token)
            {
                early.Add(f.Token.Index);
                if (early.Count == 10)
                {
                    lateStarted.TrySetResult(WatchTokensAsync(viaB, pair.NetworkId, submitted.JobId));
                }
            }
        });
        var late = await (await lateStarted.Task.WaitAsync(TimeSpan.FromSeconds(60)));
        var run = await earlyRun;
        var expected = Enumerable.Range(0, SlowChatHandler.Count).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(run.Output.Chat.Text, Does.StartWith("w0 w1 "));
            Assert.That(early, Is.EqualTo(expected), "the owner's own watcher");
            Assert.That(late, Is.EqualTo(expected), "the late watcher on B: every token from index 0, in order, once each");
        });
    }

    private static async Task<List<int>> WatchTokensAsync(MeshClient client, string networkId, string jobId)
    {
        var indices = new List<int>();
        using var watch = client.Jobs.WatchJob(new WatchJobRequest { NetworkId = networkId, JobId = jobId });
        while (await watch.ResponseStream.MoveNext(CancellationToken.None))
        {
            var frame = watch.ResponseStream.Current;
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Token)
            {
                indices.Add(frame.Token.Index);
            }
            else if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                break;
            }
        }

        return indices;
    }

    [Test]
    public async Task A_control_instance_started_with_new_agent_settings_pushes_them_to_connected_agents_without_a_reconnect()
    {
        await using var pair = await Pair.StartAsync("relays@example.com", new NetworkSettings());
        var (enrollment, network, session) = await pair.DeviceOnBAsync("roamer");
        Assert.That(network.Enrollment.RelayAddresses(), Is.EqualTo(new[] { Pair.RelayOne }), "registration gave the configured relay address");
        Assert.That(network.HeartbeatIntervalMs, Is.Zero, "no heartbeat interval pushed yet (the relay's Welcome set it)");
        var serial = network.Serial;

        // A restarts with a second relay address and a faster heartbeat; B (the agent's relay) keeps its old configuration.
        const string relayTwo = "https://relay-two.example:7443";
        var restarted = await pair.RestartAAsync("--relay-urls", Pair.RelayOne + "," + relayTwo, "--Control:Ledger:HeartbeatIntervalMs", "2000");
        pair.Restarted = restarted.A;
        await WaitUntilAsync(() => Task.FromResult(network.Enrollment.RelayAddresses().Count == 2 && network.HeartbeatIntervalMs == 2000), "the agent applied the pushed settings",
            () => string.Join(",", network.Enrollment.RelayAddresses()) + " heartbeat " + network.HeartbeatIntervalMs);
        Assert.Multiple(() =>
        {
            Assert.That(network.Enrollment.RelayAddresses(), Is.EqualTo(new[] { Pair.RelayOne, relayTwo }));
            Assert.That(network.HeartbeatIntervalMs, Is.EqualTo(2000));
            Assert.That(network.Serial, Is.EqualTo(serial + 1), "both in one NetworkUpdate with the next serial");
            Assert.That(session.IsCompleted, Is.False, "the agent's stream stayed up: no reconnect was needed");
            Assert.That(enrollment.DeviceId, Is.EqualTo(network.Enrollment.DeviceId));
        });
    }
}

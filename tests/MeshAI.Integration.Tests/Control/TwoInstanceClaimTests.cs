using Google.Protobuf;
using MeshAI.Agent.State;
using MeshAI.Client;
using MeshAI.Common.Seams;
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
/// original device's held mint settled exactly once.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class TwoInstanceClaimTests
{
    private static async Task<(SecureMeshHost A, SecureMeshHost B)> StartPairAsync()
    {
        var redis = await SharedInfrastructure.Redis;
        var prefix = "claim-" + Guid.NewGuid().ToString("N")[..8] + ":";
        string[] Args(string id) =>
        [
            "--instance-id", "ctl-" + id, "--relay-id", "relay-" + id,
            "--bus", "redis://" + redis.ConnectionString, "--Bus:Prefix", prefix,
            "--Control:Jobs:LeaseMs", "2000", "--Control:Jobs:LeaseRenewIntervalMs", "500", "--Control:Jobs:ClaimIntervalMs", "500",
        ];
        var a = await SecureMeshHost.StartAsync("postgres", Args("a"), null);
        try
        {
            return (a, await SecureMeshHost.StartAsync("postgres", Args("b"), null, sibling: a));
        }
        catch
        {
            await a.DisposeAsync();
            throw;
        }
    }

    /// <summary>Brings a device online on <paramref name="relayHost"/> and waits until <paramref name="other"/> sees it too (presence over Redis).</summary>
    private static async Task GoOnlineAsync(SecureMeshHost relayHost, SecureMeshHost other, (AgentEnrollment Enrollment, AgentKeys Keys) device)
    {
        await relayHost.GoOnlineAsync(device.Enrollment, device.Keys);
        var presence = other.Services.GetRequiredService<IPresenceDirectory>();
        await WaitUntilAsync(() => Task.FromResult(presence.GetOnline(device.Enrollment.DeviceId, DateTimeOffset.UtcNow) is { ContributionEnabled: true }), "presence reached the other instance");
    }

    private static async Task<Job> WaitForJobAsync(MeshClient client, string networkId, string jobId, Func<Job, bool> done, string what)
    {
        Job? job = null;
        await WaitUntilAsync(async () => done(job = (await client.Jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = jobId })).Job), what, () => job?.ToString() ?? "");
        return job!;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, Func<string>? state = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await condition())
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), what + " " + state?.Invoke());
            await Task.Delay(50);
        }
    }

    private static bool IsSpotCheck(JobAttempt a) => a.Detail.StartsWith(SpotCheck.AttemptDetailPrefix, StringComparison.Ordinal);

    private static string Why(ReconcileLedgerResponse r) => string.Join("; ", r.Mismatches.Select(m => $"{m.Subject}: {m.Detail} ({m.LedgerMicro} vs {m.RecomputedMicro})"));

    [Test]
    public async Task A_job_running_on_a_stopped_instance_is_claimed_by_the_other_and_completes_billed_once()
    {
        var (a, b) = await StartPairAsync();
        await using var hostA = a;
        await using var hostB = b;
        var token = await a.SignInAsync("claim@example.com");
        using var viaA = new MeshClient(a.Url, a.Fingerprint, token) { EncryptPayloads = false };
        using var viaB = new MeshClient(b.Url, b.Fingerprint, token) { EncryptPayloads = false };
        var network = await viaA.CreateNetworkAsync("claim", new NetworkSettings());
        var worker = await a.JoinAsync(token, network.NetworkId, "worker");
        await GoOnlineAsync(b, a, worker);

        var data = "claimed-" + Guid.NewGuid().ToString("N");
        var submitted = await viaA.SubmitJobAsync(network.NetworkId, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8(data), DelayMs = 3_000 } });
        await WaitForJobAsync(viaA, network.NetworkId, submitted.JobId, j => j.State == JobState.Running, "the worker accepted the job on instance A");
        var jobs = b.Services.GetRequiredService<JobRepository>();
        Assert.That((await jobs.GetJobByIdAsync(submitted.JobId, CancellationToken.None))!.OwnerInstance, Is.EqualTo("ctl-a"));

        await a.DisposeAsync(); // A stops mid-job: nothing written, its lease runs out

        var run = await viaB.WaitForResultAsync(network.NetworkId, submitted);
        var row = await jobs.GetJobByIdAsync(submitted.JobId, CancellationToken.None);
        var ledger = b.Services.GetRequiredService<LedgerRepository>();
        var events = (await ledger.ListAsync(network.NetworkId, submitted.JobId, 0, 100, CancellationToken.None)).ToList();
        var reconciled = await viaB.Ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = network.NetworkId });
        Assert.Multiple(() =>
        {
            Assert.That(run.Output.Echo.Data.ToStringUtf8(), Is.EqualTo(data));
            Assert.That(run.Job.State, Is.EqualTo(JobState.Completed));
            Assert.That(row!.OwnerInstance, Is.EqualTo("ctl-b"), "B claimed the job");
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
        var (a, b) = await StartPairAsync();
        await using var hostA = a;
        await using var hostB = b;
        var token = await a.SignInAsync("spot-claim@example.com");
        using var viaA = new MeshClient(a.Url, a.Fingerprint, token) { EncryptPayloads = false };
        using var viaB = new MeshClient(b.Url, b.Fingerprint, token) { EncryptPayloads = false };
        var network = await viaA.CreateNetworkAsync("spot-claim", new NetworkSettings { Credits = new CreditSettings { SpotCheckSampleBps = 10_000 } });
        var original = await a.JoinAsync(token, network.NetworkId, "original");
        var second = await a.JoinAsync(token, network.NetworkId, "second");
        await GoOnlineAsync(b, a, original);

        // Only the original device is online when the job is placed; the second joins while it runs, so the re-run goes there.
        var data = "spot-claim-" + Guid.NewGuid().ToString("N");
        var submitted = await viaA.SubmitJobAsync(network.NetworkId, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8(data), DelayMs = 3_000 } });
        await GoOnlineAsync(b, a, second);
        var checking = await WaitForJobAsync(viaA, network.NetworkId, submitted.JobId, j => j.Attempts.Any(x => IsSpotCheck(x) && x.EndTime is null), "instance A placed the spot-check re-run");
        var orphan = checking.Attempts.Single(IsSpotCheck);

        await a.DisposeAsync(); // A stops while the re-run runs: its mint stays held until another instance acts

        var ledger = b.Services.GetRequiredService<LedgerRepository>();
        await WaitUntilAsync(async () => (await ledger.ListMeteringsAsync(network.NetworkId, CancellationToken.None)).Single(m => m.JobId == submitted.JobId).MintWithheldReason != SpotCheck.PendingReason,
            "instance B settled the held mint");
        var final = await WaitForJobAsync(viaB, network.NetworkId, submitted.JobId, j => j.Attempts.Count(IsSpotCheck) >= 2 && j.Attempts.All(x => x.EndTime is not null), "the re-run placed by B ended");
        var row = await b.Services.GetRequiredService<JobRepository>().GetJobByIdAsync(submitted.JobId, CancellationToken.None);
        var metering = (await ledger.ListMeteringsAsync(network.NetworkId, CancellationToken.None)).Single(m => m.JobId == submitted.JobId);
        var events = (await ledger.ListAsync(network.NetworkId, submitted.JobId, 0, 100, CancellationToken.None)).ToList();
        var balances = await viaB.Ledger.GetBalancesAsync(new GetBalancesRequest { NetworkId = network.NetworkId });
        var reconciled = await viaB.Ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = network.NetworkId });
        var orphanEnded = final.Attempts.Single(x => x.Attempt == orphan.Attempt);
        var recheck = final.Attempts.Where(IsSpotCheck).Single(x => x.Attempt > orphan.Attempt);
        var minted = events.Where(e => e.EventType == (int)LedgerEventType.CreditsMinted).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(final.State, Is.EqualTo(JobState.Completed));
            Assert.That(final.DeviceId, Is.EqualTo(original.Enrollment.DeviceId));
            Assert.That(row!.OwnerInstance, Is.EqualTo("ctl-b"), "B claimed the finished job with its held mint");
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
}

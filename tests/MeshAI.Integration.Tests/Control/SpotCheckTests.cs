using Google.Protobuf;
using MeshAI.Agent.Workloads;
using MeshAI.Client;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Storage;
using MeshAI.Integration.Tests.Security;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>
/// Anti-abuse spot-checks through the real server, relay and in-process agent sessions: with spot_check_sample_bps = 10 000
/// every plaintext echo is re-run on a second device; equal outputs release the original device's mint, a different
/// output flags it and withholds the mint; the ledger reconciles either way.
/// </summary>
[TestFixtureSource(nameof(Stores))]
[Category("Integration")]
[NonParallelizable]
public sealed class SpotCheckTests(string store)
{
    public static readonly string[] Stores = ["sqlite", "postgres"];

    /// <summary>An echo handler that returns something other than its input (a device faking work).</summary>
    private sealed class TamperingEchoHandler : IWorkloadHandler
    {
        public WorkloadClass Workload => WorkloadClass.DiagnosticEcho;

        public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Echo;

        public Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken) =>
            Task.FromResult(new WorkloadOutput { Echo = new EchoOutput { Data = ByteString.CopyFromUtf8("tampered:" + input.Echo.Data.ToStringUtf8()) } });
    }

    private sealed record Outcome(
        SecureMeshHost Host, MeshClient Client, string NetworkId, string OriginalDeviceId, string SecondDeviceId, JobRun Run, Job Final,
        IReadOnlyList<LedgerEventRow> Events, JobMeteringRow Metering, GetBalancesResponse Balances, ReconcileLedgerResponse Reconciled);

    /// <summary>
    /// Only the original device is online when the job (an echo that waits 2 s) is placed; the second device joins while it
    /// runs, so the spot-check can only go there.
    /// </summary>
    private static async Task<Outcome> RunSpotCheckedEchoAsync(SecureMeshHost host, IWorkloadHandler secondHandler)
    {
        var token = await host.SignInAsync("alice@example.com");
        var client = new MeshClient(host.Url, host.Fingerprint, token) { EncryptPayloads = false };
        var network = await client.CreateNetworkAsync("spot", new NetworkSettings { Credits = new CreditSettings { SpotCheckSampleBps = 10_000 } });
        var (first, firstKeys) = await host.JoinAsync(token, network.NetworkId, "original");
        var (second, secondKeys) = await host.JoinAsync(token, network.NetworkId, "second");
        await host.GoOnlineAsync(first, firstKeys);

        var data = "spot-" + Guid.NewGuid().ToString("N");
        var job = await client.SubmitJobAsync(network.NetworkId, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8(data), DelayMs = 2_000 } });
        await host.GoOnlineAsync(second, secondKeys, handler: secondHandler);
        var run = await client.WaitForResultAsync(network.NetworkId, job);
        Assert.That(run.Output.Echo.Data.ToStringUtf8(), Is.EqualTo(data), "the submitter gets the original device's honest output");
        Assert.That(run.Job.DeviceId, Is.EqualTo(first.DeviceId));

        // The spot-check ends asynchronously after the settlement: wait for its attempt to end.
        Job final;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            final = (await client.Jobs.GetJobAsync(new GetJobRequest { NetworkId = network.NetworkId, JobId = job.JobId })).Job;
            if (final.Attempts.Any(a => a.Detail.StartsWith(SpotCheck.AttemptDetailPrefix, StringComparison.Ordinal) && a.EndTime is not null))
            {
                break;
            }

            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the spot-check did not finish: " + string.Join(" | ", final.Attempts.Select(a => a.Detail)));
            await Task.Delay(50);
        }

        var ledger = host.Services.GetRequiredService<LedgerRepository>();
        var events = (await ledger.ListAsync(network.NetworkId, job.JobId, 0, 100, CancellationToken.None)).ToList();
        var metering = (await ledger.ListMeteringsAsync(network.NetworkId, CancellationToken.None)).Single(m => m.JobId == job.JobId);
        var balances = await client.Ledger.GetBalancesAsync(new GetBalancesRequest { NetworkId = network.NetworkId });
        var reconciled = await client.Ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = network.NetworkId });
        return new Outcome(host, client, network.NetworkId, first.DeviceId, second.DeviceId, run, final, events, metering, balances, reconciled);
    }

    private static long DeviceMinted(GetBalancesResponse balances, string deviceId) =>
        balances.Balances.Devices.FirstOrDefault(d => d.DeviceId == deviceId)?.MintedMicro ?? 0;

    private static string Why(ReconcileLedgerResponse r) => string.Join("; ", r.Mismatches.Select(m => $"{m.Subject}: {m.Detail} ({m.LedgerMicro} vs {m.RecomputedMicro})"));

    [Test]
    public async Task Equal_outputs_on_the_second_device_release_the_original_devices_mint()
    {
        await using var host = await SecureMeshHost.StartAsync(store);
        var o = await RunSpotCheckedEchoAsync(host, new EchoHandler());
        using var client = o.Client;
        var ledger = host.Services.GetRequiredService<LedgerRepository>();
        var spot = o.Final.Attempts.Single(a => a.Detail.StartsWith(SpotCheck.AttemptDetailPrefix, StringComparison.Ordinal));
        var minted = o.Events.Where(e => e.EventType == (int)LedgerEventType.CreditsMinted).ToList();
        var originalFlagged = await ledger.IsDeviceFlaggedAsync(o.OriginalDeviceId, CancellationToken.None);
        var secondFlagged = await ledger.IsDeviceFlaggedAsync(o.SecondDeviceId, CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(o.Final.State, Is.EqualTo(JobState.Completed));
            Assert.That(o.Final.DeviceId, Is.EqualTo(o.OriginalDeviceId), "the job keeps the original run's device");
            Assert.That(o.Final.Attempts, Has.Count.EqualTo(2));
            Assert.That(spot.DeviceId, Is.EqualTo(o.SecondDeviceId));
            Assert.That(spot.Cause, Is.EqualTo(AttemptCause.Succeeded));
            Assert.That(spot.Detail, Does.Contain("outputs match"));

            // Settlement events once each; the mint goes to the original device; the re-run has no ledger events or metering.
            Assert.That(o.Events.Select(e => (LedgerEventType)e.EventType), Is.EquivalentTo(new[]
            {
                LedgerEventType.JobStarted, LedgerEventType.JobCompleted, LedgerEventType.CreditsBurned, LedgerEventType.CreditsMinted,
            }));
            Assert.That(o.Events.All(e => e.DeviceId == o.OriginalDeviceId), Is.True);
            Assert.That(minted.Single().AmountMicro, Is.GreaterThan(0));
            Assert.That(o.Metering.DeviceId, Is.EqualTo(o.OriginalDeviceId));
            Assert.That(o.Metering.MintWithheldReason, Is.Empty);
            Assert.That(minted.Single().AmountMicro, Is.EqualTo(LedgerPricing.Price(o.Metering).MintMicro));

            Assert.That(originalFlagged, Is.False);
            Assert.That(secondFlagged, Is.False);
            Assert.That(DeviceMinted(o.Balances, o.OriginalDeviceId), Is.EqualTo(minted.Single().AmountMicro));
            Assert.That(DeviceMinted(o.Balances, o.SecondDeviceId), Is.Zero, "the spot-check run earns nothing");
            Assert.That(o.Balances.Balances.MintedTotalMicro, Is.EqualTo(minted.Single().AmountMicro));
            Assert.That(o.Reconciled.Balanced, Is.True, Why(o.Reconciled));
        });
    }

    [Test]
    public async Task A_different_output_on_the_second_device_flags_the_original_and_withholds_its_mint()
    {
        await using var host = await SecureMeshHost.StartAsync(store);
        var o = await RunSpotCheckedEchoAsync(host, new TamperingEchoHandler());
        using var client = o.Client;
        var ledger = host.Services.GetRequiredService<LedgerRepository>();
        var spot = o.Final.Attempts.Single(a => a.Detail.StartsWith(SpotCheck.AttemptDetailPrefix, StringComparison.Ordinal));
        var flags = (await ledger.ListDeviceFlagsAsync(o.OriginalDeviceId, CancellationToken.None)).ToList();
        var secondFlagged = await ledger.IsDeviceFlaggedAsync(o.SecondDeviceId, CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(o.Final.State, Is.EqualTo(JobState.Completed), "the job itself stays completed and billed");
            Assert.That(spot.DeviceId, Is.EqualTo(o.SecondDeviceId));
            Assert.That(spot.Detail, Does.Contain("MISMATCH"));

            Assert.That(o.Events.Select(e => (LedgerEventType)e.EventType), Is.EquivalentTo(new[]
            {
                LedgerEventType.JobStarted, LedgerEventType.JobCompleted, LedgerEventType.CreditsBurned,
            }), "burned, but nothing minted");
            Assert.That(-o.Events.Single(e => e.EventType == (int)LedgerEventType.CreditsBurned).AmountMicro, Is.GreaterThan(0));
            Assert.That(o.Metering.MintWithheldReason, Does.StartWith(SpotCheck.MismatchReasonPrefix));
            Assert.That(LedgerPricing.Price(o.Metering).MintMicro, Is.Zero);

            Assert.That(flags, Has.Count.EqualTo(1));
            Assert.That(flags.Single().JobId, Is.EqualTo(o.Run.Job.JobId));
            Assert.That(secondFlagged, Is.False);
            Assert.That(DeviceMinted(o.Balances, o.OriginalDeviceId), Is.Zero);
            Assert.That(DeviceMinted(o.Balances, o.SecondDeviceId), Is.Zero);
            Assert.That(o.Balances.Balances.MintedTotalMicro, Is.Zero);
            Assert.That(o.Balances.Balances.BurnedTotalMicro, Is.GreaterThan(0));
            Assert.That(o.Reconciled.Balanced, Is.True, Why(o.Reconciled));
        });
    }
}

using MeshAI.Agent.Models;
using MeshAI.Agent.Workloads;
using MeshAI.Client;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Audit.V1;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Security;
using MeshAI.Control.Storage;
using MeshAI.Integration.Tests.Security;
using MeshAI.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>
/// Anti-abuse canary jobs (docs/anti-abuse.md) through the real server, relay and agent session, with the real
/// all-MiniLM-L6-v2 weights and the known-answer table written by <c>meshai-agent models known-answers</c>. The network's
/// canary rate is 10 000 bps, so every settled job is followed by a canary on its device (an embeddings job of a
/// known text, sealed like a client's job). An honest device answers it with the real model and keeps earning; a
/// device whose embeddings worker fakes its vectors is flagged, its held mint is withheld, and later work mints nothing.
/// Either way the canaries are billed to nobody and the ledger reconciles.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class CanaryTests
{
    private string _answers = "";
    private string _modelsRoot = "";

    /// <summary>Embeddings over the real model, recording the texts it was asked to embed (an honest worker).</summary>
    private sealed class RecordingEmbeddings(EmbeddingsHandler inner) : IWorkloadHandler
    {
        public List<string> Texts { get; } = [];

        public WorkloadClass Workload => WorkloadClass.Embeddings;

        public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Embeddings;

        public Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
        {
            lock (Texts)
            {
                Texts.AddRange(input.Embeddings.Texts);
            }

            return inner.RunAsync(input, context, cancellationToken);
        }
    }

    /// <summary>A worker that fakes embeddings: unit vectors of the right dimension from a seeded generator, no model run.</summary>
    private sealed class TamperingEmbeddings(int dimension) : IWorkloadHandler
    {
        private readonly Random _random = new(7);

        public WorkloadClass Workload => WorkloadClass.Embeddings;

        public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Embeddings;

        public Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
        {
            var output = new EmbeddingsOutput { Model = input.Embeddings.Model, Dimension = dimension };
            foreach (var _ in input.Embeddings.Texts)
            {
                var v = Enumerable.Range(0, dimension).Select(_ => (float)(_random.NextDouble() - 0.5)).ToArray();
                var norm = (float)Math.Sqrt(v.Sum(x => x * x));
                var embedding = new Embedding();
                embedding.Values.AddRange(v.Select(x => x / norm));
                output.Embeddings.Add(embedding);
            }

            return Task.FromResult(new WorkloadOutput { Embeddings = output });
        }
    }

    /// <summary>A worker whose embeddings never come back: the canary stays in flight until its control instance stops.</summary>
    private sealed class SilentEmbeddings : IWorkloadHandler
    {
        public WorkloadClass Workload => WorkloadClass.Embeddings;

        public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Embeddings;

        public async Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return new WorkloadOutput();
        }
    }

    [OneTimeSetUp]
    public async Task WriteKnownAnswersAsync()
    {
        _modelsRoot = await ProvisionedModels.EnsureAsync();
        var dir = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "meshai-canary-" + Guid.NewGuid().ToString("N")[..10])).FullName;
        _answers = Path.Combine(dir, "known-answers.json");
        await using var run = await ProcessRunner.RunAsync(new ProcessRunnerOptions
        {
            FileName = ProcessRunner.DotnetHostPath,
            Arguments = [RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent"), "models", "known-answers", "--state-dir", Path.Combine(dir, "agent"), "--model-cache", _modelsRoot, "--out", _answers],
            Name = "known-answers",
        }, TimeSpan.FromMinutes(3), CancellationToken.None);
        Assert.That(run.ExitCode, Is.Zero, run.Output);
        Assert.That(run.Output, Does.Contain("MESHAI_KNOWN_ANSWERS").And.Contain(ProvisionedModels.MiniLm));
    }

    private sealed record Outcome(
        SecureMeshHost Host, MeshClient Client, string NetworkId, string DeviceId, IReadOnlyList<JobRun> Runs, IReadOnlyList<JobMeteringRow> Meterings,
        IReadOnlyList<LedgerEventRow> Events, GetBalancesResponse Balances, ReconcileLedgerResponse Reconciled, IReadOnlyList<DeviceFlagRow> Flags,
        IReadOnlyList<AuditEvent> Audit, int JobRows, Device Card);

    /// <summary>Runs two echo jobs on one device (each followed by a canary) and collects the books once every canary is judged.</summary>
    private async Task<Outcome> RunTwoJobsAsync(SecureMeshHost host, Func<LocalModelSet, IWorkloadHandler> embeddings)
    {
        var token = await host.SignInAsync("alice@example.com");
        var client = new MeshClient(host.Url, host.Fingerprint, token);
        var network = await client.CreateNetworkAsync("canary", new NetworkSettings { Credits = new CreditSettings { CanaryRateBps = 10_000 } });
        Assert.That(network.Settings.Credits.CanaryRateBps, Is.EqualTo(10_000));
        var (device, keys) = await host.JoinAsync(token, network.NetworkId, "worker");
        var models = LocalModelSet.Discover(null, [_modelsRoot], ProvisionedModels.MiniLm, (_, _) => { });
        var registry = new WorkloadRegistry([new EchoHandler(), embeddings(models)], models);
        await host.GoOnlineAsync(device, keys, registry);

        var ledger = host.Services.GetRequiredService<LedgerRepository>();
        var runs = new List<JobRun>();
        for (var i = 0; i < 2; i++)
        {
            var data = $"job {i} " + Guid.NewGuid().ToString("N");
            var job = await client.SubmitJobAsync(network.NetworkId, new WorkloadInput { Echo = new EchoInput { Data = Google.Protobuf.ByteString.CopyFromUtf8(data), DelayMs = 200 } });
            var run = await client.WaitForResultAsync(network.NetworkId, job);
            Assert.That(run.Output.Echo.Data.ToStringUtf8(), Is.EqualTo(data), "the submitter gets the device's output");
            runs.Add(run);

            // The canary is judged after the settlement: wait until the held mint is resolved.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await ledger.ListMeteringsAsync(network.NetworkId, CancellationToken.None)).Any(m => m.MintWithheldReason == Canary.PendingReason))
            {
                Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the canary after job " + i + " was not judged");
                await Task.Delay(50);
            }
        }

        var meterings = (await ledger.ListMeteringsAsync(network.NetworkId, CancellationToken.None)).ToList();
        var events = (await ledger.ListAsync(network.NetworkId, null, 0, 1000, CancellationToken.None)).ToList();
        var balances = await client.Ledger.GetBalancesAsync(new GetBalancesRequest { NetworkId = network.NetworkId });
        var reconciled = await client.Ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = network.NetworkId });
        var flags = (await ledger.ListDeviceFlagsAsync(device.DeviceId, CancellationToken.None)).ToList();
        var (audit, _) = await host.Services.GetRequiredService<AuditLog>().ListAsync(network.NetworkId, 500, "", CancellationToken.None);
        var jobRows = (await host.Services.GetRequiredService<JobRepository>().ListJobsAsync(network.NetworkId, [], long.MaxValue, "", 100, CancellationToken.None)).Count();
        var card = (await client.Devices.ListDevicesAsync(new ListDevicesRequest { NetworkId = network.NetworkId })).Devices.Single();
        return new Outcome(host, client, network.NetworkId, device.DeviceId, runs, meterings, events, balances, reconciled, flags, audit, jobRows, card);
    }

    private static long DeviceMinted(GetBalancesResponse balances, string deviceId) =>
        balances.Balances.Devices.FirstOrDefault(d => d.DeviceId == deviceId)?.MintedMicro ?? 0;

    private static string Why(ReconcileLedgerResponse r) => string.Join("; ", r.Mismatches.Select(m => $"{m.Subject}: {m.Detail} ({m.LedgerMicro} vs {m.RecomputedMicro})"));

    /// <summary>What every canary run shares: two jobs billed, nothing else — no job row, metering or ledger event for a canary.</summary>
    private static void AssertCanariesCostNothing(Outcome o)
    {
        var jobIds = o.Runs.Select(r => r.Job.JobId).ToHashSet();
        Assert.That(o.JobRows, Is.EqualTo(2), "canaries are not jobs of the network");
        Assert.That(o.Meterings.Select(m => m.JobId), Is.EquivalentTo(jobIds), "only the two jobs have execution records");
        Assert.That(o.Events.All(e => jobIds.Contains(e.JobId) || e.EventType == (int)LedgerEventType.CreditsGranted), Is.True, "every ledger event belongs to one of the two jobs");
        var burned = -o.Events.Where(e => e.EventType == (int)LedgerEventType.CreditsBurned).Sum(e => e.AmountMicro);
        Assert.That(burned, Is.EqualTo(o.Runs.Sum(r => r.Job.CostMicro)).And.GreaterThan(0), "the network pays for its two jobs only");
        Assert.That(o.Balances.Balances.BurnedTotalMicro, Is.EqualTo(burned));
        Assert.That(o.Reconciled.Balanced, Is.True, Why(o.Reconciled));
    }

    [Test]
    public async Task An_honest_device_answers_its_canaries_and_keeps_earning()
    {
        await using var host = await SecureMeshHost.StartAsync("sqlite", ["--Control:Canary:KnownAnswersFile", _answers], null);
        RecordingEmbeddings? honest = null;
        var o = await RunTwoJobsAsync(host, models => honest = new RecordingEmbeddings(new EmbeddingsHandler(models)));
        using var client = o.Client;
        var minted = o.Events.Where(e => e.EventType == (int)LedgerEventType.CreditsMinted).ToList();
        var why = "records: " + string.Join(" | ", o.Meterings.Select(m => $"{m.JobId} '{m.MintWithheldReason}'")) + "; flags: " + string.Join(" | ", o.Flags.Select(f => f.Reason));
        Assert.Multiple(() =>
        {
            Assert.That(honest!.Texts, Has.Count.EqualTo(2), "two canaries reached the device's embeddings worker; " + why);
            // Each canary picks its text at random, so two may carry the same one: every text must be a canary text (a set
            // comparison; Is.SubsetOf on the list counts duplicates and failed when both canaries drew the same text).
            Assert.That(honest.Texts.Distinct(), Is.SubsetOf(MeshAI.Agent.Commands.AgentCommands.CanaryTexts));
            Assert.That(o.Flags, Is.Empty, why);
            Assert.That(o.Card.AntiAbuseFlag, Is.Empty, "the device list shows no flag");
            Assert.That(o.Audit.Where(a => a.Action == AuditAction.DeviceFlagged), Is.Empty);
            Assert.That(o.Meterings.Select(m => m.MintWithheldReason), Is.All.Empty, "both held mints were released; " + why);
            Assert.That(minted, Has.Count.EqualTo(2), why);
            Assert.That(minted.All(e => e.DeviceId == o.DeviceId && e.AmountMicro > 0), Is.True);
            Assert.That(minted.Sum(e => e.AmountMicro), Is.EqualTo(o.Meterings.Sum(m => LedgerPricing.Price(m).MintMicro)));
            Assert.That(DeviceMinted(o.Balances, o.DeviceId), Is.EqualTo(minted.Sum(e => e.AmountMicro)));
            AssertCanariesCostNothing(o);
        });
    }

    [Test]
    public async Task A_device_faking_embeddings_fails_a_canary_is_flagged_and_its_mint_is_withheld()
    {
        await using var host = await SecureMeshHost.StartAsync("sqlite", ["--Control:Canary:KnownAnswersFile", _answers], null);
        var o = await RunTwoJobsAsync(host, models => new TamperingEmbeddings(models.Default!.Manifest.Dimension));
        using var client = o.Client;
        var first = o.Meterings.Single(m => m.JobId == o.Runs[0].Job.JobId);
        var second = o.Meterings.Single(m => m.JobId == o.Runs[1].Job.JobId);
        var flagged = o.Audit.Where(a => a.Action == AuditAction.DeviceFlagged).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(o.Runs.Select(r => r.Job.State), Is.All.EqualTo(JobState.Completed), "the jobs themselves stay completed and billed");
            Assert.That(first.MintWithheldReason, Does.StartWith(Canary.FailedReasonPrefix).And.Contain("cosine"), "the held mint of the job before the canary is withheld");
            Assert.That(second.MintWithheldReason, Does.Contain("flagged"), "later work mints nothing (mint rule 2)");
            Assert.That(o.Flags, Is.Not.Empty);
            Assert.That(o.Flags[^1].JobId, Is.EqualTo(o.Runs[0].Job.JobId));
            Assert.That(o.Flags[^1].Reason, Does.StartWith(ErrorReasons.CanaryFailed));
            Assert.That(o.Card.AntiAbuseFlag, Does.StartWith(ErrorReasons.CanaryFailed), "the device list shows the flag");
            Assert.That(flagged, Is.Not.Empty, "an audit event records the flag");
            Assert.That(flagged[0].Target, Is.EqualTo(o.DeviceId));
            Assert.That(flagged[0].Details["reason"], Is.EqualTo(ErrorReasons.CanaryFailed));
            Assert.That(flagged[0].Details["job_id"], Is.EqualTo(o.Runs[0].Job.JobId));
            Assert.That(o.Events.Where(e => e.EventType == (int)LedgerEventType.CreditsMinted), Is.Empty);
            Assert.That(o.Balances.Balances.MintedTotalMicro, Is.Zero);
            Assert.That(DeviceMinted(o.Balances, o.DeviceId), Is.Zero);
            AssertCanariesCostNothing(o);
        });
    }

    [Test]
    public async Task A_canary_lost_with_its_control_instance_is_inconclusive_and_the_next_owner_releases_the_held_mint()
    {
        string[] shared =
        [
            "--Control:Canary:KnownAnswersFile", _answers,
            "--Control:Jobs:LeaseMs", "2000", "--Control:Jobs:LeaseRenewIntervalMs", "500", "--Control:Jobs:ClaimIntervalMs", "500",
        ];
        var a = await SecureMeshHost.StartAsync("postgres", [.. shared, "--instance-id", "ctl-a", "--relay-id", "relay-a"], null, null);
        SecureMeshHost? b = null;
        try
        {
            var token = await a.SignInAsync("lost-canary@example.com");
            using var client = new MeshClient(a.Url, a.Fingerprint, token);
            var network = await client.CreateNetworkAsync("lost-canary", new NetworkSettings { Credits = new CreditSettings { CanaryRateBps = 10_000 } });
            var (device, keys) = await a.JoinAsync(token, network.NetworkId, "worker");
            var models = LocalModelSet.Discover(null, [_modelsRoot], ProvisionedModels.MiniLm, (_, _) => { });
            await a.GoOnlineAsync(device, keys, new WorkloadRegistry([new EchoHandler(), new SilentEmbeddings()], models));

            var data = "lost-canary " + Guid.NewGuid().ToString("N");
            var job = await client.SubmitJobAsync(network.NetworkId, new WorkloadInput { Echo = new EchoInput { Data = Google.Protobuf.ByteString.CopyFromUtf8(data) } });
            var run = await client.WaitForResultAsync(network.NetworkId, job);
            Assert.That(run.Output.Echo.Data.ToStringUtf8(), Is.EqualTo(data));
            var ledgerA = a.Services.GetRequiredService<LedgerRepository>();
            var held = (await ledgerA.ListMeteringsAsync(network.NetworkId, CancellationToken.None)).Single();
            Assert.That(held.MintWithheldReason, Is.EqualTo(Canary.PendingReason), "the mint is held while the canary is unanswered");

            // A second instance over the same database; then A stops with the canary in flight (nothing written, its lease runs out).
            b = await SecureMeshHost.StartAsync("postgres", [.. shared, "--instance-id", "ctl-b", "--relay-id", "relay-b"], null, sibling: a);
            await Task.Delay(1_500); // A renews the held job's lease meanwhile: B must not take it from a live owner
            Assert.That((await ledgerA.ListMeteringsAsync(network.NetworkId, CancellationToken.None)).Single().MintWithheldReason, Is.EqualTo(Canary.PendingReason),
                "the owner is alive: its held mint is not claimed");
            await a.DisposeAsync();

            var ledger = b.Services.GetRequiredService<LedgerRepository>();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            JobMeteringRow metering;
            while ((metering = (await ledger.ListMeteringsAsync(network.NetworkId, CancellationToken.None)).Single()).MintWithheldReason == Canary.PendingReason)
            {
                Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "instance B did not settle the held mint");
                await Task.Delay(100);
            }

            using var viaB = new MeshClient(b.Url, b.Fingerprint, token);
            var events = (await ledger.ListAsync(network.NetworkId, job.JobId, 0, 100, CancellationToken.None)).ToList();
            var minted = events.Where(e => e.EventType == (int)LedgerEventType.CreditsMinted).ToList();
            var reconciled = await viaB.Ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = network.NetworkId });
            var flags = (await ledger.ListDeviceFlagsAsync(device.DeviceId, CancellationToken.None)).ToList();
            Assert.Multiple(() =>
            {
                Assert.That(metering.MintWithheldReason, Is.Empty, "a lost canary is inconclusive: the mint is released");
                Assert.That(minted, Has.Count.EqualTo(1), "minted exactly once");
                Assert.That(minted.Single().DeviceId, Is.EqualTo(device.DeviceId));
                Assert.That(minted.Single().AmountMicro, Is.EqualTo(LedgerPricing.Price(metering).MintMicro));
                Assert.That(flags, Is.Empty, "an unanswered canary flags nobody");
                Assert.That(reconciled.Balanced, Is.True, Why(reconciled));
            });
        }
        finally
        {
            await a.DisposeAsync();
            if (b is not null)
            {
                await b.DisposeAsync();
            }
        }
    }
}

using System.Text.Json;
using Google.Protobuf;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Issue 7's hard cap during execution through real processes: a job that runs past its max_cost_credits is cancelled on
/// the agent, ends COST_CAP and is billed exactly the cap; the ledger still reconciles.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class CostCapEndToEndTests
{
    private const string AdminEmail = "cost-cap@example.com";
    private LocalMesh _mesh = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;

    /// <summary>Server and an admin session.</summary>
    [OneTimeSetUp]
    public async Task StartMeshAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 10 });
        var cliConfig = Path.Combine(_mesh.DataDirectory, "cli.json");
        var token = await _mesh.SignInWithCliAsync(cliConfig, AdminEmail);
        _channel = _mesh.Channel(token);
    }

    /// <summary>Stops every process.</summary>
    [OneTimeTearDown]
    public async Task StopMeshAsync()
    {
        _channel?.Dispose();
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task A_job_that_runs_past_max_cost_credits_is_cancelled_with_cause_cost_cap_and_billed_exactly_the_cap()
    {
        var (networkId, _) = await MeshJobs.NetworkWithAgentsAsync(_mesh, _channel, "cap", count: 1);
        var jobs = new JobService.JobServiceClient(_channel);

        // Three quick echoes give the estimator observed history (EstimateMinRuns), so a long echo is estimated from the
        // median of short runs: it passes the up-front check and then runs into the cap during execution.
        for (var i = 0; i < 3; i++)
        {
            var quick = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Echo(networkId, 0, 0) })).Job;
            var ran = await MeshJobs.WaitForJobAsync(jobs, networkId, quick.JobId, j => j.State is JobState.Completed or JobState.Failed, TimeSpan.FromSeconds(60));
            Assert.That(ran.State, Is.EqualTo(JobState.Completed), ran.ErrorMessage);
        }

        var estimate = await jobs.EstimateJobAsync(new EstimateJobRequest { Envelope = Echo(networkId, 30_000, 0) });
        TestContext.Out.WriteLine($"estimate {estimate.EstimatedCostMicro} µ for {estimate.EstimatedRuntimeMs} ms on {estimate.ExpectedTier}");
        var cap = 2 * estimate.EstimatedCostMicro;
        Assert.That(cap, Is.GreaterThan(0));

        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Echo(networkId, 30_000, cap) })).Job;
        var done = await MeshJobs.WaitForJobAsync(jobs, networkId, job.JobId, j => j.State is JobState.Completed or JobState.Failed or JobState.Cancelled, TimeSpan.FromSeconds(25));
        TestContext.Out.WriteLine($"{done.State}: {done.ErrorMessage}");
        Assert.That(done.State, Is.EqualTo(JobState.Cancelled), done.ErrorMessage);
        Assert.That(done.Attempts.Single().Cause, Is.EqualTo(AttemptCause.CostCap));
        Assert.That(done.CostMicro, Is.EqualTo(cap), "billed exactly up to the cap");

        var events = await MeshJobs.LedgerEventsAsync(_channel, networkId, job.JobId);
        Assert.That(events.Where(e => e.EventType == LedgerEventType.CreditsBurned).Select(e => e.AmountMicro), Is.EqualTo(new[] { -cap }));
        Assert.That(events.Count(e => e.EventType == LedgerEventType.JobFailed), Is.EqualTo(1));
        Assert.That(events.Where(e => e.EventType is LedgerEventType.CreditsMinted or LedgerEventType.JobCompleted), Is.Empty, "no validated result, nothing minted");
        Assert.That(events.Select(e => e.IdempotencyKey), Is.Unique);
        var reconciled = await new LedgerService.LedgerServiceClient(_channel).ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = networkId });
        Assert.That(reconciled.Balanced, Is.True, string.Join("; ", reconciled.Mismatches.Select(m => $"{m.Subject}: {m.Detail}")));
    }

    private static JobEnvelope Echo(string networkId, int delayMs, long maxCostMicro) => new()
    {
        NetworkId = networkId,
        WorkloadId = WorkloadClass.DiagnosticEcho,
        RoutingMode = RoutingMode.Auto,
        DataSensitivityTag = DataSensitivityTag.Private,
        TimeoutMs = 60_000,
        MaxCostCredits = maxCostMicro,
        InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("capped"), DelayMs = delayMs } }.ToByteString() },
        PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
    };
}

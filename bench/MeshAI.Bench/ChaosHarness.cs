using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Testing;

namespace MeshAI.Bench;

/// <summary>Knobs of one chaos run.</summary>
public sealed record ChaosOptions(
    int Jobs = 1000,
    int Agents = 4,
    int Concurrency = 16,
    double KillEverySeconds = 3,
    double AgentDownSeconds = 1,
    int CalmJobs = 200,
    int EchoDelayMs = 500,
    double ServerRestartAt = 0.4,
    string Store = "sqlite",
    string? ReportPath = null);

/// <summary>What happened to one job.</summary>
public sealed record ChaosJob(
    string Phase, string JobId, string State, string Category, string Error, long ServerLatencyMs, long ClientLatencyMs, int SubmitRetries, int Attempts,
    int CompletedEvents, int FailedEvents, int BurnEvents);

/// <summary>
/// The chaos run (issue 15): real meshai-server + four real meshai-agent processes on loopback; a calm phase measures the
/// baseline, then at least 1,000 echo jobs run while a random agent is killed (SIGKILL) every few seconds and restarted,
/// and the server is killed and restarted once. Submits use idempotency keys and are retried on transient errors (as a
/// client should). Afterwards every job is checked against the ledger (a completed job: exactly one job_completed and one
/// credits_burned; a failed job: never billed) and the network is reconciled. Prints the success rate, the failure
/// causes and the p99 the chaos adds, and writes a JSON report. Exit code 0 only when every invariant held.
/// </summary>
public static class ChaosHarness
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private static readonly AttemptCause[] RetryableCauses = [AttemptCause.Disconnect, AttemptCause.Timeout, AttemptCause.NodeDecline];

    /// <summary>Runs the calm baseline and the chaos phase, verifies, prints and returns the exit code.</summary>
    public static async Task<int> RunAsync(ChaosOptions o, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(o);
        var started = Stopwatch.StartNew();
        var postgres = o.Store == "postgres" ? await SharedInfrastructure.CreatePostgresDatabaseAsync("chaos", cancellationToken) : null;
        try
        {
            await using var mesh = await LocalMesh.StartAsync(new LocalMeshOptions
            {
                Store = postgres is null ? MeshStore.Sqlite : MeshStore.Postgres,
                PostgresConnectionString = postgres,
            }, cancellationToken);
            var token = await mesh.SignInAsync("chaos@example.com", cancellationToken);
            using var channel = mesh.Channel(token);
            var network = (await new NetworkService.NetworkServiceClient(channel).CreateNetworkAsync(new CreateNetworkRequest { Name = "chaos" }, cancellationToken: cancellationToken)).Network.NetworkId;
            var join = await new DeviceService.DeviceServiceClient(channel).CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network, MaxUses = o.Agents }, cancellationToken: cancellationToken);
            var agents = new List<MeshAgent>();
            for (var i = 0; i < o.Agents; i++)
            {
                agents.Add(await mesh.StartAgentAsync(join.JoinLink, "chaos-" + i, cancellationToken));
            }

            // Warm-up (not measured): each agent starts its sandboxed echo worker on its first job; a cold start is not chaos.
            var warmup = await RunJobsAsync("warmup", o.Agents * 4, o, channel, network, onSubmitted: null, cancellationToken);
            Console.WriteLine($"chaos: server + {o.Agents} agents up and warm after {started.Elapsed.TotalSeconds:F0} s; calm phase of {o.CalmJobs} jobs");
            var calm = await RunJobsAsync("calm", o.CalmJobs, o, channel, network, onSubmitted: null, cancellationToken);

            Console.WriteLine($"chaos: {o.Jobs} jobs; a random agent killed every {o.KillEverySeconds} s, the server killed and restarted at {o.ServerRestartAt:P0} of submissions");
            using var chaosStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var kills = 0;
            var agentGate = new SemaphoreSlim(1, 1);
            var chaos = Task.Run(async () =>
            {
                var random = new Random(15);
                while (!chaosStop.IsCancellationRequested)
                {
                    await Task.Delay(TimeSpan.FromSeconds(o.KillEverySeconds), chaosStop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                    if (chaosStop.IsCancellationRequested)
                    {
                        break;
                    }

                    var index = random.Next(agents.Count);
                    await agentGate.WaitAsync(CancellationToken.None);
                    try
                    {
                        agents[index].Process.Kill();
                        Interlocked.Increment(ref kills);
                        await Task.Delay(TimeSpan.FromSeconds(o.AgentDownSeconds), CancellationToken.None);
                        agents[index] = await mesh.RestartAgentAsync(agents[index], CancellationToken.None);
                    }
                    catch (Exception e) when (e is TimeoutException or InvalidOperationException)
                    {
                        Console.WriteLine($"chaos: restarting agent {index} failed ({e.Message.Split('\n')[0]}); retrying next round");
                    }
                    finally
                    {
                        agentGate.Release();
                    }
                }
            }, CancellationToken.None);

            Task? serverRestart = null;
            var restartWatch = new Stopwatch();
            var restartAt = (int)(o.Jobs * o.ServerRestartAt);
            var chaosJobs = await RunJobsAsync("chaos", o.Jobs, o, channel, network, submitted =>
            {
                if (submitted == restartAt && serverRestart is null)
                {
                    serverRestart = Task.Run(async () =>
                    {
                        restartWatch.Start();
                        await mesh.RestartServerAsync(kill: true, CancellationToken.None);
                        restartWatch.Stop();
                        Console.WriteLine($"chaos: server killed and back after {restartWatch.Elapsed.TotalSeconds:F1} s");
                    }, CancellationToken.None);
                }
            }, cancellationToken);
            await chaosStop.CancelAsync();
            await chaos;
            if (serverRestart is not null)
            {
                await serverRestart;
            }

            var all = warmup.Concat(calm).Concat(chaosJobs).ToList();
            var ledger = new LedgerService.LedgerServiceClient(channel);
            var verified = new List<ChaosJob>();
            foreach (var job in all)
            {
                verified.Add(await WithLedgerAsync(ledger, network, job, cancellationToken));
            }

            var reconcile = await ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = network }, cancellationToken: cancellationToken);
            return Report(o, verified, kills, serverRestart is not null, restartWatch.Elapsed, reconcile, started.Elapsed);
        }
        finally
        {
            if (postgres is not null)
            {
                await SharedInfrastructure.StopAllAsync();
            }
        }
    }

    private static async Task<List<ChaosJob>> RunJobsAsync(string phase, int count, ChaosOptions o, Grpc.Net.Client.GrpcChannel channel, string network, Action<int>? onSubmitted, CancellationToken ct)
    {
        var jobs = new JobService.JobServiceClient(channel);
        var results = new ConcurrentBag<ChaosJob>();
        var next = -1;
        var submitted = 0;
        var workers = Enumerable.Range(0, o.Concurrency).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                results.Add(await RunOneAsync(phase, i, o, jobs, network, () => onSubmitted?.Invoke(Interlocked.Increment(ref submitted)), ct));
            }
        }, ct)).ToList();
        await Task.WhenAll(workers);
        return [.. results];
    }

    private static async Task<ChaosJob> RunOneAsync(string phase, int i, ChaosOptions o, JobService.JobServiceClient jobs, string network, Action submittedOnce, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var request = new SubmitJobRequest
        {
            IdempotencyKey = $"chaos-{phase}-{i}",
            Envelope = new JobEnvelope
            {
                NetworkId = network,
                WorkloadId = WorkloadClass.DiagnosticEcho,
                InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8($"{phase}-{i}"), DelayMs = o.EchoDelayMs } }.ToByteString() },
            },
        };

        Job? job = null;
        var retries = 0;
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (job is null)
        {
            try
            {
                job = (await jobs.SubmitJobAsync(request, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: ct)).Job;
            }
            catch (RpcException e) when (Transient(e) && DateTime.UtcNow < deadline)
            {
                retries++;
                await Task.Delay(Math.Min(2000, 100 * retries), ct);
            }
            catch (RpcException e)
            {
                return new ChaosJob(phase, "", "NOT_SUBMITTED", "submit refused", RpcErrors.Describe(e), 0, watch.ElapsedMilliseconds, retries, 0, 0, 0, 0);
            }
        }

        submittedOnce();
        while (job.State is not (JobState.Completed or JobState.Failed or JobState.Cancelled) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, ct);
            try
            {
                job = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = network, JobId = job.JobId }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct)).Job;
            }
            catch (RpcException e) when (Transient(e))
            {
                // the server is restarting; keep asking
            }
        }

        var client = watch.ElapsedMilliseconds;
        var category = job.State switch
        {
            JobState.Completed => "completed",
            JobState.Failed when job.Attempts.Count > 0 && job.Attempts.All(a => a.EndTime is not null) && RetryableCauses.Contains(job.Attempts[^1].Cause) =>
                "failed, retryable (retries exhausted, last cause " + job.Attempts[^1].Cause + ")",
            JobState.Failed when job.ErrorMessage.Contains("restart", StringComparison.OrdinalIgnoreCase) => "failed: interrupted by the server restart",
            JobState.Failed => "failed, not retryable",
            JobState.Cancelled => "cancelled",
            _ => "lost (not terminal after 3 min)",
        };
        return new ChaosJob(phase, job.JobId, job.State.ToString(), category, job.ErrorMessage, job.LatencyMs, client, retries, job.Attempts.Count, 0, 0, 0);
    }

    private static bool Transient(RpcException e) =>
        e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Aborted or StatusCode.Internal or StatusCode.Cancelled ||
        RpcErrors.ReasonOf(e) == ErrorReasons.NoEligibleDevice;

    private static async Task<ChaosJob> WithLedgerAsync(LedgerService.LedgerServiceClient ledger, string network, ChaosJob job, CancellationToken ct)
    {
        if (job.JobId.Length == 0)
        {
            return job;
        }

        var events = (await ledger.ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = network, JobId = job.JobId, PageSize = 100 }, cancellationToken: ct)).Events;
        return job with
        {
            CompletedEvents = events.Count(e => e.EventType == LedgerEventType.JobCompleted),
            FailedEvents = events.Count(e => e.EventType == LedgerEventType.JobFailed),
            BurnEvents = events.Count(e => e.EventType == LedgerEventType.CreditsBurned),
        };
    }

    private static int Report(ChaosOptions o, List<ChaosJob> jobs, int kills, bool restarted, TimeSpan restartTook, ReconcileLedgerResponse reconcile, TimeSpan took)
    {
        var c = CultureInfo.InvariantCulture;
        static double P(IEnumerable<long> values, double q)
        {
            var sorted = values.Order().ToList();
            return sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];
        }

        var calm = jobs.Where(j => j.Phase == "calm").ToList();
        var chaos = jobs.Where(j => j.Phase == "chaos").ToList();
        var calmDone = calm.Where(j => j.State == "Completed").ToList();
        var chaosDone = chaos.Where(j => j.State == "Completed").ToList();
        var doubleCounted = jobs.Where(j => j.State == "Completed" && (j.CompletedEvents != 1 || j.BurnEvents != 1)).ToList();
        var billedFailures = jobs.Where(j => j.State != "Completed" && j.BurnEvents > 0).ToList();
        var unledgeredFailures = jobs.Where(j => j.State == "Failed" && j.FailedEvents == 0).ToList();
        var notRetryable = chaos.Where(j => !(j.Category == "completed" || j.Category.StartsWith("failed, retryable", StringComparison.Ordinal))).ToList();

        Console.WriteLine();
        Console.WriteLine(string.Create(c, $"## Chaos run: {o.Jobs} jobs, {o.Agents} agents, {kills} agent kills, server restarted {(restarted ? "once" : "never")} ({restartTook.TotalSeconds:F1} s), {took.TotalMinutes:F1} min, store {o.Store}"));
        Console.WriteLine();
        Console.WriteLine("| phase | jobs | completed | success rate | p50 ms (server) | p99 ms (server) | p99 ms (client, incl. resubmits) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var (name, all, done) in new[] { ("calm", calm, calmDone), ("chaos", chaos, chaosDone) })
        {
            Console.WriteLine(string.Create(c, $"| {name} | {all.Count} | {done.Count} | {100.0 * done.Count / Math.Max(1, all.Count):F1} % | {P(done.Select(j => j.ServerLatencyMs), 0.5):F0} | {P(done.Select(j => j.ServerLatencyMs), 0.99):F0} | {P(done.Select(j => j.ClientLatencyMs), 0.99):F0} |"));
        }

        var addedServer = P(chaosDone.Select(j => j.ServerLatencyMs), 0.99) - P(calmDone.Select(j => j.ServerLatencyMs), 0.99);
        var addedClient = P(chaosDone.Select(j => j.ClientLatencyMs), 0.99) - P(calmDone.Select(j => j.ClientLatencyMs), 0.99);
        Console.WriteLine();
        Console.WriteLine(string.Create(c, $"added p99 under chaos: {addedServer:F0} ms server-side (submit to result), {addedClient:F0} ms client-observed; submits retried {chaos.Sum(j => j.SubmitRetries)} times"));
        Console.WriteLine("outcomes (chaos phase):");
        foreach (var group in chaos.GroupBy(j => j.Category).OrderByDescending(g => g.Count()))
        {
            Console.WriteLine($"  {group.Count(),5}  {group.Key}{(group.Key == "completed" ? "" : "  e.g. " + group.First().Error)}");
        }

        Console.WriteLine(string.Create(c, $"ledger: {doubleCounted.Count} completed jobs not exactly once (job_completed, credits_burned); {billedFailures.Count} unfinished jobs billed; {unledgeredFailures.Count} failed jobs without a job_failed event; reconcile {(reconcile.Balanced ? "balanced" : "NOT balanced")} over {reconcile.JobsChecked} jobs, {reconcile.EventsChecked} events"));
        var violations = notRetryable.Count + doubleCounted.Count + billedFailures.Count + (reconcile.Balanced ? 0 : 1);
        Console.WriteLine(violations == 0
            ? "RESULT: every job completed or failed with a retryable cause, each exactly once in the ledger, reconcile balanced"
            : $"RESULT: {notRetryable.Count} job(s) neither completed nor failed retryably, {doubleCounted.Count + billedFailures.Count} ledger anomalies, reconcile {(reconcile.Balanced ? "balanced" : "not balanced")}");

        if (o.ReportPath is { Length: > 0 } path)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            File.WriteAllText(path, JsonSerializer.Serialize(new
            {
                options = o, kills, restarted, restartSeconds = restartTook.TotalSeconds, minutes = took.TotalMinutes,
                calm = new { jobs = calm.Count, completed = calmDone.Count, p50 = P(calmDone.Select(j => j.ServerLatencyMs), 0.5), p99 = P(calmDone.Select(j => j.ServerLatencyMs), 0.99) },
                chaos = new
                {
                    jobs = chaos.Count, completed = chaosDone.Count, successRate = (double)chaosDone.Count / Math.Max(1, chaos.Count),
                    p50 = P(chaosDone.Select(j => j.ServerLatencyMs), 0.5), p99 = P(chaosDone.Select(j => j.ServerLatencyMs), 0.99),
                    clientP99 = P(chaosDone.Select(j => j.ClientLatencyMs), 0.99), addedP99Server = addedServer, addedP99Client = addedClient,
                    outcomes = chaos.GroupBy(j => j.Category).ToDictionary(g => g.Key, g => g.Count()),
                },
                ledger = new { notExactlyOnce = doubleCounted.Count, billedFailures = billedFailures.Count, failedWithoutEvent = unledgeredFailures.Count, reconcile.Balanced },
                jobs,
            }, Indented));
            Console.WriteLine("report: " + path);
        }

        return violations == 0 ? 0 : 1;
    }
}

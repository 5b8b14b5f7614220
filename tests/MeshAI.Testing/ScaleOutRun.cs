using Google.Protobuf;
using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Testing;

/// <summary>What a scale-out run saw.</summary>
public sealed record ScaleOutOutcome(int Jobs, int Completed, int Lost, int DoubleBilled, bool Balanced, IReadOnlyList<string> Problems)
{
    /// <summary>True when every job completed, billed once, and the ledger reconciles.</summary>
    public bool Ok => Completed == Jobs && Lost == 0 && DoubleBilled == 0 && Balanced;

    /// <summary>The one-line verdict scripts/scale-out.sh ends with.</summary>
    public string Line => $"scale-out: {Completed}/{Jobs} jobs completed, {Lost} lost, {DoubleBilled} double-billed, ledger {(Balanced ? "balanced" : "NOT balanced")}";
}

/// <summary>
/// Drives a <see cref="ScaleOutMesh"/>: agents joined through the front door, <c>jobs</c> echo jobs submitted with
/// idempotency keys (a call that fails while an instance dies is retried with the same key), control A killed after a
/// third of them and relay B after half, then every job's final state and ledger events are checked.
/// </summary>
public static class ScaleOutRun
{
    /// <summary>The relay instance the last run killed (the one holding more agents).</summary>
    public static string KilledRelay { get; private set; } = "";

    /// <summary>Runs the scenario; <paramref name="log"/> gets progress lines.</summary>
    public static async Task<ScaleOutOutcome> RunAsync(ScaleOutMesh mesh, int jobs, int agents, Action<string> log, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(mesh);
        ArgumentNullException.ThrowIfNull(log);
        var token = await mesh.SignInAsync("scale-out@example.com", cancellationToken);
        using var channel = mesh.Channel(token);
        var networks = new NetworkService.NetworkServiceClient(channel);
        var devices = new DeviceService.DeviceServiceClient(channel);
        var jobService = new JobService.JobServiceClient(channel);
        var ledger = new LedgerService.LedgerServiceClient(channel);
        var network = (await networks.CreateNetworkAsync(new CreateNetworkRequest { Name = "scale-out" }, cancellationToken: cancellationToken)).Network;
        for (var i = 0; i < agents; i++)
        {
            var join = await devices.CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId }, cancellationToken: cancellationToken);
            await mesh.StartAgentAsync(join.JoinLink, "agent-" + i, cancellationToken);
        }

        await WaitAsync(async () => (await devices.ListDevicesAsync(new ListDevicesRequest { NetworkId = network.NetworkId }, cancellationToken: cancellationToken)).Devices
            .Count(d => d.OnlineStatus == OnlineStatus.Online) == agents, TimeSpan.FromSeconds(60), "agents online", cancellationToken);
        log($"{agents} agents online through relays {string.Join(", ", mesh.RelayUrls.Keys)}; submitting {jobs} jobs through {mesh.Url}");

        var ids = new string[jobs];
        var submitted = 0;
        var killedControl = false;
        var killedRelay = false;
        using var gate = new SemaphoreSlim(6);
        var tasks = new List<Task>();
        for (var i = 0; i < jobs; i++)
        {
            if (!killedControl && i >= jobs / 3)
            {
                killedControl = true;
                log($"killing control instance ctl-a after {i} submissions");
                mesh.Kill("ctl-a");
                tasks.Add(MeasureAsync("ctl-a's unfinished jobs claimed by ctl-b", () => mesh.UnfinishedJobsOwnedByAsync("ctl-a", cancellationToken), log, cancellationToken));
            }

            if (!killedRelay && i >= jobs / 2)
            {
                killedRelay = true;
                // "Relay B" is whichever relay holds more agents (devices start on a relay chosen by their id).
                var victim = await mesh.DevicesOnRelayAsync("relay-a", cancellationToken) > await mesh.DevicesOnRelayAsync("relay-b", cancellationToken) ? "relay-a" : "relay-b";
                var survivor = victim == "relay-a" ? "relay-b" : "relay-a";
                KilledRelay = victim;
                log($"killing relay instance {victim} ({await mesh.DevicesOnRelayAsync(victim, cancellationToken)} agent(s) on it) after {i} submissions");
                mesh.Kill(victim);
                tasks.Add(MeasureAsync($"every agent of {victim} reconnected to {survivor}", () => mesh.DevicesOnRelayAsync(victim, cancellationToken), log, cancellationToken));
            }

            await gate.WaitAsync(cancellationToken);
            var index = i;
            tasks.Add(Task.Run(async () =>
            {
                try
                {
                    var envelope = new JobEnvelope
                    {
                        NetworkId = network.NetworkId,
                        WorkloadId = WorkloadClass.DiagnosticEcho,
                        RoutingMode = RoutingMode.Auto,
                        TimeoutMs = 60_000,
                        InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("job-" + index), DelayMs = 300 + (index % 7 * 150) } }.ToByteString() },
                        PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
                    };
                    ids[index] = (await RetryAsync(() => jobService.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope, IdempotencyKey = "scale-" + index }, cancellationToken: cancellationToken).ResponseAsync, cancellationToken)).Job.JobId;
                    Interlocked.Increment(ref submitted);
                }
                finally
                {
                    gate.Release();
                }
            }, cancellationToken));
        }

        await Task.WhenAll(tasks);
        log($"{submitted} jobs submitted; waiting for every job to end");

        var problems = new List<string>();
        var final = new Dictionary<string, Job>(StringComparer.Ordinal);
        var deadline = DateTimeOffset.UtcNow.AddMinutes(5);
        foreach (var id in ids)
        {
            while (true)
            {
                var job = (await RetryAsync(() => jobService.GetJobAsync(new GetJobRequest { NetworkId = network.NetworkId, JobId = id }, cancellationToken: cancellationToken).ResponseAsync, cancellationToken)).Job;
                if (job.State is JobState.Completed or JobState.Failed or JobState.Cancelled || DateTimeOffset.UtcNow > deadline)
                {
                    final[id] = job;
                    break;
                }

                await Task.Delay(250, cancellationToken);
            }
        }

        var events = new List<LedgerEvent>();
        var page = "";
        do
        {
            var response = await RetryAsync(() => ledger.ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = network.NetworkId, PageSize = 500, PageToken = page }, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);
            events.AddRange(response.Events);
            page = response.NextPageToken;
        }
        while (page.Length > 0);

        var completed = final.Values.Count(j => j.State == JobState.Completed);
        foreach (var job in final.Values.Where(j => j.State != JobState.Completed))
        {
            problems.Add($"{job.JobId} {job.State}: {job.ErrorMessage} attempts " + string.Join(", ", job.Attempts.Select(a => $"{a.Attempt}@{a.DeviceId}={a.Cause}")));
        }

        var burns = events.Where(e => e.EventType == LedgerEventType.CreditsBurned).GroupBy(e => e.JobId, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var doubleBilled = burns.Count(b => b.Value > 1) + events.GroupBy(e => e.IdempotencyKey, StringComparer.Ordinal).Count(g => g.Count() > 1);
        var unbilled = final.Values.Count(j => j.State == JobState.Completed && !burns.ContainsKey(j.JobId));
        if (unbilled > 0)
        {
            problems.Add($"{unbilled} completed job(s) without a burn");
        }

        var reconciled = await RetryAsync(() => ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = network.NetworkId }, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);
        problems.AddRange(reconciled.Mismatches.Select(m => $"ledger {m.Subject}: {m.Detail}"));
        var retried = final.Values.Count(j => j.Attempts.Count > 1);
        foreach (var job in final.Values.Where(j => j.Attempts.Count > 1).Take(5))
        {
            log($"  retried {job.JobId}: " + string.Join(", ", job.Attempts.Select(a => $"{a.Attempt}@{a.DeviceId}={a.Cause} ({a.Detail})")));
        }

        log($"{completed} completed ({retried} needed a second attempt), {events.Count} ledger events, reconcile balanced: {reconciled.Balanced}");
        return new ScaleOutOutcome(jobs, completed, jobs - completed + unbilled, doubleBilled, reconciled.Balanced && unbilled == 0, problems);
    }

    /// <summary>Logs how long after now <paramref name="remaining"/> drops to zero (the detection time of a killed instance).</summary>
    private static async Task MeasureAsync(string what, Func<Task<long>> remaining, Action<string> log, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        var initial = await remaining();
        while (await remaining() > 0 && started.Elapsed < TimeSpan.FromMinutes(2))
        {
            await Task.Delay(100, cancellationToken);
        }

        log($"measured: {what} ({initial} at the kill) after {started.ElapsedMilliseconds} ms");
    }

    /// <summary>Retries a call that failed because an instance died under it (nginx moves to the next one).</summary>
    public static async Task<T> RetryAsync<T>(Func<Task<T>> call, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(call);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (RpcException ex) when (attempt < 40 && ex.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown or StatusCode.DeadlineExceeded or StatusCode.Cancelled)
            {
                await Task.Delay(250 * Math.Min(attempt, 8), cancellationToken);
            }
        }
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTimeOffset.UtcNow > deadline)
            {
                throw new TimeoutException(what + " not reached within " + timeout);
            }

            await Task.Delay(250, cancellationToken);
        }
    }
}

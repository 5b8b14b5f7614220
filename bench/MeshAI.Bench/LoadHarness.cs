using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Bench.Baseline;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Testing;

namespace MeshAI.Bench;

/// <summary>Latency figures of one measured path.</summary>
public sealed record LatencyReport(string Name, int Count, double P50Ms, double P99Ms, double MeanMs, double SequentialPerSecond, double ConcurrentPerSecond)
{
    /// <summary>CPU time (user + system) of this process and every process it started, per sequential call: the cost that does not move with the machine's load.</summary>
    public double CpuMsPerCall { get; init; }

    /// <summary>The same per process kind (bench = this process: client and, for the direct path, server).</summary>
    public IReadOnlyDictionary<string, double> CpuMsPerCallByProcess { get; init; } = new Dictionary<string, double>();

    /// <summary>The same per process kind for the concurrent calls (`concurrency` in flight: where the throughput goal is).</summary>
    public IReadOnlyDictionary<string, double> ConcurrentCpuMsPerCallByProcess { get; init; } = new Dictionary<string, double>();
}

/// <summary>
/// The relay load harness: submit→result latency of a diagnostic echo job through control plane + relay + a real
/// agent process, against a direct gRPC unary echo on the same host, both measured in the same run.
/// </summary>
public static class LoadHarness
{
    /// <summary>
    /// Runs the direct baseline once, then the relayed path on every store in <paramref name="stores"/> ("sqlite",
    /// "postgres"), and prints per store the table, where the time of a relayed job goes, and the summary line.
    /// </summary>
    public static async Task<int> RunAsync(int jobs, int concurrency, int payloadBytes, IReadOnlyList<string> stores)
    {
        var payload = new byte[payloadBytes];
        Random.Shared.NextBytes(payload);
        var scratch = Directory.CreateTempSubdirectory("meshai-bench").FullName;
        try
        {
            await using var baseline = await BaselineEchoServer.StartAsync(scratch);
            var direct = await MeasureAsync("direct gRPC unary echo", jobs, concurrency, await DirectEchoAsync(baseline, payload));
            var lines = new List<string>();
            foreach (var store in stores)
            {
                await using var postgres = store == "postgres" ? await PostgresServer.StartAsync() : null;
                var options = postgres is null
                    ? new LocalMeshOptions()
                    : new LocalMeshOptions { Store = MeshStore.Postgres, PostgresConnectionString = await postgres.CreateDatabaseAsync("bench") };
                await using var mesh = await LocalMesh.StartAsync(options);
                var token = await mesh.SignInAsync("bench@example.com");
                using var channel = mesh.Channel(token);
                var networks = new NetworkService.NetworkServiceClient(channel);
                var network = (await networks.CreateNetworkAsync(new CreateNetworkRequest { Name = "bench" })).Network;
                var devices = new DeviceService.DeviceServiceClient(channel);
                var join = await devices.CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId });
                await mesh.StartAgentAsync(join.JoinLink, "bench-agent");
                // Both relayed paths warm up before either is measured: the first few hundred jobs pay tier-1 JIT and the
                // agent's start-up work in every process, which would otherwise be charged to whichever path runs first.
                var warmRun = RelayedRun(channel, network.NetworkId, payload, new SpanRecorder(0, 0, "", ""));
                var warmTwo = RelayedEcho(channel, network.NetworkId, payload, new SpanRecorder(0, 0, "", ""));
                for (var i = 0; i < 100; i++)
                {
                    await warmRun(CancellationToken.None);
                    await warmTwo(CancellationToken.None);
                }

                // And once at full concurrency: the agent's worker pool starts its second worker only when jobs overlap, and
                // that worker's start-up (~80 % of its samples were JIT and host start, perf 2026-12-03) was charged to the
                // measured concurrent phase (`agentpath`, docs/benchmarks.md).
                foreach (var warm in new[] { warmRun, warmTwo })
                {
                    await InFlightAsync(2 * concurrency, concurrency, warm);
                }

                // The two relayed paths are measured in alternating rounds (A B, B A, A B, ...), each round a slice of the
                // sequential and of the concurrent calls, so neither path is always the one that runs first (the agent still
                // warming up, a falling machine load): a path measured first paid ~5 ms more agent CPU per job (2026-12-02).
                var runSpans = new SpanRecorder(Math.Min(20, jobs), jobs, "RunJob call -> first frame (the submitted job)", "first frame -> result frame");
                var spans = new SpanRecorder(Math.Min(20, jobs), jobs, "SubmitJob RPC (validate, plan, insert, place, sign, offer)", "WatchJob open -> result frame");
                var measured = await MeasureAlternatingAsync(jobs, concurrency, Rounds,
                [
                    ($"echo job via control+relay+agent, RunJob ({store})", RelayedRun(channel, network.NetworkId, payload, runSpans)),
                    ($"echo job via control+relay+agent, SubmitJob + WatchJob ({store})", RelayedEcho(channel, network.NetworkId, payload, spans)),
                ]);
                var relayed = measured[0];
                var twoCalls = measured[1];
                Console.WriteLine($"store {store}");
                Print([direct, relayed, twoCalls], payloadBytes, concurrency);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"ratio RunJob / SubmitJob + WatchJob: p50 x{relayed.P50Ms / twoCalls.P50Ms:F2}, concurrent throughput x{relayed.ConcurrentPerSecond / twoCalls.ConcurrentPerSecond:F2}, CPU per call x{relayed.CpuMsPerCall / twoCalls.CpuMsPerCall:F2}"));
                Console.WriteLine("RunJob:");
                runSpans.Print();
                Console.WriteLine("SubmitJob + WatchJob:");
                spans.Print();
                lines.Add(SummaryLine(direct, relayed, concurrency) + $" [{store}]");
            }

            foreach (var line in lines)
            {
                Console.WriteLine(line);
            }

            return 0;
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>Rounds the relayed paths alternate in (<see cref="MeasureAlternatingAsync"/>).</summary>
    internal const int Rounds = 6;

    /// <summary>The one line a run is compared by (issue #11).</summary>
    internal static string SummaryLine(LatencyReport direct, LatencyReport relayed, int concurrency) => string.Create(
        CultureInfo.InvariantCulture,
        $"bench: relayed p50 {relayed.P50Ms:F2} ms p99 {relayed.P99Ms:F2} ms (x{relayed.P50Ms / direct.P50Ms:F1} of direct), {relayed.ConcurrentPerSecond:F0} jobs/s at {concurrency} in flight (x{relayed.ConcurrentPerSecond / direct.ConcurrentPerSecond:F3} of direct)");

    private static async Task<Func<CancellationToken, Task>> DirectEchoAsync(BaselineEchoServer server, byte[] payload)
    {
        var channel = GrpcChannels.Create(server.Url, server.Fingerprint);
        var client = new BaselineEchoService.BaselineEchoServiceClient(channel);
        var request = new EchoRequest { Data = ByteString.CopyFrom(payload) };
        await client.EchoAsync(request);
        return async ct =>
        {
            var response = await client.EchoAsync(request, cancellationToken: ct);
            if (response.Data.Length != payload.Length)
            {
                throw new InvalidOperationException("echo mismatch");
            }
        };
    }

    private static Func<CancellationToken, Task> RelayedEcho(Grpc.Net.Client.GrpcChannel channel, string networkId, byte[] payload, SpanRecorder spans)
    {
        var jobsClient = new JobService.JobServiceClient(channel);
        var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFrom(payload) } }.ToByteString();
        return async ct =>
        {
            var envelope = EchoEnvelope(networkId, input, 30_000);
            var clock = Stopwatch.StartNew();
            var job = (await jobsClient.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope }, cancellationToken: ct)).Job;
            var submitted = clock.Elapsed.TotalMilliseconds;
            using var watch = jobsClient.WatchJob(new WatchJobRequest { NetworkId = networkId, JobId = job.JobId }, cancellationToken: ct);
            await foreach (var frame in watch.ResponseStream.ReadAllAsync(ct))
            {
                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
                {
                    var output = WorkloadOutput.Parser.ParseFrom(frame.Result.Output);
                    if (output.Echo.Data.Length != payload.Length)
                    {
                        throw new InvalidOperationException("echo mismatch");
                    }

                    spans.Add(submitted, clock.Elapsed.TotalMilliseconds, frame.Result.Job, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                    return;
                }

                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status &&
                    frame.Status.Job.State is JobState.Failed or JobState.Cancelled)
                {
                    throw new InvalidOperationException($"job {job.JobId} {frame.Status.Job.State}: {frame.Status.Job.ErrorMessage}");
                }
            }

            throw new InvalidOperationException($"watch of {job.JobId} ended without a result");
        };
    }

    // One call per job: RunJob streams the submitted job, then the watch frames until the result.
    private static Func<CancellationToken, Task> RelayedRun(Grpc.Net.Client.GrpcChannel channel, string networkId, byte[] payload, SpanRecorder spans)
    {
        var jobsClient = new JobService.JobServiceClient(channel);
        var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFrom(payload) } }.ToByteString();
        return async ct =>
        {
            var clock = Stopwatch.StartNew();
            var first = -1.0;
            using var run = jobsClient.RunJob(new RunJobRequest { Envelope = EchoEnvelope(networkId, input, 30_000) }, cancellationToken: ct);
            await foreach (var response in run.ResponseStream.ReadAllAsync(ct))
            {
                var frame = response.Frame;
                if (first < 0)
                {
                    first = clock.Elapsed.TotalMilliseconds;
                }

                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
                {
                    if (WorkloadOutput.Parser.ParseFrom(frame.Result.Output).Echo.Data.Length != payload.Length)
                    {
                        throw new InvalidOperationException("echo mismatch");
                    }

                    spans.Add(first, clock.Elapsed.TotalMilliseconds, frame.Result.Job, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                    return;
                }

                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && frame.Status.Job.State is JobState.Failed or JobState.Cancelled)
                {
                    throw new InvalidOperationException($"job {frame.Status.Job.JobId} {frame.Status.Job.State}: {frame.Status.Job.ErrorMessage}");
                }
            }

            throw new InvalidOperationException("RunJob ended without a result");
        };
    }

    /// <summary>A plaintext diagnostic_echo envelope (the harnesses' job).</summary>
    internal static JobEnvelope EchoEnvelope(string networkId, ByteString input, long timeoutMs) => new()
    {
        NetworkId = networkId,
        WorkloadId = WorkloadClass.DiagnosticEcho,
        RoutingMode = RoutingMode.Auto,
        DataSensitivityTag = DataSensitivityTag.Private,
        TimeoutMs = timeoutMs,
        InputManifest = new InputManifest { Payload = input },
        PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
    };

    /// <summary>Warm-up, then <paramref name="count"/> sequential calls (latency percentiles) and <paramref name="count"/> calls with <paramref name="concurrency"/> in flight.</summary>
    internal static async Task<LatencyReport> MeasureAsync(string name, int count, int concurrency, Func<CancellationToken, Task> call) =>
        (await MeasureAlternatingAsync(count, concurrency, 1, [(name, call)]))[0];

    /// <summary>
    /// Several paths measured in <paramref name="rounds"/> alternating rounds: each path warms up, then every round runs a slice
    /// of the <paramref name="count"/> sequential calls and of the <paramref name="count"/> concurrent calls of each path, the
    /// order of the paths reversed every other round, so that what changes during a run (warm-up, the machine's load) is
    /// shared between the paths instead of charged to whichever runs first. CPU is summed over each path's own slices.
    /// </summary>
    internal static async Task<LatencyReport[]> MeasureAlternatingAsync(int count, int concurrency, int rounds, IReadOnlyList<(string Name, Func<CancellationToken, Task> Call)> paths)
    {
        foreach (var (_, call) in paths)
        {
            for (var i = 0; i < Math.Min(20, count); i++)
            {
                await call(CancellationToken.None); // warm-up: JIT, connections, agent handler
            }
        }

        rounds = Math.Clamp(rounds, 1, Math.Max(1, count));
        var latencies = paths.Select(_ => new List<double>(count)).ToArray();
        var sequentialSeconds = new double[paths.Count];
        var concurrentSeconds = new double[paths.Count];
        var cpu = new double[paths.Count];
        var byProcess = paths.Select(_ => new Dictionary<string, double>(StringComparer.Ordinal)).ToArray();
        var concurrentByProcess = paths.Select(_ => new Dictionary<string, double>(StringComparer.Ordinal)).ToArray();
        await InRoundsAsync(rounds, async (p, slice) =>
        {
            var cpuBefore = CpuMeter.TreeCpuMsByKind();
            var total = Stopwatch.StartNew();
            for (var i = 0; i < slice; i++)
            {
                var sw = Stopwatch.StartNew();
                await paths[p].Call(CancellationToken.None);
                latencies[p].Add(sw.Elapsed.TotalMilliseconds);
            }

            sequentialSeconds[p] += total.Elapsed.TotalSeconds;
            foreach (var (kind, ms) in CpuMeter.TreeCpuMsByKind())
            {
                var delta = ms - cpuBefore.GetValueOrDefault(kind);
                byProcess[p][kind] = byProcess[p].GetValueOrDefault(kind) + delta;
                cpu[p] += delta;
            }
        });

        // The concurrent calls alternate too, in slices of at least two windows of `concurrency` calls, so every slice
        // really has `concurrency` calls in flight.
        await InRoundsAsync(Math.Clamp(count / Math.Max(1, 2 * concurrency), 1, rounds), async (p, slice) =>
        {
            var cpuBefore = CpuMeter.TreeCpuMsByKind();
            var concurrent = Stopwatch.StartNew();
            await InFlightAsync(slice, concurrency, paths[p].Call);
            concurrentSeconds[p] += concurrent.Elapsed.TotalSeconds;
            foreach (var (kind, ms) in CpuMeter.TreeCpuMsByKind())
            {
                concurrentByProcess[p][kind] = concurrentByProcess[p].GetValueOrDefault(kind) + ms - cpuBefore.GetValueOrDefault(kind);
            }
        });

        async Task InRoundsAsync(int n, Func<int, int, Task> run)
        {
            for (var round = 0; round < n; round++)
            {
                var slice = count / n + (round < count % n ? 1 : 0);
                var order = Enumerable.Range(0, paths.Count);
                foreach (var p in round % 2 == 0 ? order : order.Reverse())
                {
                    await run(p, slice);
                }
            }
        }

        return paths.Select((path, p) =>
        {
            var sorted = latencies[p].Order().ToArray();
            return new LatencyReport(path.Name, count, Percentile(sorted, 0.50), Percentile(sorted, 0.99), sorted.Average(), count / sequentialSeconds[p], count / concurrentSeconds[p])
            {
                CpuMsPerCall = cpu[p] / count,
                CpuMsPerCallByProcess = byProcess[p].ToDictionary(kv => kv.Key, kv => kv.Value / count),
                ConcurrentCpuMsPerCallByProcess = concurrentByProcess[p].ToDictionary(kv => kv.Key, kv => kv.Value / count),
            };
        }).ToArray();
    }

    /// <summary><paramref name="calls"/> calls of <paramref name="call"/>, <paramref name="concurrency"/> in flight until the last ones.</summary>
    private static Task InFlightAsync(int calls, int concurrency, Func<CancellationToken, Task> call)
    {
        var next = -1;
        return Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) < calls)
            {
                await call(CancellationToken.None);
            }
        }));
    }

    internal static double Percentile(double[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];

    /// <summary>The table and the ratios of every path against the first (the baseline).</summary>
    internal static void Print(IReadOnlyList<LatencyReport> reports, int payloadBytes, int concurrency)
    {
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c, $"payload {payloadBytes} B, {reports[0].Count} calls per path, concurrency {concurrency} for the throughput column"));
        Console.WriteLine("| path | p50 ms | p99 ms | mean ms | seq calls/s | concurrent calls/s | CPU ms/call (all processes) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var r in reports)
        {
            Console.WriteLine(string.Create(c, $"| {r.Name} | {r.P50Ms:F2} | {r.P99Ms:F2} | {r.MeanMs:F2} | {r.SequentialPerSecond:F0} | {r.ConcurrentPerSecond:F0} | {r.CpuMsPerCall:F2} |"));
        }

        var baseline = reports[0];
        foreach (var r in reports.Skip(1))
        {
            Console.WriteLine(string.Create(c, $"ratio {r.Name} / {baseline.Name}: p50 x{r.P50Ms / baseline.P50Ms:F1}, p99 x{r.P99Ms / baseline.P99Ms:F1}, concurrent throughput x{r.ConcurrentPerSecond / baseline.ConcurrentPerSecond:F2}, CPU per call x{r.CpuMsPerCall / baseline.CpuMsPerCall:F1}"));
            Console.WriteLine("  CPU ms per call by process: " + string.Join(", ", r.CpuMsPerCallByProcess.OrderByDescending(kv => kv.Value).Select(kv => string.Create(c, $"{kv.Key} {kv.Value:F2}"))));
            Console.WriteLine(string.Create(c, $"  CPU ms per call by process at {concurrency} in flight: ") + string.Join(", ", r.ConcurrentCpuMsPerCallByProcess.OrderByDescending(kv => kv.Value).Select(kv => string.Create(c, $"{kv.Key} {kv.Value:F2}"))));
        }
    }
}

/// <summary>
/// Where the time of a relayed job goes, from the client's stopwatch and the job's own timestamps (server clock, same host,
/// millisecond resolution): medians over the sequential calls.
/// </summary>
internal sealed class SpanRecorder(int warmUp, int sequential, string firstSpan, string secondSpan)
{
    private readonly List<double[]> _rows = [];

    /// <summary>Records one call; only the warm-up and sequential calls are kept.</summary>
    public void Add(double submitMs, double totalMs, Job job, long receivedMs)
    {
        lock (_rows)
        {
            if (_rows.Count >= warmUp + sequential)
            {
                return; // the concurrent phase: its spans overlap
            }

            var created = job.CreateTime.ToDateTimeOffset().ToUnixTimeMilliseconds();
            var started = job.StartTime?.ToDateTimeOffset().ToUnixTimeMilliseconds() ?? created;
            var ended = job.EndTime.ToDateTimeOffset().ToUnixTimeMilliseconds();
            _rows.Add([submitMs, totalMs - submitMs, started - created, ended - started, receivedMs - ended, totalMs]);
        }
    }

    /// <summary>Prints the medians (sequential calls only: the warm-up is dropped).</summary>
    public void Print()
    {
        var rows = _rows.Skip(warmUp).ToList();
        string[] names =
        [
            firstSpan,
            secondSpan,
            "server: create -> running (offer over relay, agent verifies ticket, accepts)",
            "server: running -> end (agent worker runs echo, result over relay, settle)",
            "end -> client has result (publish, watch stream)",
            "total",
        ];
        Console.WriteLine("where the time goes (median of the sequential calls, ms):");
        for (var i = 0; i < names.Length; i++)
        {
            var sorted = rows.Select(r => r[i]).Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {names[i]}: {LoadHarness.Percentile(sorted, 0.5):F2}"));
        }
    }
}

/// <summary>CPU time of this process and its descendants (Linux /proc; 0 elsewhere), so a shared machine's load does not hide a change.</summary>
internal static class CpuMeter
{
    /// <summary>The same, summed per kind of process (bench, meshai-server, meshai-agent, worker, other).</summary>
    public static Dictionary<string, double> TreeCpuMsByKind()
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        if (!OperatingSystem.IsLinux())
        {
            return result;
        }

        var stats = new Dictionary<int, (int Parent, long Ticks)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                stats[pid] = ReadStat(pid);
            }
            catch (IOException)
            {
                // the process ended meanwhile
            }
            catch (UnauthorizedAccessException)
            {
                // not ours
            }
        }

        var self = Environment.ProcessId;
        foreach (var (pid, (_, t)) in stats)
        {
            for (var p = pid; p > 1 && stats.TryGetValue(p, out var s); p = s.Parent)
            {
                if (p == self)
                {
                    var kind = Kind(pid, self);
                    result[kind] = result.GetValueOrDefault(kind) + TicksToMs(t);
                    break;
                }
            }
        }

        return result;
    }

    /// <summary>A process's parent and its user + system CPU in clock ticks, from <c>/proc/PID/stat</c>.</summary>
    public static (int Parent, long Ticks) ReadStat(int pid)
    {
        var text = File.ReadAllText($"/proc/{pid}/stat");
        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] = state, [1] = ppid, [11] = utime, [12] = stime (clock ticks)
        return (int.Parse(fields[1], CultureInfo.InvariantCulture), long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture));
    }

    /// <summary>Clock ticks to milliseconds (USER_HZ is 100 on Linux).</summary>
    public static double TicksToMs(long ticks) => ticks * 1000.0 / 100;

    private static string Kind(int pid, int self)
    {
        if (pid == self)
        {
            return "bench";
        }

        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
            return cmdline.Contains("meshai-server", StringComparison.Ordinal) ? "meshai-server"
                : cmdline.Contains(" worker", StringComparison.Ordinal) ? "worker"
                : cmdline.Contains("meshai-agent", StringComparison.Ordinal) ? "meshai-agent"
                : "other";
        }
        catch (IOException)
        {
            return "other";
        }
    }
}

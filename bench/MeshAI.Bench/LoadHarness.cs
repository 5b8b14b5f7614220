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
public sealed record LatencyReport(string Name, int Count, double P50Ms, double P99Ms, double MeanMs, double SequentialPerSecond, double ConcurrentPerSecond);

/// <summary>
/// The relay load harness: submit→result latency of a diagnostic echo job through control plane + relay + a real
/// agent process, against a direct gRPC unary echo on the same host, both measured in the same run.
/// </summary>
public static class LoadHarness
{
    /// <summary>Runs both paths and prints the table and ratios.</summary>
    public static async Task<int> RunAsync(int jobs, int concurrency, int payloadBytes)
    {
        var payload = new byte[payloadBytes];
        Random.Shared.NextBytes(payload);
        var scratch = Directory.CreateTempSubdirectory("meshai-bench").FullName;
        try
        {
            await using var baseline = await BaselineEchoServer.StartAsync(scratch);
            var direct = await MeasureAsync("direct gRPC unary echo", jobs, concurrency, await DirectEchoAsync(baseline, payload));

            await using var mesh = await LocalMesh.StartAsync(new LocalMeshOptions());
            var token = await mesh.SignInAsync("bench@example.com");
            using var channel = mesh.Channel(token);
            var networks = new NetworkService.NetworkServiceClient(channel);
            var network = (await networks.CreateNetworkAsync(new CreateNetworkRequest { Name = "bench" })).Network;
            var devices = new DeviceService.DeviceServiceClient(channel);
            var join = await devices.CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId });
            await mesh.StartAgentAsync(join.JoinLink, "bench-agent");
            var relayed = await MeasureAsync("echo job via control+relay+agent", jobs, concurrency, RelayedEcho(channel, network.NetworkId, payload));

            Print([direct, relayed], payloadBytes, concurrency);
            return 0;
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

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

    private static Func<CancellationToken, Task> RelayedEcho(Grpc.Net.Client.GrpcChannel channel, string networkId, byte[] payload)
    {
        var jobsClient = new JobService.JobServiceClient(channel);
        var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFrom(payload) } }.ToByteString();
        return async ct =>
        {
            var envelope = new JobEnvelope
            {
                NetworkId = networkId,
                WorkloadId = WorkloadClass.DiagnosticEcho,
                RoutingMode = RoutingMode.Auto,
                DataSensitivityTag = DataSensitivityTag.Private,
                TimeoutMs = 30_000,
                InputManifest = new InputManifest { Payload = input },
                PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
            };
            var job = (await jobsClient.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope }, cancellationToken: ct)).Job;
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

    /// <summary>Warm-up, then <paramref name="count"/> sequential calls (latency percentiles) and <paramref name="count"/> calls with <paramref name="concurrency"/> in flight.</summary>
    internal static async Task<LatencyReport> MeasureAsync(string name, int count, int concurrency, Func<CancellationToken, Task> call)
    {
        for (var i = 0; i < Math.Min(20, count); i++)
        {
            await call(CancellationToken.None); // warm-up: JIT, connections, agent handler
        }

        var latencies = new double[count];
        var total = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            var sw = Stopwatch.StartNew();
            await call(CancellationToken.None);
            latencies[i] = sw.Elapsed.TotalMilliseconds;
        }

        var sequentialRate = count / total.Elapsed.TotalSeconds;
        var next = -1;
        var concurrent = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) < count)
            {
                await call(CancellationToken.None);
            }
        }));
        var concurrentRate = count / concurrent.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        return new LatencyReport(name, count, Percentile(latencies, 0.50), Percentile(latencies, 0.99), latencies.Average(), sequentialRate, concurrentRate);
    }

    private static double Percentile(double[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];

    /// <summary>The table and the ratios of every path against the first (the baseline).</summary>
    internal static void Print(IReadOnlyList<LatencyReport> reports, int payloadBytes, int concurrency)
    {
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c, $"payload {payloadBytes} B, {reports[0].Count} calls per path, concurrency {concurrency} for the throughput column"));
        Console.WriteLine("| path | p50 ms | p99 ms | mean ms | seq calls/s | concurrent calls/s |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var r in reports)
        {
            Console.WriteLine(string.Create(c, $"| {r.Name} | {r.P50Ms:F2} | {r.P99Ms:F2} | {r.MeanMs:F2} | {r.SequentialPerSecond:F0} | {r.ConcurrentPerSecond:F0} |"));
        }

        var baseline = reports[0];
        foreach (var r in reports.Skip(1))
        {
            Console.WriteLine(string.Create(c, $"ratio {r.Name} / {baseline.Name}: p50 x{r.P50Ms / baseline.P50Ms:F1}, p99 x{r.P99Ms / baseline.P99Ms:F1}, concurrent throughput x{r.ConcurrentPerSecond / baseline.ConcurrentPerSecond:F2}"));
        }
    }
}

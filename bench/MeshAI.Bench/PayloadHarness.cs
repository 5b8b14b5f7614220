using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using MeshAI.Bench.Baseline;
using MeshAI.Client;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Testing;

namespace MeshAI.Bench;

/// <summary>
/// Issue #11's relay payload goal: how fast a job's payload crosses the relay, against raw TCP on loopback (iperf3, Debian)
/// and a direct gRPC unary echo over the same TLS + HTTP/2 stack, all measured in the same run. The relayed path is a
/// plaintext <c>diagnostic_echo</c> job through a real server and agent (its sandboxed worker echoes the bytes back): the
/// payload crosses the relay twice (offer to the device, result back), so the relay figure is 2 × payload ÷ the job's own
/// create → end time (server clock; it also holds the worker hop, the ticket and envelope-hash checks and settlement, so it
/// is a floor of the relay's throughput), and the end-to-end figure is 2 × payload ÷ the client's submit → result time.
/// A payload above what one message can carry is submitted once as a job to show the refusal the caller gets; every size
/// also goes through the chunked blob path (BlobService: chunked upload and chunked read through the server, client ↔
/// control), whose up + down rate is compared with the same iperf3 figure.
/// </summary>
public static class PayloadHarness
{
    /// <summary>The largest echo payload one job can carry: the 15 MiB result limit (Control:Input:ResultBytes) less the output's framing.</summary>
    public const int SingleMessageMaxBytes = (15 * 1024 * 1024) - 4096;

    public static async Task<int> RunAsync(int calls, IReadOnlyList<long> sizes)
    {
        var c = CultureInfo.InvariantCulture;
        var tcp = await Iperf3LoopbackAsync(seconds: 5);
        Console.WriteLine(tcp is { } bytesPerSecond
            ? string.Create(c, $"raw TCP loopback (iperf3, 1 stream, 5 s): {bytesPerSecond / 1048576:F0} MiB/s [load {AgentStreamsHarness.Load()}]")
            : "raw TCP loopback: iperf3 not found (test.sh installs it: APT_PACKAGES)");

        var scratch = Directory.CreateTempSubdirectory("meshai-payload").FullName;
        try
        {
            await using var direct = await BaselineEchoServer.StartAsync(scratch);
            using var directChannel = GrpcChannels.Create(direct.Url, direct.Fingerprint);
            var directClient = new BaselineEchoService.BaselineEchoServiceClient(directChannel);

            // Product options only: the job payload limit (Control:Limits:MaxPayloadBytes, contract default 4 MiB) raised to
            // what one 16 MiB gRPC message can carry, so the largest single-message payload can be measured.
            // MESHAI_BENCH_SERVER_ARGS: extra server options for experiments (e.g. "--Kestrel:Limits:Http2:InitialStreamWindowSize 2097152").
            var extra = (Environment.GetEnvironmentVariable("MESHAI_BENCH_SERVER_ARGS") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (extra.Length > 0)
            {
                Console.WriteLine("server options: " + string.Join(' ', extra));
            }

            await using var mesh = await LocalMesh.StartAsync(new LocalMeshOptions
            {
                ExtraServerArguments = ["--Control:Limits:MaxPayloadBytes", (SingleMessageMaxBytes + 1024).ToString(c), .. extra], // the serialized input: data + its tag
            });
            var token = await mesh.SignInAsync("payload@example.com");
            using var channel = mesh.Channel(token);
            var network = (await new NetworkService.NetworkServiceClient(channel).CreateNetworkAsync(new CreateNetworkRequest { Name = "payload" })).Network;
            var join = await new DeviceService.DeviceServiceClient(channel).CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId });
            await mesh.StartAgentAsync(join.JoinLink, "payload-agent");
            var jobs = new JobService.JobServiceClient(channel);

            Console.WriteLine($"{calls} sequential calls per size after 2 warm-up calls; medians; MiB/s = 2 x payload / time (the payload goes there and back)");
            Console.WriteLine("| payload | direct gRPC echo ms | direct MiB/s | relayed job ms (client) | relayed MiB/s (client) | job create->end ms (server: create->running + running->end) | relay MiB/s | relay / raw TCP | relay / direct gRPC |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
            var summary = new List<string>();
            var cpuLines = new List<string>();
            var blobs = new BlobService.BlobServiceClient(channel);
            var blobLines = new List<string>();
            var jobBlobLines = new List<string>();
            foreach (var size in sizes)
            {
                blobLines.Add(await ChunkedBlobAsync(blobs, network.NetworkId, size, calls, tcp, summary));
                jobBlobLines.Add(await JobOverBlobAsync(channel, network.NetworkId, size, calls, tcp, summary));
                if (size > SingleMessageMaxBytes)
                {
                    var refusal = await TryOversizedAsync(jobs, network.NetworkId, size);
                    Console.WriteLine(string.Create(c, $"| {Size(size)} | — | — | refused: {refusal} | — | — | — | — | — |"));
                    summary.Add(string.Create(c, $"bench: relay payload {Size(size)}: not carried by a job (one message; refused: {refusal}); see the chunked blob line"));
                    continue;
                }

                var payload = new byte[size];
                Random.Shared.NextBytes(payload);
                var data = ByteString.CopyFrom(payload);
                var directMs = await MedianAsync(calls, async () =>
                {
                    var response = await directClient.EchoAsync(new EchoRequest { Data = data });
                    return response.Data.Length == size ? 0 : throw new InvalidOperationException("echo mismatch");
                });
                var input = new WorkloadInput { Echo = new EchoInput { Data = data } }.ToByteString();
                var serverSpans = new List<(double Total, double ToRunning, double ToEnd)>();
                var cpuBefore = CpuMeter.TreeCpuMsByKind();
                var relayedMs = await MedianAsync(calls, async () =>
                {
                    var job = await RelayedEchoAsync(jobs, network.NetworkId, input, size);
                    var created = job.CreateTime.ToDateTimeOffset();
                    var started = job.StartTime?.ToDateTimeOffset() ?? created;
                    var ended = job.EndTime.ToDateTimeOffset();
                    serverSpans.Add(((ended - created).TotalMilliseconds, (started - created).TotalMilliseconds, (ended - started).TotalMilliseconds));
                    return 0;
                });
                var cpuPerJob = CpuMeter.TreeCpuMsByKind().Select(kv => (kv.Key, Ms: (kv.Value - cpuBefore.GetValueOrDefault(kv.Key)) / (calls + 2))).OrderByDescending(x => x.Ms).ToList();
                cpuLines.Add(string.Create(c, $"{Size(size)}: CPU ms per relayed job by process: {string.Join(", ", cpuPerJob.Select(x => string.Create(c, $"{x.Key} {x.Ms:F0}")))} (all {cpuPerJob.Sum(x => x.Ms):F0}, {cpuPerJob.Sum(x => x.Ms) / (size / 1048576.0):F0} per MiB)"));
                double ServerMedian(Func<(double Total, double ToRunning, double ToEnd), double> pick) => serverSpans.Skip(2).Select(pick).Order().ElementAt((serverSpans.Count - 2) / 2);
                var serverMs = ServerMedian(s => s.Total);
                double Rate(double ms) => 2.0 * size / 1048576 / (ms / 1000);
                var relayRate = Rate(serverMs);
                var ofTcp = tcp is { } t ? relayRate * 1048576 / t : double.NaN;
                Console.WriteLine(string.Create(c,
                    $"| {Size(size)} | {directMs:F2} | {Rate(directMs):F0} | {relayedMs:F2} | {Rate(relayedMs):F0} | {serverMs:F0} ({ServerMedian(s => s.ToRunning):F0} + {ServerMedian(s => s.ToEnd):F0}) | {relayRate:F0} | x{ofTcp:F3} | x{relayRate / Rate(directMs):F2} |"));
                summary.Add(string.Create(c,
                    $"bench: relay payload {Size(size)}: {relayRate:F0} MiB/s through the relay (x{ofTcp:F3} of raw TCP {(tcp ?? 0) / 1048576:F0} MiB/s, goal >= x0.5), end to end {Rate(relayedMs):F0} MiB/s, direct gRPC echo {Rate(directMs):F0} MiB/s [load {AgentStreamsHarness.Load()}]"));
            }

            Console.WriteLine();
            Console.WriteLine("Chunked blobs (BlobService, client <-> control only; the job leg is the next table): upload = StartBlobUpload + chunks + FinishBlobUpload (the client hashes first; the server hashes at finish), download = ReadBlob with the client checking order and SHA-256");
            Console.WriteLine("| payload | upload ms | upload MiB/s | download ms | download MiB/s | up + down MiB/s (2 x payload / time) | / raw TCP | CPU ms per MiB by process |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|");
            foreach (var line in blobLines)
            {
                Console.WriteLine(line);
            }

            Console.WriteLine();
            Console.WriteLine("A job over a sealed blob (issue 11: client seals + uploads -> control -> ReadJobBlob -> agent opens into a file -> worker hashes it -> result): MeshClient.SubmitJobAsync with the blob, encrypted (docs/security.md item 9); upload = PlanJob + sealing + upload of fresh content, until the client calls SubmitJob; job = SubmitJob (echo, hash_blob) until its result, which carries the plaintext SHA-256 the worker read; MiB/s = 2 x payload / (upload + job) (the bytes cross the loopback twice: client -> control, control -> agent)");
            Console.WriteLine("| payload | upload ms | job ms (submit -> result) | upload + job MiB/s | / raw TCP | CPU ms per MiB by process |");
            Console.WriteLine("|---|---|---|---|---|---|");
            foreach (var line in jobBlobLines)
            {
                Console.WriteLine(line);
            }

            foreach (var line in cpuLines.Concat(summary))
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

    /// <summary>
    /// One size through the chunked blob path: <paramref name="calls"/> uploads (each of fresh content, so the server's
    /// dedupe never short-cuts it) and downloads after warm-ups; medians; returns the table row and adds the summary line.
    /// </summary>
    private static async Task<string> ChunkedBlobAsync(BlobService.BlobServiceClient blobs, string networkId, long size, int calls, double? tcp, List<string> summary)
    {
        var c = CultureInfo.InvariantCulture;
        // Warm-ups: at least 40 chunk calls (tiered JIT: a method runs unoptimised for its first 30 calls), at least one transfer.
        var (up, down, cpu) = await MeasureAsync(size, calls, Math.Max(1, 40 / BlobStoreChunks(size)), async content =>
        {
            var clock = Stopwatch.StartNew();
            var blob = await BlobTransfer.UploadAsync(blobs, networkId, new MemoryStream(content, writable: false));
            var uploaded = clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            var read = await BlobTransfer.DownloadAsync(blobs, networkId, blob.Sha256, Stream.Null);
            if (read != size)
            {
                throw new InvalidOperationException($"blob {blob.Sha256}: read {read} of {size} bytes");
            }

            return (uploaded, clock.Elapsed.TotalMilliseconds);
        });
        double Rate(double ms, double factor = 1) => factor * size / 1048576 / (ms / 1000);
        var upMs = Median(up);
        var downMs = Median(down);
        var both = Rate(upMs + downMs, 2);
        var ofTcp = tcp is { } t ? both * 1048576 / t : double.NaN;
        summary.Add(string.Create(c,
            $"bench: chunked blob {Size(size)}: {both:F0} MiB/s up + down through the server (x{ofTcp:F3} of raw TCP {(tcp ?? 0) / 1048576:F0} MiB/s, goal >= x0.5), upload {Rate(upMs):F0} MiB/s, download {Rate(downMs):F0} MiB/s [load {AgentStreamsHarness.Load()}]"));
        return string.Create(c,
            $"| {Size(size)} | {upMs:F1} | {Rate(upMs):F0} | {downMs:F1} | {Rate(downMs):F0} | {both:F0} | x{ofTcp:F3} | {cpu} |");
    }

    /// <summary>
    /// One size through a whole job over a sealed blob, as a submitter runs it: <see cref="MeshClient.SubmitJobAsync(string, WorkloadInput, IReadOnlyDictionary{string, Stream}, JobRouting?, CancellationToken)"/>
    /// of fresh content (PlanJob, seal + upload, encrypted SubmitJob of an echo job that asks the worker for the blob's
    /// SHA-256), then the result, whose digest must be the plaintext's; medians of <paramref name="calls"/> after warm-ups.
    /// </summary>
    private static async Task<string> JobOverBlobAsync(Grpc.Net.Client.GrpcChannel channel, string networkId, long size, int calls, double? tcp, List<string> summary)
    {
        var c = CultureInfo.InvariantCulture;
        var clock = new Stopwatch();
        var uploaded = 0.0;
        using var client = new MeshClient(channel.Intercept(new BeforeUnaryCall("SubmitJob", () => uploaded = clock.Elapsed.TotalMilliseconds)));
        var input = new WorkloadInput { Echo = new EchoInput { HashBlob = "input" } };
        var (up, run, cpu) = await MeasureAsync(size, calls, Math.Max(2, 40 / BlobStoreChunks(size)), async content =>
        {
            var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content));
            clock.Restart();
            var job = await client.SubmitJobAsync(networkId, input, new Dictionary<string, Stream> { ["input"] = new MemoryStream(content, writable: false) }, new JobRouting { TimeoutMs = 120_000 });
            var result = await client.WaitForResultAsync(networkId, job);
            var total = clock.Elapsed.TotalMilliseconds;
            if (result.Output.Echo.BlobSha256 != sha)
            {
                throw new InvalidOperationException($"job {job.JobId} {result.Job.State} ({result.Job.ErrorMessage}): the worker hashed {result.Output.Echo.BlobSha256}, the plaintext is {sha}");
            }

            return (uploaded, total - uploaded);
        });
        var totalMs = Median(up.Zip(run, (a, b) => a + b).ToList());
        var upMs = Median(up);
        var runMs = Median(run);
        var rate = 2.0 * size / 1048576 / (totalMs / 1000);
        var ofTcp = tcp is { } t ? rate * 1048576 / t : double.NaN;
        summary.Add(string.Create(c,
            $"bench: job over a blob {Size(size)}: {rate:F0} MiB/s client upload -> agent file -> worker -> result (x{ofTcp:F3} of raw TCP {(tcp ?? 0) / 1048576:F0} MiB/s, goal >= x0.5); sealed; upload {upMs:F0} ms, job {runMs:F0} ms [load {AgentStreamsHarness.Load()}]"));
        return string.Create(c,
            $"| {Size(size)} | {upMs:F1} | {runMs:F1} | {rate:F0} | x{ofTcp:F3} | {cpu} |");
    }

    /// <summary>
    /// The measurement both blob tables share: <paramref name="warmUps"/> + <paramref name="calls"/> runs of
    /// <paramref name="once"/> on fresh content (a new digest each time, so the server's dedupe never short-cuts one), each
    /// returning its upload and after-upload times. Returns the times of the measured calls and their CPU ms per MiB by process.
    /// </summary>
    private static async Task<(List<double> UploadMs, List<double> ThenMs, string CpuPerMiB)> MeasureAsync(
        long size, int calls, int warmUps, Func<byte[], Task<(double UploadMs, double ThenMs)>> once)
    {
        var content = new byte[size];
        Random.Shared.NextBytes(content);
        var up = new List<double>();
        var after = new List<double>();
        Dictionary<string, double>? cpuBefore = null;
        for (var i = -warmUps; i < calls; i++)
        {
            if (i == 0)
            {
                cpuBefore = CpuMeter.TreeCpuMsByKind();
            }

            BitConverter.TryWriteBytes(content.AsSpan(0, 8), Random.Shared.NextInt64()); // fresh content: a new digest
            var (uploaded, done) = await once(content);
            if (i >= 0)
            {
                up.Add(uploaded);
                after.Add(done);
            }
        }

        var c = CultureInfo.InvariantCulture;
        var cpu = CpuMeter.TreeCpuMsByKind().Select(kv => (kv.Key, Ms: (kv.Value - cpuBefore!.GetValueOrDefault(kv.Key)) / calls / (size / 1048576.0))).Where(x => x.Ms >= 0.5).OrderByDescending(x => x.Ms);
        return (up, after, string.Join(", ", cpu.Select(x => string.Create(c, $"{x.Key} {x.Ms:F1}"))));
    }

    private static double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);

    private static int BlobStoreChunks(long size) => MeshAI.Control.Blobs.BlobStore.ChunkCount(size, new MeshAI.Control.Blobs.BlobOptions().ChunkBytes);

    private static string Size(long bytes) => bytes % 1048576 == 0
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576} MiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:F2} MiB ({bytes} B)");

    /// <summary>Two warm-up calls, then <paramref name="calls"/> timed ones; the median client time in ms.</summary>
    private static async Task<double> MedianAsync(int calls, Func<Task<double>> call)
    {
        await call();
        await call();
        var times = new List<double>();
        for (var i = 0; i < calls; i++)
        {
            var clock = Stopwatch.StartNew();
            await call();
            times.Add(clock.Elapsed.TotalMilliseconds);
        }

        return times.Order().ElementAt(times.Count / 2);
    }

    /// <summary>Submit + watch until the result; checks the echoed size and returns the finished job (its own timestamps).</summary>
    private static async Task<Job> RelayedEchoAsync(JobService.JobServiceClient jobs, string networkId, ByteString input, long size)
    {
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = LoadHarness.EchoEnvelope(networkId, input, 120_000) })).Job;
        using var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = networkId, JobId = job.JobId });
        await foreach (var frame in watch.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                var output = WorkloadOutput.Parser.ParseFrom(frame.Result.Output);
                return output.Echo.Data.Length == size ? frame.Result.Job : throw new InvalidOperationException("echo mismatch");
            }

            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && frame.Status.Job.State is JobState.Failed or JobState.Cancelled)
            {
                throw new InvalidOperationException($"job {job.JobId} {frame.Status.Job.State}: {frame.Status.Job.ErrorMessage}");
            }
        }

        throw new InvalidOperationException($"watch of {job.JobId} ended without a result");
    }

    /// <summary>Submits a payload larger than one message; returns the status the caller gets.</summary>
    private static async Task<string> TryOversizedAsync(JobService.JobServiceClient jobs, string networkId, long size)
    {
        var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFrom(new byte[size]) } }.ToByteString();
        try
        {
            var job = await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = LoadHarness.EchoEnvelope(networkId, input, 120_000) });
            return "accepted?! job " + job.Job.JobId;
        }
        catch (RpcException ex)
        {
            return $"{ex.StatusCode}: {ex.Status.Detail}";
        }
    }

    /// <summary>Raw TCP on loopback: an iperf3 server for one test and a 1-stream client for <paramref name="seconds"/>; bytes/s received, or null without iperf3.</summary>
    private static async Task<double?> Iperf3LoopbackAsync(int seconds)
    {
        if (!File.Exists("/usr/bin/iperf3"))
        {
            return null;
        }

        var port = FreePort.Next().ToString(CultureInfo.InvariantCulture);
        await using var server = ProcessRunner.Start(new ProcessRunnerOptions { FileName = "/usr/bin/iperf3", Arguments = ["-s", "-1", "--forceflush", "-B", "127.0.0.1", "-p", port], Name = "iperf3-server" });
        await server.WaitForLineAsync("Server listening", TimeSpan.FromSeconds(10));
        await using var client = await ProcessRunner.RunAsync(new ProcessRunnerOptions
        {
            FileName = "/usr/bin/iperf3",
            Arguments = ["-c", "127.0.0.1", "-p", port, "-t", seconds.ToString(CultureInfo.InvariantCulture), "-J"],
            Name = "iperf3-client",
        }, TimeSpan.FromSeconds(seconds + 30));
        using var json = JsonDocument.Parse(client.StandardOutputText);
        return json.RootElement.GetProperty("end").GetProperty("sum_received").GetProperty("bits_per_second").GetDouble() / 8;
    }
}

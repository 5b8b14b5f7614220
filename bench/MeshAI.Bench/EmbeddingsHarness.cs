using System.Globalization;
using MeshAI.Agent.Embeddings;
using MeshAI.Client;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Testing;

namespace MeshAI.Bench;

/// <summary>
/// Embeddings with the real model through the mesh against the same model in process (the baseline), both measured in
/// the same run: each call embeds one batch of texts. The mesh path is the SDK's default (plan, end-to-end encryption,
/// submit, watch) to one real agent whose sandboxed worker runs ONNX Runtime; the baseline is
/// <see cref="EmbeddingModel.Embed"/> on the same model files in this process.
/// </summary>
public static class EmbeddingsHarness
{
    /// <summary>
    /// Runs both paths and prints the table and the ratio (mesh / in-process). <paramref name="meshWarmUp"/> batches go through
    /// the mesh (at <paramref name="concurrency"/> in flight) before it is measured: a freshly started server and agent JIT
    /// (tier 0, instrumented, tier 1) their per-job code over the first few dozen jobs, and with only the measurement's own
    /// ten or twenty warm-up calls that compilation was charged to the measured batches (docs/benchmarks.md, "Embeddings
    /// result path"). 0 keeps the old behaviour.
    /// </summary>
    public static async Task<int> RunAsync(int batches, int batchSize, string model, int concurrency, int meshWarmUp = 60)
    {
        var root = await ProvisionedModels.EnsureAsync();
        var documents = EmbeddingQuality.Documents().Select(d => d.Text).ToList();
        var texts = Enumerable.Range(0, batchSize).Select(i => documents[i % documents.Count]).ToList();
        var chars = texts.Sum(t => t.Length);

        using var local = EmbeddingModel.Load(Path.Combine(root, model));
        Task InProcess(CancellationToken ct)
        {
            var (vectors, _) = local.Embed(texts, ct);
            return vectors.Length == batchSize ? Task.CompletedTask : throw new InvalidOperationException("embedding count mismatch");
        }

        var inProcessBefore = await LoadHarness.MeasureAsync($"in-process {model}, {batchSize} texts (before)", batches, concurrency, InProcess);
        var loadBefore = AgentStreamsHarness.Load();

        await using var mesh = await LocalMesh.StartAsync(new LocalMeshOptions());
        var token = await mesh.SignInAsync("bench-embeddings@example.com");
        using var channel = mesh.Channel(token);
        var network = (await new NetworkService.NetworkServiceClient(channel).CreateNetworkAsync(new CreateNetworkRequest { Name = "bench-embeddings" })).Network;
        var join = await new DeviceService.DeviceServiceClient(channel).CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId });
        await mesh.StartAgentAsync(join.JoinLink, "bench-embedder");
        using var client = new MeshClient(mesh.Url, mesh.Fingerprint, token);
        async Task ViaMesh(CancellationToken ct)
        {
            var output = await client.RunEmbeddingsAsync(network.NetworkId, texts, model: model, cancellationToken: ct);
            if (output.Embeddings.Count != batchSize || output.Model != model)
            {
                throw new InvalidOperationException("embedding count or model mismatch");
            }
        }

        var warmUpCpu = CpuMeter.TreeCpuMsByKind();
        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, concurrency)).Select(async lane =>
        {
            for (var i = lane; i < meshWarmUp; i += Math.Max(1, concurrency))
            {
                await ViaMesh(CancellationToken.None);
            }
        }));
        var warmUpAfter = CpuMeter.TreeCpuMsByKind();
        var warmUpByProcess = string.Join(", ", warmUpAfter
            .Select(kv => (Kind: kv.Key, Ms: kv.Value - warmUpCpu.GetValueOrDefault(kv.Key)))
            .OrderByDescending(p => p.Ms)
            .Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Kind} {p.Ms:F0}")));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"mesh warm-up: {meshWarmUp} batches at {concurrency} in flight, CPU ms by process: {warmUpByProcess}"));
        var viaMesh = await LoadHarness.MeasureAsync($"mesh {model}, {batchSize} texts (encrypted)", batches, concurrency, ViaMesh);
        var loadMesh = AgentStreamsHarness.Load();

        // The baseline again after the mesh run (the mesh is idle by then): a shared machine's load moves during a run, so the
        // mesh is compared with the mean of the in-process runs on either side of it.
        var inProcessAfter = await LoadHarness.MeasureAsync($"in-process {model}, {batchSize} texts (after)", batches, concurrency, InProcess);
        var loadAfter = AgentStreamsHarness.Load();

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{batchSize} texts per call ({chars} characters), model {model}; one agent on this host (2 sandboxed workers, 1 ONNX Runtime thread each; in-process: the same EmbeddingModel, same settings)"));
        LoadHarness.Print([inProcessBefore, viaMesh, inProcessAfter], texts.Sum(t => System.Text.Encoding.UTF8.GetByteCount(t)), concurrency);
        var c = CultureInfo.InvariantCulture;
        var inSequential = batchSize * (inProcessBefore.SequentialPerSecond + inProcessAfter.SequentialPerSecond) / 2;
        var inConcurrent = batchSize * (inProcessBefore.ConcurrentPerSecond + inProcessAfter.ConcurrentPerSecond) / 2;
        var meshSequential = batchSize * viaMesh.SequentialPerSecond;
        var meshConcurrent = batchSize * viaMesh.ConcurrentPerSecond;
        Console.WriteLine(string.Create(c,
            $"texts/s: in-process {batchSize * inProcessBefore.SequentialPerSecond:F0} / {batchSize * inProcessAfter.SequentialPerSecond:F0} sequential (before / after), {batchSize * inProcessBefore.ConcurrentPerSecond:F0} / {batchSize * inProcessAfter.ConcurrentPerSecond:F0} at {concurrency} in flight; mesh {meshSequential:F0} sequential, {meshConcurrent:F0} at {concurrency} in flight"));
        Console.WriteLine(string.Create(c,
            $"CPU ms per batch (sequential, all processes): in-process {(inProcessBefore.CpuMsPerCall + inProcessAfter.CpuMsPerCall) / 2:F0}, mesh {viaMesh.CpuMsPerCall:F0} (x{viaMesh.CpuMsPerCall * 2 / (inProcessBefore.CpuMsPerCall + inProcessAfter.CpuMsPerCall):F2})"));
        Console.WriteLine(string.Create(c,
            $"bench: embeddings through the mesh {meshConcurrent:F0} texts/s at {concurrency} in flight vs in-process {inConcurrent:F0} (x{meshConcurrent / inConcurrent:F2}, goal >= x0.90); sequential {meshSequential:F0} vs {inSequential:F0} (x{meshSequential / inSequential:F2}); batches of {batchSize} [load {loadBefore} | {loadMesh} | {loadAfter}]"));
        return 0;
    }
}

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
    /// <summary>Runs both paths and prints the table and the ratio (mesh / in-process).</summary>
    public static async Task<int> RunAsync(int batches, int batchSize, string model, int concurrency)
    {
        var root = await ProvisionedModels.EnsureAsync();
        var documents = EmbeddingQuality.Documents().Select(d => d.Text).ToList();
        var texts = Enumerable.Range(0, batchSize).Select(i => documents[i % documents.Count]).ToList();
        var chars = texts.Sum(t => t.Length);

        using var local = EmbeddingModel.Load(Path.Combine(root, model));
        var inProcess = await LoadHarness.MeasureAsync($"in-process {model}, {batchSize} texts", batches, concurrency, ct =>
        {
            var (vectors, _) = local.Embed(texts, ct);
            return vectors.Length == batchSize ? Task.CompletedTask : throw new InvalidOperationException("embedding count mismatch");
        });

        await using var mesh = await LocalMesh.StartAsync(new LocalMeshOptions());
        var token = await mesh.SignInAsync("bench-embeddings@example.com");
        using var channel = mesh.Channel(token);
        var network = (await new NetworkService.NetworkServiceClient(channel).CreateNetworkAsync(new CreateNetworkRequest { Name = "bench-embeddings" })).Network;
        var join = await new DeviceService.DeviceServiceClient(channel).CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId });
        await mesh.StartAgentAsync(join.JoinLink, "bench-embedder");
        using var client = new MeshClient(mesh.Url, mesh.Fingerprint, token);
        var viaMesh = await LoadHarness.MeasureAsync($"mesh {model}, {batchSize} texts (encrypted)", batches, concurrency, async ct =>
        {
            var output = await client.RunEmbeddingsAsync(network.NetworkId, texts, model: model, cancellationToken: ct);
            if (output.Embeddings.Count != batchSize || output.Model != model)
            {
                throw new InvalidOperationException("embedding count or model mismatch");
            }
        });

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{batchSize} texts per call ({chars} characters), model {model}; one agent on this host"));
        LoadHarness.Print([inProcess, viaMesh], texts.Sum(t => System.Text.Encoding.UTF8.GetByteCount(t)), concurrency);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"texts/s: in-process {batchSize * inProcess.SequentialPerSecond:F0} sequential, mesh {batchSize * viaMesh.SequentialPerSecond:F0} sequential; mesh/in-process mean latency x{viaMesh.MeanMs / inProcess.MeanMs:F2}"));
        return 0;
    }
}

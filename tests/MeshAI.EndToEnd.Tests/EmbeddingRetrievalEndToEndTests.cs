using MeshAI.Agent.Embeddings;
using MeshAI.Client;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// The retrieval check of #14, through the mesh: 100 short documents and 10 queries (tests/data) are embedded by a real
/// agent (SDK → control → relay → sandboxed worker, end-to-end encrypted) with each packaged model, ranked by cosine, and
/// recall@3 is compared with the same computation in this process on the same model files: the vectors, every query's
/// top 3 and the recall must be identical.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class EmbeddingRetrievalEndToEndTests
{
    private static readonly string[] Models = [ProvisionedModels.MiniLm, ProvisionedModels.ArcticXs];

    private LocalMesh _mesh = null!;
    private string _token = null!;
    private string _networkId = null!;

    /// <summary>Server, sign-in, a network with one agent serving the packaged models.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions());
        var token = await _mesh.SignInAsync("retrieval@example.com");
        using var channel = _mesh.Channel(token);
        (_networkId, _) = await MeshJobs.NetworkWithAgentsAsync(_mesh, channel, "retrieval", count: 1);
        _token = token;
    }

    /// <summary>Stops everything.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [TestCaseSource(nameof(Models))]
    public async Task Recall_at_3_through_the_mesh_equals_the_in_process_result_exactly(string model)
    {
        var documents = EmbeddingQuality.Documents();
        var queries = EmbeddingQuality.Queries();
        Assert.That(documents, Has.Count.EqualTo(100));
        Assert.That(queries, Has.Count.EqualTo(10));
        using var client = new MeshClient(_mesh.Url, _mesh.Fingerprint, _token);
        using var local = EmbeddingModel.Load(ProvisionedModels.Directory(model));
        // arctic-embed-xs wants its query instruction (model card; the manifest's query_prefix); documents get none.
        var queryTexts = queries.Select(q => local.Manifest.QueryPrefix + q.Text).ToList();
        var documentTexts = documents.Select(d => d.Text).ToList();

        var meshDocuments = await client.RunEmbeddingsAsync(_networkId, documentTexts, model: model);
        var meshQueries = await client.RunEmbeddingsAsync(_networkId, queryTexts, model: model);
        Assert.That(meshDocuments.Model, Is.EqualTo(model));
        var (localDocuments, _) = local.Embed(documentTexts);
        var (localQueries, _) = local.Embed(queryTexts);

        IReadOnlyList<IReadOnlyList<float>> Vectors(MeshAI.Contracts.Job.V1.EmbeddingsOutput output) => [.. output.Embeddings.Select(e => (IReadOnlyList<float>)e.Values.ToArray())];
        var ids = documents.Select(d => d.Id).ToList();
        var viaMesh = EmbeddingQuality.RecallAtK(queries, Vectors(meshQueries), ids, Vectors(meshDocuments), 3);
        var inProcess = EmbeddingQuality.RecallAtK(queries, localQueries, ids, localDocuments, 3);

        var maxDifference = meshDocuments.Embeddings.Zip(localDocuments).Max(p => p.First.Values.Zip(p.Second).Max(v => Math.Abs(v.First - v.Second)));
        TestContext.Out.WriteLine($"MESHAI_RECALL model={model} recall@3 mesh={viaMesh.Recall:F2} in_process={inProcess.Recall:F2} max_abs_vector_difference={maxDifference:E2}");
        for (var q = 0; q < queries.Count; q++)
        {
            TestContext.Out.WriteLine($"  {queries[q].RelevantId} <- '{queries[q].Text}': mesh top3 {string.Join(",", viaMesh.TopIds[q])}");
        }

        Assert.That(viaMesh.Recall, Is.EqualTo(inProcess.Recall), "recall@3 through the mesh equals the in-process result");
        Assert.That(viaMesh.TopIds, Is.EqualTo(inProcess.TopIds), "every query's top 3, in order");
        Assert.That(maxDifference, Is.EqualTo(0f), "the same model, the same batches: bit-identical vectors");
        Assert.That(viaMesh.Recall, Is.GreaterThanOrEqualTo(0.9), $"{model} finds the relevant document in its top 3 for at least 9 of 10 queries");
    }
}

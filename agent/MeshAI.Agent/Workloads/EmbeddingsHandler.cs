using System.Collections.Concurrent;
using MeshAI.Agent.Embeddings;
using MeshAI.Agent.Models;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Workloads;

/// <summary>
/// Text embeddings with the device's verified ONNX models: the job's <c>EmbeddingsInput.model</c> selects one (empty =
/// the device default). A model is loaded (verified again, then handed to ONNX Runtime) the first time a job asks for it,
/// so a sandboxed agent, which only advertises, never loads weights itself.
/// </summary>
public sealed class EmbeddingsHandler : IWorkloadHandler, IDisposable
{
    /// <summary>Most texts per job (phase-0 contract).</summary>
    public const int MaxTexts = 256;

    private readonly LocalModelSet _models;
    private readonly ConcurrentDictionary<string, Lazy<EmbeddingModel>> _loaded = new(StringComparer.Ordinal);

    /// <summary>Creates the handler over a loaded, verified model (its only model).</summary>
    public EmbeddingsHandler(EmbeddingModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _models = new LocalModelSet([new LocalModel("", model.Manifest)], model.Manifest.Name);
        _loaded[model.Manifest.Name] = new Lazy<EmbeddingModel>(model);
    }

    /// <summary>Creates the handler over the device's verified model directories, loading each on first use.</summary>
    public EmbeddingsHandler(LocalModelSet models)
    {
        ArgumentNullException.ThrowIfNull(models);
        _models = models;
    }

    /// <summary>The models this handler serves.</summary>
    public LocalModelSet Models => _models;

    /// <inheritdoc />
    public WorkloadClass Workload => WorkloadClass.Embeddings;

    /// <inheritdoc />
    public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Embeddings;

    /// <inheritdoc />
    public async Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(context);
        var request = input.Embeddings ?? throw new InvalidWorkloadInputException("embeddings input missing");
        if (request.Texts.Count == 0 || request.Texts.Count > MaxTexts)
        {
            throw new InvalidWorkloadInputException($"embeddings take 1..{MaxTexts} texts, got {request.Texts.Count}");
        }

        var chosen = _models.Find(request.Model)
                     ?? throw new InvalidWorkloadInputException($"model {request.Model} is not installed here (this device has {string.Join(", ", _models.Names)})");
        var model = _loaded.GetOrAdd(chosen.Name, _ => new Lazy<EmbeddingModel>(() => EmbeddingModel.Load(chosen.Directory), LazyThreadSafetyMode.ExecutionAndPublication)).Value;
        var output = new EmbeddingsOutput { Model = model.Manifest.Name };
        var texts = request.Texts.ToList();
        for (var start = 0; start < texts.Count; start += model.BatchSize)
        {
            var batch = texts.GetRange(start, Math.Min(model.BatchSize, texts.Count - start));
            var (vectors, counts) = await Task.Run(() => model.Embed(batch, cancellationToken), cancellationToken);
            foreach (var vector in vectors)
            {
                var embedding = new Embedding();
                embedding.Values.AddRange(vector);
                output.Embeddings.Add(embedding);
            }

            output.TokenCounts.AddRange(counts);
            await context.ReportProgressAsync((double)(start + batch.Count) / texts.Count, $"{start + batch.Count}/{texts.Count} texts", cancellationToken);
        }

        output.Dimension = output.Embeddings.Count > 0 ? output.Embeddings[0].Values.Count : 0;
        return new WorkloadOutput { Embeddings = output };
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var model in _loaded.Values.Where(l => l.IsValueCreated))
        {
            model.Value.Dispose();
        }
    }
}

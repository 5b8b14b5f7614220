using MeshAI.Agent.Embeddings;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Workloads;

/// <summary>Text embeddings with the device's verified ONNX model.</summary>
public sealed class EmbeddingsHandler : IWorkloadHandler
{
    /// <summary>Most texts per job (phase-0 contract).</summary>
    public const int MaxTexts = 256;

    private readonly EmbeddingModel _model;

    /// <summary>Creates the handler over a loaded, verified model.</summary>
    public EmbeddingsHandler(EmbeddingModel model) => _model = model;

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

        if (!string.IsNullOrEmpty(request.Model) && !string.Equals(request.Model, _model.Manifest.Name, StringComparison.Ordinal))
        {
            throw new InvalidWorkloadInputException($"model {request.Model} is not installed here (this device has {_model.Manifest.Name})");
        }

        var output = new EmbeddingsOutput { Model = _model.Manifest.Name };
        var texts = request.Texts.ToList();
        for (var start = 0; start < texts.Count; start += _model.BatchSize)
        {
            var batch = texts.GetRange(start, Math.Min(_model.BatchSize, texts.Count - start));
            var (vectors, counts) = await Task.Run(() => _model.Embed(batch, cancellationToken), cancellationToken);
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
}

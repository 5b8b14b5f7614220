using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Tokenizers;

namespace MeshAI.Agent.Embeddings;

/// <summary>
/// A verified BERT-style sentence embedding model: WordPiece tokenization (Microsoft.ML.Tokenizers), ONNX Runtime
/// inference in batches, pooling as the manifest says (attention-mask mean, or the [CLS] token's state) and L2
/// normalisation. Inputs are truncated at the manifest's max_tokens (128 by default), [CLS] and [SEP] included.
/// </summary>
public sealed class EmbeddingModel : IDisposable
{
    private readonly InferenceSession _session;
    private readonly BertTokenizer _tokenizer;
    private readonly bool _wantsTokenTypes;
    private readonly string _outputName;

    private EmbeddingModel(ModelManifest manifest, InferenceSession session, BertTokenizer tokenizer, int batchSize)
    {
        Manifest = manifest;
        _session = session;
        _tokenizer = tokenizer;
        BatchSize = batchSize;
        _wantsTokenTypes = session.InputMetadata.ContainsKey("token_type_ids");
        _outputName = session.OutputMetadata.ContainsKey("last_hidden_state") ? "last_hidden_state" : session.OutputMetadata.Keys.First();
    }

    /// <summary>The verified manifest the model was loaded from.</summary>
    public ModelManifest Manifest { get; }

    /// <summary>Texts per inference call.</summary>
    public int BatchSize { get; }

    /// <summary>Most tokens per text, special tokens included.</summary>
    public int MaxTokens => Manifest.MaxTokens > 0 ? Manifest.MaxTokens : 128;

    /// <summary>The tokenizer (exposed for diagnostics and tests).</summary>
    public BertTokenizer Tokenizer => _tokenizer;

    /// <summary>Verifies every file of <paramref name="modelDir"/> against its manifest, then loads the model; throws <see cref="ModelVerificationException"/> on a mismatch.</summary>
    public static EmbeddingModel Load(string modelDir, int batchSize = 16)
    {
        var manifest = ModelManifest.Load(modelDir);
        manifest.Verify(modelDir);
        if (manifest.Pooling is not ("mean" or "cls"))
        {
            throw new ModelVerificationException($"pooling '{manifest.Pooling}' is not supported (mean or cls)");
        }

        var tokenizer = BertTokenizer.Create(Path.Combine(modelDir, manifest.VocabFile), new BertOptions { LowerCaseBeforeTokenization = true });
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = Math.Max(1, Environment.ProcessorCount / 2) };
        var session = new InferenceSession(Path.Combine(modelDir, manifest.ModelFile), options);
        return new EmbeddingModel(manifest, session, tokenizer, Math.Max(1, batchSize));
    }

    /// <summary>Token ids of <paramref name="text"/> as the model sees them: [CLS] … [SEP], truncated to <see cref="MaxTokens"/>.</summary>
    public IReadOnlyList<int> Tokenize(string text) =>
        _tokenizer.EncodeToIds(text, MaxTokens, addSpecialTokens: true, out _, out _);

    /// <summary>Unit-length embeddings of <paramref name="texts"/>, with the token count of each.</summary>
    public (float[][] Embeddings, int[] TokenCounts) Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var embeddings = new float[texts.Count][];
        var counts = new int[texts.Count];
        for (var start = 0; start < texts.Count; start += BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var count = Math.Min(BatchSize, texts.Count - start);
            var tokenized = new IReadOnlyList<int>[count];
            for (var i = 0; i < count; i++)
            {
                tokenized[i] = Tokenize(texts[start + i] ?? "");
                counts[start + i] = tokenized[i].Count;
            }

            var batch = RunBatch(tokenized);
            Array.Copy(batch, 0, embeddings, start, count);
        }

        return (embeddings, counts);
    }

    private float[][] RunBatch(IReadOnlyList<int>[] tokenized)
    {
        var batch = tokenized.Length;
        var seq = Math.Max(1, tokenized.Max(t => t.Count));
        var ids = new long[batch * seq];
        var mask = new long[batch * seq];
        var types = new long[batch * seq];
        for (var b = 0; b < batch; b++)
        {
            for (var t = 0; t < tokenized[b].Count; t++)
            {
                ids[(b * seq) + t] = tokenized[b][t];
                mask[(b * seq) + t] = 1;
            }

            for (var t = tokenized[b].Count; t < seq; t++)
            {
                ids[(b * seq) + t] = _tokenizer.PaddingTokenId;
            }
        }

        long[] shape = [batch, seq];
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, shape);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, shape);
        using var typesValue = OrtValue.CreateTensorValueFromMemory(types, shape);
        var names = new List<string> { "input_ids", "attention_mask" };
        var values = new List<OrtValue> { idsValue, maskValue };
        if (_wantsTokenTypes)
        {
            names.Add("token_type_ids");
            values.Add(typesValue);
        }

        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, names, values, [_outputName]);
        var hidden = outputs[0].GetTensorDataAsSpan<float>();
        var outShape = outputs[0].GetTensorTypeAndShape().Shape;
        var dim = (int)outShape[^1];
        return Manifest.Pooling == "cls"
            ? Pooling.FirstTokenNormalized(hidden, batch, seq, dim)
            : Pooling.MeanPoolAndNormalize(hidden, mask, batch, seq, dim);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _session.Dispose();
    }
}

/// <summary>Sentence-transformers pooling: mean over the tokens the attention mask keeps (or the [CLS] state), then L2 normalisation.</summary>
public static class Pooling
{
    /// <summary>Takes each text's first ([CLS]) token state from [batch, seq, dim] and scales it to unit length.</summary>
    public static float[][] FirstTokenNormalized(ReadOnlySpan<float> hidden, int batch, int seq, int dim)
    {
        var result = new float[batch][];
        for (var b = 0; b < batch; b++)
        {
            var row = hidden.Slice(b * seq * dim, dim);
            var norm = 0.0;
            for (var d = 0; d < dim; d++)
            {
                norm += (double)row[d] * row[d];
            }

            norm = Math.Max(Math.Sqrt(norm), 1e-12);
            var vector = new float[dim];
            for (var d = 0; d < dim; d++)
            {
                vector[d] = (float)(row[d] / norm);
            }

            result[b] = vector;
        }

        return result;
    }

    /// <summary>Pools [batch, seq, dim] hidden states into [batch][dim] unit vectors.</summary>
    public static float[][] MeanPoolAndNormalize(ReadOnlySpan<float> hidden, ReadOnlySpan<long> mask, int batch, int seq, int dim)
    {
        var result = new float[batch][];
        for (var b = 0; b < batch; b++)
        {
            var sum = new double[dim];
            var kept = 0;
            for (var t = 0; t < seq; t++)
            {
                if (mask[(b * seq) + t] == 0)
                {
                    continue;
                }

                kept++;
                var row = hidden.Slice(((b * seq) + t) * dim, dim);
                for (var d = 0; d < dim; d++)
                {
                    sum[d] += row[d];
                }
            }

            var vector = new float[dim];
            var norm = 0.0;
            for (var d = 0; d < dim; d++)
            {
                var mean = sum[d] / Math.Max(1, kept);
                sum[d] = mean;
                norm += mean * mean;
            }

            norm = Math.Max(Math.Sqrt(norm), 1e-12);
            for (var d = 0; d < dim; d++)
            {
                vector[d] = (float)(sum[d] / norm);
            }

            result[b] = vector;
        }

        return result;
    }
}

using System.Runtime.InteropServices;
using MeshAI.Agent.Embeddings;
using MeshAI.Agent.Onnx;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

/// <summary>
/// The real embeddings pipeline (Microsoft.ML.Tokenizers + ONNX Runtime + pooling) on the generated tiny model.
/// No real embedding model is installable on this build machine (see MODELS.md), so semantics are not asserted here.
/// </summary>
[TestFixture]
[Category("Unit")]
public sealed class TinyEmbeddingModelTests
{
    private string _dir = null!;
    private EmbeddingModel _model = null!;

    [OneTimeSetUp]
    public void Generate()
    {
        _dir = Path.Combine(Path.GetTempPath(), "meshai-tiny-" + Guid.NewGuid().ToString("N"));
        TinyModelGenerator.Generate(_dir);
        _model = EmbeddingModel.Load(_dir, batchSize: 4);
    }

    [OneTimeTearDown]
    public void Cleanup()
    {
        _model.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static int Id(string token) => TinyModelGenerator.Vocabulary().ToList().IndexOf(token);

    [Test]
    public void Tokenizer_splits_a_known_sentence_into_the_generated_vocabulary()
    {
        var ids = _model.Tokenize("The quick brown fox jumps over the lazy dogs!");

        string[] expected = ["[CLS]", "the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "##s", "!", "[SEP]"];
        Assert.That(ids, Is.EqualTo(expected.Select(Id).ToArray()));
        Assert.That(_model.Tokenize("qqq"), Is.EqualTo(new[] { Id("[CLS]"), Id("[UNK]"), Id("[SEP]") }.ToArray()));
    }

    [Test]
    public void Long_texts_are_truncated_at_128_tokens_special_tokens_included()
    {
        var ids = _model.Tokenize(string.Join(' ', Enumerable.Repeat("hello world", 200)));

        Assert.That(ids, Has.Count.EqualTo(128));
        Assert.That(ids[0], Is.EqualTo(Id("[CLS]")));
        Assert.That(ids[^1], Is.EqualTo(Id("[SEP]")));
    }

    [Test]
    public void Generated_model_loads_in_onnx_runtime_and_gives_32_dimensional_unit_vectors()
    {
        var (vectors, counts) = _model.Embed(["hello world", "the cat sat on the mat", ""]);

        Assert.That(vectors, Has.Length.EqualTo(3));
        Assert.That(string.Join(",", counts), Is.EqualTo("4,8,2"));
        foreach (var vector in vectors)
        {
            Assert.That(vector, Has.Length.EqualTo(32));
            Assert.That(Math.Sqrt(vector.Sum(v => (double)v * v)), Is.EqualTo(1.0).Within(1e-5));
        }
    }

    [Test]
    public void Embeddings_are_deterministic_across_runs_and_regenerations()
    {
        var first = _model.Embed(["private mesh compute"]).Embeddings[0];
        var second = _model.Embed(["private mesh compute"]).Embeddings[0];
        var otherDir = Path.Combine(Path.GetTempPath(), "meshai-tiny-" + Guid.NewGuid().ToString("N"));
        try
        {
            TinyModelGenerator.Generate(otherDir);
            using var regenerated = EmbeddingModel.Load(otherDir);
            Assert.That(second, Is.EqualTo(first));
            Assert.That(regenerated.Embed(["private mesh compute"]).Embeddings[0], Is.EqualTo(first));
            Assert.That(File.ReadAllBytes(Path.Combine(otherDir, "model.onnx")), Is.EqualTo(File.ReadAllBytes(Path.Combine(_dir, "model.onnx"))));
        }
        finally
        {
            Directory.Delete(otherDir, recursive: true);
        }
    }

    [Test]
    public void Batching_gives_the_same_vectors_as_one_by_one()
    {
        string[] texts = ["hello", "the quick brown fox jumps over the lazy dog", "a", "network device job model text search", "yes", "running laptops"];

        var batched = _model.Embed(texts).Embeddings;

        for (var i = 0; i < texts.Length; i++)
        {
            var single = _model.Embed([texts[i]]).Embeddings[0];
            for (var d = 0; d < 32; d++)
            {
                Assert.That(batched[i][d], Is.EqualTo(single[d]).Within(1e-5), $"text {i} dim {d}");
            }
        }
    }

    [Test]
    public void Output_equals_an_independent_plain_CSharp_computation_of_the_same_graph()
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(_dir, "model.onnx")));
        float[] Weights(string name) => MemoryMarshal.Cast<byte, float>(model.Graph.Initializer.Single(t => t.Name == name).RawData.Span).ToArray();
        var word = Weights(TinyModelGenerator.WordEmbeddings);
        var position = Weights(TinyModelGenerator.PositionEmbeddings);
        var type = Weights(TinyModelGenerator.TokenTypeEmbeddings);
        var w = Weights(TinyModelGenerator.DenseWeight);
        var bias = Weights(TinyModelGenerator.DenseBias);
        const int D = 32;

        foreach (var text in new[] { "hello world", "the cat sat on the mat.", "embed vector token question answer" })
        {
            var ids = _model.Tokenize(text);
            var mean = new double[D];
            for (var t = 0; t < ids.Count; t++)
            {
                var x = new double[D];
                for (var d = 0; d < D; d++)
                {
                    x[d] = word[(ids[t] * D) + d] + position[(t * D) + d] + type[d];
                }

                for (var j = 0; j < D; j++)
                {
                    var acc = (double)bias[j];
                    for (var k = 0; k < D; k++)
                    {
                        acc += x[k] * w[(k * D) + j];
                    }

                    mean[j] += Math.Tanh(acc) / ids.Count;
                }
            }

            var norm = Math.Sqrt(mean.Sum(v => v * v));
            var expected = mean.Select(v => v / norm).ToArray();
            var actual = _model.Embed([text]).Embeddings[0];
            for (var d = 0; d < D; d++)
            {
                Assert.That(actual[d], Is.EqualTo(expected[d]).Within(1e-5), $"'{text}' dim {d}");
            }
        }
    }

    [Test]
    public void Tampered_model_file_is_refused_by_the_manifest_check()
    {
        var dir = Path.Combine(Path.GetTempPath(), "meshai-tiny-" + Guid.NewGuid().ToString("N"));
        try
        {
            TinyModelGenerator.Generate(dir);
            var path = Path.Combine(dir, "model.onnx");
            var bytes = File.ReadAllBytes(path);
            bytes[bytes.Length / 2] ^= 0x01;
            File.WriteAllBytes(path, bytes);

            var ex = Assert.Throws<ModelVerificationException>(() => EmbeddingModel.Load(dir));
            Assert.That(ex!.Message, Does.Contain("model.onnx").And.Contain("SHA-256"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Tampered_vocab_or_missing_manifest_is_refused()
    {
        var dir = Path.Combine(Path.GetTempPath(), "meshai-tiny-" + Guid.NewGuid().ToString("N"));
        try
        {
            TinyModelGenerator.Generate(dir);
            File.AppendAllText(Path.Combine(dir, "vocab.txt"), "extra\n");
            Assert.Throws<ModelVerificationException>(() => EmbeddingModel.Load(dir));

            File.Delete(Path.Combine(dir, ModelManifest.FileName));
            Assert.Throws<ModelVerificationException>(() => EmbeddingModel.Load(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

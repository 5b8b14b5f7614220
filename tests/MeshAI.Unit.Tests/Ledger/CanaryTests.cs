using MeshAI.Common.Domain;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Ledger;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Ledger;

[TestFixture]
[Category("Unit")]
public sealed class CanaryTests
{
    private static readonly float[] Unit = [0.6f, 0.8f];

    private static WorkloadOutput Embeddings(params float[][] vectors)
    {
        var output = new EmbeddingsOutput { Dimension = vectors.Length == 0 ? 0 : vectors[0].Length };
        foreach (var v in vectors)
        {
            output.Embeddings.Add(new Embedding { Values = { v } });
        }

        return new WorkloadOutput { Embeddings = output };
    }

    [Test]
    public void Sampling_is_off_at_zero_total_at_ten_thousand_and_independent_of_the_spot_check()
    {
        var ids = Enumerable.Range(0, 2000).Select(i => "job_" + i).ToList();
        Assert.That(ids.Any(id => Canary.IsSampled(id, 0)), Is.False);
        Assert.That(ids.All(id => Canary.IsSampled(id, 10_000)), Is.True);
        var canary = ids.Where(id => Canary.IsSampled(id, 5_000)).ToHashSet();
        var spot = ids.Where(id => SpotCheck.IsSampled(id, 5_000)).ToHashSet();
        Assert.That(canary.Count, Is.InRange(850, 1150), "about half at 5 000 bps");
        Assert.That(canary.SetEquals(spot), Is.False, "a different bucket from the spot-check's");
        Assert.That(ids.Where(id => Canary.IsSampled(id, 100)).All(canary.Contains), Is.True, "sampled at a rate stays sampled at a higher one");
    }

    [Test]
    public void Embeddings_pass_within_the_cosine_bound_and_fail_outside_it()
    {
        float[] known = [0.6f, 0.8f, 0f];
        Assert.That(Canary.CompareEmbeddings([known], Embeddings([0.6001f, 0.7999f, 0.001f])).Verdict, Is.EqualTo(CanaryVerdict.Passed));
        var wrong = Canary.CompareEmbeddings([known], Embeddings([0.8f, -0.6f, 0f]));
        Assert.That(wrong.Verdict, Is.EqualTo(CanaryVerdict.Failed));
        Assert.That(wrong.Detail, Does.Contain("cosine"));
        Assert.That(Canary.CompareEmbeddings([known], Embeddings([0.6f, 0.8f])).Verdict, Is.EqualTo(CanaryVerdict.Failed), "dimension");
        Assert.That(Canary.CompareEmbeddings([known], Embeddings()).Verdict, Is.EqualTo(CanaryVerdict.Failed), "count");
        Assert.That(Canary.CompareEmbeddings([known], Embeddings([float.NaN, 0.8f, 0f])).Verdict, Is.EqualTo(CanaryVerdict.Failed), "NaN never passes");
        Assert.That(Canary.CompareEmbeddings([known], new WorkloadOutput { Ocr = new OcrOutput { Text = "x" } }).Verdict, Is.EqualTo(CanaryVerdict.Failed), "kind");
    }

    [Test]
    public void Text_is_compared_normalised_with_a_character_error_bound()
    {
        Assert.That(Canary.NormalizeText("  The QUICK, brown\tfox!\n"), Is.EqualTo("the quick brown fox"));
        static WorkloadOutput Ocr(string text) => new() { Ocr = new OcrOutput { Text = text } };
        Assert.That(Canary.CompareText("The quick brown fox.", Ocr("the quick  brown fox"), 0).Verdict, Is.EqualTo(CanaryVerdict.Passed));
        Assert.That(Canary.CompareText("The quick brown fox.", Ocr("the quick brovvn fox"), 0).Verdict, Is.EqualTo(CanaryVerdict.Failed));
        Assert.That(Canary.CompareText("The quick brown fox.", Ocr("the quick brovn fox"), 0.1).Verdict, Is.EqualTo(CanaryVerdict.Passed));
        Assert.That(Canary.CompareText("The quick brown fox.", Ocr("lorem ipsum"), 0.1).Verdict, Is.EqualTo(CanaryVerdict.Failed));
        Assert.That(Canary.CompareText("x", Embeddings([1f]), 0.1).Verdict, Is.EqualTo(CanaryVerdict.Failed));
    }

    [Test]
    public void The_known_answer_table_round_trips_and_refuses_malformed_entries()
    {
        var table = new KnownAnswersFile
        {
            Models = [new KnownEmbeddingAnswers { Name = "m", Sha256 = new string('a', 64), Dimension = 2, Answers = [new KnownEmbedding { Text = "t", Vector = [0.6f, 0.8f] }] }],
        };
        var parsed = KnownAnswersFile.Parse(table.ToJson());
        Assert.That(parsed.Models.Single().Answers.Single().Vector, Is.EqualTo(Unit));

        Assert.Throws<InvalidDataException>(() => KnownAnswersFile.Parse(table.ToJson().Replace(KnownAnswersFile.CurrentFormat, "v0", StringComparison.Ordinal)));
        table.Models[0].Answers[0].Vector = [1f];
        Assert.Throws<InvalidDataException>(() => KnownAnswersFile.Parse(table.ToJson()), "vector of the wrong length");
        table.Models[0].Answers[0].Vector = [0.6f, 0.8f];
        table.Models[0].Sha256 = "abc";
        Assert.Throws<InvalidDataException>(() => KnownAnswersFile.Parse(table.ToJson()), "hash");
    }
}

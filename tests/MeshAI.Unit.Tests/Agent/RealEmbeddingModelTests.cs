using MeshAI.Agent.Embeddings;
using MeshAI.Agent.ModelPackages;
using MeshAI.Agent.Models;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

/// <summary>
/// The real packaged models (installed by <c>meshai-agent models install</c>, loaded once per model for the whole fixture)
/// carry meaning: related sentences score above unrelated ones, and the similarity ranking follows the project's rated
/// pairs (tests/data/similarity-pairs.tsv; the Spearman figures are reported in docs/models.md) (#14).
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class RealEmbeddingModelTests
{
    private static readonly string[] Models = [ProvisionedModels.MiniLm, ProvisionedModels.ArcticXs];
    private readonly Dictionary<string, EmbeddingModel> _loaded = [];

    /// <summary>Installs (or re-verifies) the packaged models and loads each once.</summary>
    [OneTimeSetUp]
    public async Task LoadAsync()
    {
        var root = await ProvisionedModels.EnsureAsync();
        foreach (var name in Models)
        {
            _loaded[name] = EmbeddingModel.Load(Path.Combine(root, name));
        }
    }

    /// <summary>Releases the sessions.</summary>
    [OneTimeTearDown]
    public void Unload()
    {
        foreach (var model in _loaded.Values)
        {
            model.Dispose();
        }
    }

    [TestCaseSource(nameof(Models))]
    public void The_installed_model_is_the_pinned_package_content(string name)
    {
        var model = _loaded[name];
        var packaged = PackagedModels.Find(name)!;
        Assert.That(model.Manifest.Version, Is.EqualTo(PackagedModels.PackageVersion));
        Assert.That(model.Manifest.Pooling, Is.EqualTo(packaged.Pooling));
        Assert.That(model.Manifest.WeightsSha256, Is.EqualTo(packaged.Files.Single(f => f.Path == "model.onnx").Sha256));
        var (vectors, counts) = model.Embed(["The cat sat on the mat."]);
        Assert.That(vectors[0], Has.Length.EqualTo(384));
        Assert.That(Math.Sqrt(vectors[0].Sum(v => (double)v * v)), Is.EqualTo(1.0).Within(1e-4));
        Assert.That(counts[0], Is.EqualTo(9), "[CLS] the cat sat on the mat . [SEP]");
    }

    [TestCaseSource(nameof(Models))]
    public void Related_pairs_score_above_unrelated_ones(string name)
    {
        var model = _loaded[name];
        (string Anchor, string Related, string Unrelated)[] triples =
        [
            ("a cat sat on the mat", "a kitten rested on the rug", "quarterly revenue grew 4 %"),
            ("The train to Berlin is delayed.", "The Berlin train is running late.", "Penguins live in Antarctica."),
            ("How do I reset my wifi router?", "Restart the router if the wireless connection drops.", "The orchestra played Brahms."),
            ("The striker scored twice in the final.", "The footballer got two goals in the cup final.", "Add compost to clay soil."),
            ("Mortgage rates are rising.", "Home loan interest rates went up again.", "The parrot whistles a tune."),
        ];
        foreach (var (anchor, related, unrelated) in triples)
        {
            var (v, _) = model.Embed([anchor, related, unrelated]);
            var near = EmbeddingQuality.Cosine(v[0], v[1]);
            var far = EmbeddingQuality.Cosine(v[0], v[2]);
            TestContext.Out.WriteLine($"{name}: cos(related)={near:F3} cos(unrelated)={far:F3}  {anchor}");
            Assert.That(near, Is.GreaterThan(far + 0.1), $"'{anchor}': related {near:F3} vs unrelated {far:F3}");
        }

        if (name == ProvisionedModels.MiniLm)
        {
            // The figures measured when the package was first checked (MODELS.md): 0.64 and -0.03.
            var (cat, _) = model.Embed(["a cat sat on the mat", "a kitten rested on the rug", "quarterly revenue grew 4 %"]);
            Assert.That(EmbeddingQuality.Cosine(cat[0], cat[1]), Is.EqualTo(0.64).Within(0.05));
            Assert.That(EmbeddingQuality.Cosine(cat[0], cat[2]), Is.EqualTo(-0.03).Within(0.05));
        }
    }

    [TestCaseSource(nameof(Models))]
    public void Similarity_ranking_follows_the_rated_pairs(string name)
    {
        var pairs = EmbeddingQuality.SimilarityPairs();
        Assert.That(pairs, Has.Count.GreaterThanOrEqualTo(30));
        var model = _loaded[name];
        var (a, _) = model.Embed(pairs.Select(p => p.A).ToList());
        var (b, _) = model.Embed(pairs.Select(p => p.B).ToList());
        var cosines = pairs.Select((_, i) => EmbeddingQuality.Cosine(a[i], b[i])).ToList();

        var rho = EmbeddingQuality.Spearman(pairs.Select(p => p.Rating).ToList(), cosines);

        TestContext.Out.WriteLine($"MESHAI_SPEARMAN model={name} pairs={pairs.Count} rho={rho:F3}");
        Assert.That(rho, Is.GreaterThan(0.75), $"{name}: Spearman {rho:F3} over {pairs.Count} rated pairs");
    }

    [Test]
    public void Spearman_uses_average_ranks_for_ties()
    {
        Assert.That(EmbeddingQuality.Spearman([1, 2, 3, 4], [10, 20, 30, 40]), Is.EqualTo(1.0).Within(1e-12));
        Assert.That(EmbeddingQuality.Spearman([1, 2, 3, 4], [4, 3, 2, 1]), Is.EqualTo(-1.0).Within(1e-12));
        Assert.That(EmbeddingQuality.Spearman([1, 2, 2, 3], [1, 2, 3, 4]), Is.EqualTo(0.9486832980505138).Within(1e-12));
    }

    [Test]
    public async Task A_tampered_install_is_replaced_by_a_verified_extraction()
    {
        var root = Directory.CreateTempSubdirectory("meshai-packaged-install-").FullName;
        try
        {
            var model = PackagedModels.Find(ProvisionedModels.MiniLm)!;
            var (_, first) = await PackagedModelInstaller.InstallAsync(model, root, CancellationToken.None);
            Assert.That(first, Is.False);
            var (_, again) = await PackagedModelInstaller.InstallAsync(model, root, CancellationToken.None);
            Assert.That(again, Is.True, "an intact copy is kept");

            await using (var vocab = File.OpenWrite(Path.Combine(root, model.Name, "vocab.txt")))
            {
                vocab.WriteByte((byte)'#');
            }

            Assert.Throws<ModelVerificationException>(() => ModelManifest.Load(Path.Combine(root, model.Name)).Verify(Path.Combine(root, model.Name)));
            var (manifest, repaired) = await PackagedModelInstaller.InstallAsync(model, root, CancellationToken.None);
            Assert.That(repaired, Is.False, "a tampered copy is extracted again");
            manifest.Verify(Path.Combine(root, model.Name));
            Assert.That(Directory.GetDirectories(root).Select(Path.GetFileName), Is.EqualTo(new[] { model.Name }), "no staging left");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}

using MeshAI.Agent.Embeddings;
using MeshAI.Agent.Models;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

/// <summary>How an agent finds its embeddings models in its model cache roots (#14).</summary>
[TestFixture]
[Category("Unit")]
public sealed class LocalModelSetTests
{
    private string _root = null!;

    private static readonly string[] Both = ["all-minilm-l6-v2", "zeta"];
    private static readonly string[] GoodOnly = ["good"];

    [SetUp]
    public void CreateRoot() => _root = Directory.CreateTempSubdirectory("meshai-model-set-").FullName;

    [TearDown]
    public void DeleteRoot() => Directory.Delete(_root, recursive: true);

    private static string Tiny(string root, string name, ulong seed = 42)
    {
        var dir = Path.Combine(root, name);
        var manifest = TinyModelGenerator.Generate(dir, seed);
        (manifest with { Name = name }).Save(dir);
        return dir;
    }

    [Test]
    public void Every_verified_model_of_every_root_is_found_and_the_preferred_default_wins()
    {
        var shared = Path.Combine(_root, "shared");
        Tiny(_root, "zeta");
        Tiny(shared, "all-minilm-l6-v2");
        Tiny(shared, "zeta", seed: 7); // same name in a later root: the first one wins
        var refused = new List<string>();

        var set = LocalModelSet.Discover(null, [_root, shared], "all-minilm-l6-v2", (d, r) => refused.Add(d));

        Assert.That(set.Names, Is.EqualTo(Both));
        Assert.That(set.Default!.Name, Is.EqualTo("all-minilm-l6-v2"));
        Assert.That(set.Find("zeta")!.Directory, Is.EqualTo(Path.Combine(_root, "zeta")));
        Assert.That(set.Find("")!.Name, Is.EqualTo("all-minilm-l6-v2"), "empty = the default");
        Assert.That(set.Find("missing"), Is.Null);
        Assert.That(refused, Is.Empty);
        var installed = set.ToInstalled().ToDictionary(m => m.Name);
        Assert.That(installed["all-minilm-l6-v2"].IsDefault, Is.True);
        Assert.That(installed["zeta"].IsDefault, Is.False);
        Assert.That(installed["zeta"].Sha256, Is.EqualTo(ModelManifest.Load(Path.Combine(_root, "zeta")).WeightsSha256).And.Length.EqualTo(64));
        Assert.That(installed["zeta"].Dimension, Is.EqualTo(TinyModelGenerator.Dimension));
    }

    [Test]
    public void A_tampered_model_is_refused_and_not_advertised_and_an_explicit_model_dir_becomes_the_default()
    {
        var good = Tiny(_root, "good");
        var bad = Tiny(_root, "bad");
        File.AppendAllText(Path.Combine(bad, "vocab.txt"), "extra\n");
        MeshAI.Agent.Chat.TinyChatModelGenerator.Generate(Path.Combine(_root, "chat"), 42);
        var refused = new List<(string Dir, string Reason)>();

        var set = LocalModelSet.Discover(good, [_root], "all-minilm-l6-v2", (d, r) => refused.Add((d, r)));

        Assert.That(set.Names, Is.EqualTo(GoodOnly), "the chat GGUF is not an embeddings model; the tampered one is refused");
        Assert.That(set.Default!.Name, Is.EqualTo("good"));
        Assert.That(refused.Single().Dir, Is.EqualTo(bad));
        Assert.That(refused.Single().Reason, Does.Contain("vocab.txt"));
    }
}

using Google.Protobuf;
using MeshAI.Agent.Embeddings;
using MeshAI.Agent.Models;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Model.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

/// <summary>Signed network model manifests on the device: signature, every file's size and SHA-256, never a partial install.</summary>
[TestFixture]
[Category("Unit")]
public sealed class ModelInstallerTests
{
    private const string NetworkId = "net_models";
    private readonly SigningKeyPair _control = SigningKeyPair.Generate();
    private string _root = null!;
    private string _origin = null!;
    private static readonly HttpClient Http = new();

    [SetUp]
    public void Create()
    {
        _root = Path.Combine(Path.GetTempPath(), "meshai-install-" + Guid.NewGuid().ToString("N"));
        _origin = Path.Combine(_root, "origin");
        TinyModelGenerator.Generate(_origin);
    }

    [TearDown]
    public void Cleanup()
    {
        Directory.Delete(_root, recursive: true);
    }

    private IReadOnlyDictionary<string, byte[]> Trusted => new Dictionary<string, byte[]> { [SigningKeyPair.KeyId(_control.PublicKey)] = _control.PublicKey };

    private ModelManifestDetails Details()
    {
        var local = MeshAI.Agent.Embeddings.ModelManifest.Load(_origin);
        var details = new ModelManifestDetails
        {
            NetworkId = NetworkId,
            Name = "tiny-embed",
            Version = "1",
            WorkloadClass = WorkloadClass.Embeddings,
            Parameters = { ["dimension"] = local.Dimension.ToString(System.Globalization.CultureInfo.InvariantCulture), ["max_tokens"] = "128", ["model_file"] = local.ModelFile, ["vocab_file"] = local.VocabFile },
        };
        details.Files.AddRange(local.Files.Select(f => new MeshAI.Contracts.Model.V1.ModelFile { Path = f.Path, Sha256 = f.Sha256, SizeBytes = f.Size, Source = new Uri(Path.Combine(_origin, f.Path)).AbsoluteUri }));
        return details;
    }

    private static async Task<string> RefusalAsync(Func<Task> install)
    {
        var ex = await Assert.ThrowsAsync<ModelVerificationException>(async () => await install());
        return ex?.Message ?? "";
    }

    private Task<ModelManifestDetails> InstallAsync(MeshAI.Contracts.Model.V1.ModelManifest signed, string target, IReadOnlyList<string>? origins = null) =>
        new ModelInstaller(Http, origins ?? []).InstallAsync(signed, Trusted, NetworkId, target, CancellationToken.None);

    [Test]
    public async Task A_signed_manifest_installs_a_directory_the_embeddings_model_loads()
    {
        var target = Path.Combine(_root, "cache", "embeddings");
        await InstallAsync(ModelManifests.Sign(Details(), _control, "mdl_1"), target, [new Uri(_origin).AbsoluteUri]);

        using var model = EmbeddingModel.Load(target);
        var (vectors, _) = model.Embed(["hello world"]);
        Assert.That(vectors[0], Has.Length.EqualTo(TinyModelGenerator.Dimension));
        Assert.That(Directory.GetDirectories(Path.Combine(_root, "cache")), Has.Length.EqualTo(1), "no staging directory left behind");
    }

    [Test]
    public async Task A_tampered_signature_is_refused_and_nothing_is_installed()
    {
        var signed = ModelManifests.Sign(Details(), _control, "mdl_1");
        var bytes = signed.Details.ToByteArray();
        bytes[^1] ^= 0x01;
        signed.Details = ByteString.CopyFrom(bytes);
        var target = Path.Combine(_root, "cache", "embeddings");

        var ex = await Assert.ThrowsAsync<ModelVerificationException>(() => InstallAsync(signed, target));
        Assert.That(ex!.Message, Does.Contain("signature"));
        Assert.That(Directory.Exists(target), Is.False);
    }

    [Test]
    public async Task A_manifest_signed_by_another_key_or_for_another_network_is_refused()
    {
        var stranger = ModelManifests.Sign(Details(), SigningKeyPair.Generate(), "mdl_1");
        Assert.That(await RefusalAsync(() => InstallAsync(stranger, Path.Combine(_root, "a"))), Does.Contain("not one of this network's control keys"));

        var other = Details();
        other.NetworkId = "net_other";
        Assert.That(await RefusalAsync(() => InstallAsync(ModelManifests.Sign(other, _control, "mdl_2"), Path.Combine(_root, "b"))), Does.Contain("net_other"));
    }

    [Test]
    public async Task A_hash_mismatch_is_refused_and_the_previous_model_stays_in_place()
    {
        var target = Path.Combine(_root, "cache", "embeddings");
        await InstallAsync(ModelManifests.Sign(Details(), _control, "mdl_1"), target);
        var before = File.ReadAllText(Path.Combine(target, "manifest.json"));
        var model = Path.Combine(_origin, "model.onnx");
        var bytes = File.ReadAllBytes(model);
        bytes[^1] ^= 0xFF; // same size, different content
        File.WriteAllBytes(model, bytes); // the origin's manifest.json still pins the original hash

        var ex = await Assert.ThrowsAsync<ModelVerificationException>(() => InstallAsync(ModelManifests.Sign(Details(), _control, "mdl_2"), target));
        Assert.That(ex!.Message, Does.Contain("SHA-256").And.Contain("does not match"));
        Assert.That(File.ReadAllText(Path.Combine(target, "manifest.json")), Is.EqualTo(before));
        Assert.DoesNotThrow(() => MeshAI.Agent.Embeddings.ModelManifest.Load(target).Verify(target));
        Assert.That(Directory.GetDirectories(Path.Combine(_root, "cache")), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task A_size_mismatch_or_an_untrusted_origin_is_refused()
    {
        var bigger = Details();
        bigger.Files[0].SizeBytes -= 1;
        Assert.That(await RefusalAsync(() => InstallAsync(ModelManifests.Sign(bigger, _control, "mdl_1"), Path.Combine(_root, "a"))), Does.Contain("larger than"));

        Assert.That(
            await RefusalAsync(() => InstallAsync(ModelManifests.Sign(Details(), _control, "mdl_1"), Path.Combine(_root, "b"), ["https://models.example.com/"])),
            Does.Contain("outside the trusted origins"));
        Assert.That(Directory.Exists(Path.Combine(_root, "a")) || Directory.Exists(Path.Combine(_root, "b")), Is.False);
    }
}

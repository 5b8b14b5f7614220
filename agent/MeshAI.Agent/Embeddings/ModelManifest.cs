using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MeshAI.Agent.Embeddings;

/// <summary>One file of a model directory, pinned by size and SHA-256.</summary>
public sealed record ModelFile(
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("size")] long Size);

/// <summary>
/// <c>manifest.json</c> of a model directory: the model's name, its output dimension and every file with its SHA-256.
/// The agent loads nothing that does not match.
/// </summary>
public sealed record ModelManifest(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("dimension")] int Dimension,
    [property: JsonPropertyName("max_tokens")] int MaxTokens,
    [property: JsonPropertyName("model_file")] string ModelFile,
    [property: JsonPropertyName("vocab_file")] string VocabFile,
    [property: JsonPropertyName("files")] IReadOnlyList<ModelFile> Files)
{
    /// <summary>File name of the manifest inside a model directory.</summary>
    public const string FileName = "manifest.json";

    /// <summary>Workload value of an embeddings model (also assumed when a manifest names none and its model is not a .gguf).</summary>
    public const string EmbeddingsWorkload = "embeddings";

    /// <summary>Workload value of a chat model.</summary>
    public const string ChatWorkload = "small_chat";

    /// <summary>Version of the model (a package or network manifest version); empty when unknown.</summary>
    [JsonPropertyName("version")]
    public string Version { get; init; } = "";

    /// <summary>What the model is for: <see cref="EmbeddingsWorkload"/> or <see cref="ChatWorkload"/>; empty = inferred from the model file.</summary>
    [JsonPropertyName("workload")]
    public string Workload { get; init; } = "";

    /// <summary>Embeddings pooling: "mean" (attention-mask mean, the default) or "cls" (the first token's state).</summary>
    [JsonPropertyName("pooling")]
    public string Pooling { get; init; } = "mean";

    /// <summary>Text the model card prepends to search queries (documentation for clients; the agent never adds it).</summary>
    [JsonPropertyName("query_prefix")]
    public string QueryPrefix { get; init; } = "";

    /// <summary>The workload this model serves: the manifest's, else small_chat for a .gguf model file, else embeddings.</summary>
    [JsonIgnore]
    public string EffectiveWorkload => !string.IsNullOrEmpty(Workload) ? Workload
        : ModelFile.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? ChatWorkload : EmbeddingsWorkload;

    /// <summary>SHA-256 the manifest pins for the weights file (<see cref="ModelFile"/>); empty when it is not listed.</summary>
    [JsonIgnore]
    public string WeightsSha256 => Files?.FirstOrDefault(f => string.Equals(f.Path, ModelFile, StringComparison.Ordinal))?.Sha256.ToLowerInvariant() ?? "";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Reads <c>manifest.json</c> from <paramref name="modelDir"/>.</summary>
    public static ModelManifest Load(string modelDir)
    {
        var path = System.IO.Path.Combine(modelDir, FileName);
        if (!File.Exists(path))
        {
            throw new ModelVerificationException($"no {FileName} in {modelDir}");
        }

        try
        {
            return JsonSerializer.Deserialize<ModelManifest>(File.ReadAllText(path), Json)
                   ?? throw new ModelVerificationException($"{path} is empty");
        }
        catch (JsonException ex)
        {
            throw new ModelVerificationException($"{path} is not a valid manifest: {ex.Message}");
        }
    }

    /// <summary>Writes the manifest into <paramref name="modelDir"/>.</summary>
    public void Save(string modelDir) => File.WriteAllText(System.IO.Path.Combine(modelDir, FileName), JsonSerializer.Serialize(this, Json));

    /// <summary>Describes a file on disk for the manifest.</summary>
    public static ModelFile Describe(string modelDir, string relativePath)
    {
        var full = System.IO.Path.Combine(modelDir, relativePath);
        using var stream = File.OpenRead(full);
        return new ModelFile(relativePath, Convert.ToHexStringLower(SHA256.HashData(stream)), new FileInfo(full).Length);
    }

    /// <summary>
    /// Checks size and SHA-256 of EVERY listed file and that the model and vocab files are listed;
    /// throws <see cref="ModelVerificationException"/> on the first mismatch.
    /// </summary>
    public void Verify(string modelDir)
    {
        if (Files is null || Files.Count == 0)
        {
            throw new ModelVerificationException("manifest lists no files");
        }

        var root = System.IO.Path.GetFullPath(modelDir);
        foreach (var file in Files)
        {
            var full = System.IO.Path.GetFullPath(System.IO.Path.Combine(root, file.Path));
            if (!full.StartsWith(root + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                throw new ModelVerificationException($"manifest path {file.Path} leaves the model directory");
            }

            if (!File.Exists(full))
            {
                throw new ModelVerificationException($"{file.Path} is missing");
            }

            var actual = Describe(root, file.Path);
            if (actual.Size != file.Size)
            {
                throw new ModelVerificationException($"{file.Path} has {actual.Size} bytes, manifest says {file.Size}");
            }

            if (!string.Equals(actual.Sha256, file.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new ModelVerificationException($"{file.Path} SHA-256 {actual.Sha256} does not match the manifest ({file.Sha256})");
            }
        }

        foreach (var required in new[] { ModelFile, VocabFile })
        {
            if (!Files.Any(f => string.Equals(f.Path, required, StringComparison.Ordinal)))
            {
                throw new ModelVerificationException($"{required} is not pinned by the manifest");
            }
        }
    }
}

/// <summary>A model directory failed verification; nothing from it may be loaded.</summary>
public sealed class ModelVerificationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ModelVerificationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ModelVerificationException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public ModelVerificationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

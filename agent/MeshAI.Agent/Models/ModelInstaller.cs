using System.Globalization;
using System.Security.Cryptography;
using MeshAI.Agent.Embeddings;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Model.V1;
using LocalManifest = MeshAI.Agent.Embeddings.ModelManifest;
using SignedManifest = MeshAI.Contracts.Model.V1.ModelManifest;

namespace MeshAI.Agent.Models;

/// <summary>
/// Installs a network model manifest into the device's model cache: verifies the control-key signature, fetches every
/// file from its source (file:// or https://, optionally restricted to trusted origin prefixes) into a staging
/// directory, checks each size and SHA-256 while it streams, and only then swaps the directory in with a local
/// <c>manifest.json</c>. Nothing that fails a check is kept, so nothing that fails one can be loaded.
/// </summary>
public sealed class ModelInstaller
{
    private readonly HttpClient _http;
    private readonly IReadOnlyList<string> _trustedOrigins;

    /// <summary>Creates the installer; <paramref name="trustedOrigins"/> empty = any file:// or https:// source the signed manifest names.</summary>
    public ModelInstaller(HttpClient http, IReadOnlyList<string> trustedOrigins)
    {
        _http = http;
        _trustedOrigins = trustedOrigins;
    }

    /// <summary>Verifies and installs <paramref name="signed"/> into <paramref name="targetDir"/>; returns the verified details.</summary>
    public async Task<ModelManifestDetails> InstallAsync(SignedManifest signed, IReadOnlyDictionary<string, byte[]> controlKeys, string networkId, string targetDir, CancellationToken ct)
    {
        var details = ModelManifests.Verify(signed, controlKeys, networkId, out var reason)
                      ?? throw new ModelVerificationException("manifest signature refused: " + reason);
        if (details.Files.Count == 0)
        {
            throw new ModelVerificationException("manifest lists no files");
        }

        var target = Path.GetFullPath(targetDir);
        var parent = Path.GetDirectoryName(target) ?? throw new ModelVerificationException($"{targetDir} has no parent directory");
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(target)}.fetch-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            foreach (var file in details.Files)
            {
                await FetchAsync(file, staging, ct);
            }

            var local = ToLocal(details);
            local.Save(staging);
            local.Verify(staging);
            Swap(staging, target);
            return details;
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }

    /// <summary>The local <c>manifest.json</c> for verified details (parameters dimension, max_tokens, model_file, vocab_file, pooling, query_prefix).</summary>
    public static LocalManifest ToLocal(ModelManifestDetails details)
    {
        ArgumentNullException.ThrowIfNull(details);
        string? Parameter(string key) => details.Parameters.TryGetValue(key, out var value) && value.Length > 0 ? value : null;
        var modelFile = Parameter("model_file") ?? details.Files[0].Path;
        return new LocalManifest(
            details.Name,
            int.TryParse(Parameter("dimension"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var dimension) ? dimension : 0,
            int.TryParse(Parameter("max_tokens"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var maxTokens) ? maxTokens : 0,
            modelFile,
            Parameter("vocab_file") ?? modelFile,
            details.Files.Select(f => new Embeddings.ModelFile(f.Path, f.Sha256.ToLowerInvariant(), f.SizeBytes)).ToList())
        {
            Version = details.Version,
            Workload = details.WorkloadClass switch
            {
                WorkloadClass.Embeddings => LocalManifest.EmbeddingsWorkload,
                WorkloadClass.SmallChat => LocalManifest.ChatWorkload,
                _ => "",
            },
            Pooling = Parameter("pooling") ?? "mean",
            QueryPrefix = Parameter("query_prefix") ?? "",
        };
    }

    private async Task FetchAsync(Contracts.Model.V1.ModelFile file, string staging, CancellationToken ct)
    {
        var destination = Path.GetFullPath(Path.Combine(staging, file.Path));
        if (!destination.StartsWith(staging + Path.DirectorySeparatorChar, StringComparison.Ordinal) || file.Path == LocalManifest.FileName)
        {
            throw new ModelVerificationException($"manifest path {file.Path} leaves the model directory");
        }

        if (!Uri.TryCreate(file.Source, UriKind.Absolute, out var source) || (source.Scheme != Uri.UriSchemeFile && source.Scheme != Uri.UriSchemeHttps))
        {
            throw new ModelVerificationException($"{file.Path}: source '{file.Source}' is not a file:// or https:// URL");
        }

        if (_trustedOrigins.Count > 0 && !_trustedOrigins.Any(o => file.Source.StartsWith(o, StringComparison.Ordinal)))
        {
            throw new ModelVerificationException($"{file.Path}: source {file.Source} is outside the trusted origins ({string.Join(", ", _trustedOrigins)})");
        }

        Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
        await using var input = await OpenAsync(source, ct);
        await CopyVerifiedAsync(input, destination, $"{file.Path} from {file.Source}", file.SizeBytes, file.Sha256, "the signed manifest", ct);
    }

    /// <summary>
    /// Copies <paramref name="input"/> to <paramref name="destination"/> while hashing it; throws
    /// <see cref="ModelVerificationException"/> as soon as it grows past <paramref name="size"/> bytes, or at the end when
    /// its size or SHA-256 differs from what <paramref name="pinnedBy"/> pins.
    /// </summary>
    internal static async Task CopyVerifiedAsync(Stream input, string destination, string label, long size, string sha256, string pinnedBy, CancellationToken ct)
    {
        await using var output = File.Create(destination);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 16];
        long total = 0;
        int read;
        while ((read = await input.ReadAsync(buffer, ct)) > 0)
        {
            total += read;
            if (total > size)
            {
                throw new ModelVerificationException($"{label} is larger than the {size} bytes {pinnedBy} pins");
            }

            hash.AppendData(buffer, 0, read);
            await output.WriteAsync(buffer.AsMemory(0, read), ct);
        }

        if (total != size)
        {
            throw new ModelVerificationException($"{label} has {total} bytes, {pinnedBy} pins {size}");
        }

        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!string.Equals(actual, sha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new ModelVerificationException($"{label}: SHA-256 {actual} does not match {pinnedBy} ({sha256})");
        }
    }

    private async Task<Stream> OpenAsync(Uri source, CancellationToken ct)
    {
        if (source.IsFile)
        {
            return File.OpenRead(source.LocalPath);
        }

        var response = await _http.GetAsync(source, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode)
        {
            response.Dispose();
            throw new ModelVerificationException($"{source} answered {(int)response.StatusCode}");
        }

        return await response.Content.ReadAsStreamAsync(ct);
    }

    /// <summary>Replaces <paramref name="target"/> with the verified <paramref name="staging"/> directory.</summary>
    internal static void Swap(string staging, string target)
    {
        string? old = null;
        if (Directory.Exists(target))
        {
            old = target + ".old-" + Guid.NewGuid().ToString("N");
            Directory.Move(target, old);
        }

        Directory.Move(staging, target);
        if (old is not null)
        {
            Directory.Delete(old, recursive: true);
        }
    }
}

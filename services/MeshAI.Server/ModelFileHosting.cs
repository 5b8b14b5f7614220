using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Net.Http.Headers;

namespace MeshAI.Server;

/// <summary>
/// Serves a model cache (<c>--models-dir</c>, the layout <c>meshai-agent models install</c> writes: one folder per model
/// with a <c>manifest.json</c> pinning every file's size and SHA-256) over the server's TLS port, so browser devices (the web
/// contributor) can fetch the same weights the native agent runs: <c>GET /models/{name}/{file}</c> for a file the folder's
/// manifest pins, and <c>GET /models/{name}/manifest.json</c> (what <c>meshnet models publish</c> turns into a signed
/// network manifest). A file whose bytes no longer hash to the pinned value is never served. Clients must still verify
/// against the network's SIGNED manifest: this endpoint is a transport, not a root of trust (docs/contributor.md).
/// </summary>
public static partial class ModelFileHosting
{
    /// <summary>URL prefix of the served models.</summary>
    public const string PathPrefix = "/models";

    private const string ManifestFile = "manifest.json";
    private static readonly ConcurrentDictionary<string, string> VerifiedHashes = new(StringComparer.Ordinal);

    /// <summary>Maps <c>/models/{name}/{file}</c>; with no models directory configured it answers 404 (never the dashboard).</summary>
    public static void MapModelFiles(this WebApplication app, string? modelsDir)
    {
        ArgumentNullException.ThrowIfNull(app);
        var root = string.IsNullOrWhiteSpace(modelsDir) ? null : Path.GetFullPath(modelsDir);
        if (root is not null && !Directory.Exists(root))
        {
            throw new InvalidOperationException($"--models-dir {root} does not exist; install the models there first (meshai-agent models install --out {root})");
        }

        app.MapMethods(PathPrefix + "/{name}/{file}", [HttpMethods.Get, HttpMethods.Head], async (HttpContext context, string name, string file) =>
        {
            context.Response.Headers["Cross-Origin-Resource-Policy"] = "same-origin";
            context.Response.Headers.XContentTypeOptions = "nosniff";
            if (root is null || !SafeName().IsMatch(name) || !SafeName().IsMatch(file))
            {
                return Results.NotFound();
            }

            var folder = Path.Combine(root, name);
            var manifestPath = Path.Combine(folder, ManifestFile);
            if (!File.Exists(manifestPath))
            {
                return Results.NotFound();
            }

            if (file == ManifestFile)
            {
                context.Response.Headers.CacheControl = "no-cache";
                return Results.File(manifestPath, "application/json");
            }

            var pinned = await PinnedFileAsync(manifestPath, file, context.RequestAborted);
            var path = Path.Combine(folder, file);
            if (pinned is null || !File.Exists(path))
            {
                return Results.NotFound();
            }

            var info = new FileInfo(path);
            if (info.Length != pinned.Value.Size || !string.Equals(await HashOnceAsync(info, context.RequestAborted), pinned.Value.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                return Results.Problem($"{name}/{file} does not match its manifest on the server; reinstall the model", statusCode: StatusCodes.Status409Conflict);
            }

            // Revalidated by its pinned hash: a reinstalled model with other bytes gets another ETag.
            context.Response.Headers.CacheControl = "no-cache";
            return Results.File(path, "application/octet-stream", lastModified: info.LastWriteTimeUtc,
                entityTag: new EntityTagHeaderValue("\"" + pinned.Value.Sha256.ToLowerInvariant() + "\""), enableRangeProcessing: true);
        });
    }

    private static async Task<(string Sha256, long Size)?> PinnedFileAsync(string manifestPath, string file, CancellationToken ct)
    {
        await using var stream = File.OpenRead(manifestPath);
        using var json = await JsonDocument.ParseAsync(stream, cancellationToken: ct);
        if (!json.RootElement.TryGetProperty("files", out var files) || files.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        foreach (var entry in files.EnumerateArray())
        {
            if (entry.TryGetProperty("path", out var path) && path.GetString() == file &&
                entry.TryGetProperty("sha256", out var sha) && entry.TryGetProperty("size", out var size) && size.TryGetInt64(out var bytes))
            {
                return (sha.GetString() ?? "", bytes);
            }
        }

        return null;
    }

    /// <summary>SHA-256 of the file, computed once per (path, size, modification time).</summary>
    private static async Task<string> HashOnceAsync(FileInfo info, CancellationToken ct)
    {
        var key = info.FullName + "|" + info.Length + "|" + info.LastWriteTimeUtc.Ticks;
        if (VerifiedHashes.TryGetValue(key, out var known))
        {
            return known;
        }

        await using var stream = new FileStream(info.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        var hash = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct));
        VerifiedHashes[key] = hash;
        return hash;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex SafeName();
}

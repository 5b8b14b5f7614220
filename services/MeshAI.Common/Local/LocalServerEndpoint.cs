using System.Text.Json;
using System.Text.Json.Serialization;

namespace MeshAI.Common.Local;

/// <summary>
/// What a running meshai-server writes to <c>&lt;data-dir&gt;/endpoint.json</c>: its public URL and TLS certificate
/// fingerprint (both public), so local tools can connect without copying them from the READY line.
/// </summary>
public sealed record LocalServerEndpoint(
    [property: JsonPropertyName("url")] string Url,
    [property: JsonPropertyName("fingerprint")] string Fingerprint)
{
    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    /// <summary>Writes the file (replacing an older one).</summary>
    public void Write(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(this, Options));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The endpoint in <paramref name="path"/>, or null when the file is missing or unreadable.</summary>
    public static LocalServerEndpoint? TryRead(string path)
    {
        try
        {
            var endpoint = File.Exists(path) ? JsonSerializer.Deserialize<LocalServerEndpoint>(File.ReadAllText(path)) : null;
            return endpoint is { Url.Length: > 0 } ? endpoint : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }
}

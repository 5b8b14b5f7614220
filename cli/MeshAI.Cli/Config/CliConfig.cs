using System.Text.Json.Serialization;

namespace MeshAI.Cli.Config;

/// <summary>What `meshnet` remembers between runs (~/.meshai/cli.json): the server, its pinned fingerprint, the session and the default network.</summary>
public sealed class CliConfig
{
    /// <summary>Server base URL, e.g. "https://127.0.0.1:7443".</summary>
    [JsonPropertyName("server")]
    public string? ServerUrl { get; set; }

    /// <summary>Pinned SHA-256 fingerprint of the server's TLS certificate; empty = normal CA validation.</summary>
    [JsonPropertyName("fingerprint")]
    public string? Fingerprint { get; set; }

    /// <summary>Session token (opaque bearer secret).</summary>
    [JsonPropertyName("sessionToken")]
    public string? SessionToken { get; set; }

    /// <summary>Network used when a command gets no --network.</summary>
    [JsonPropertyName("defaultNetworkId")]
    public string? DefaultNetworkId { get; set; }

    /// <summary>Email of the signed-in user (for messages only).</summary>
    [JsonPropertyName("email")]
    public string? Email { get; set; }

    /// <summary>Id of the signed-in user (for messages only).</summary>
    [JsonPropertyName("userId")]
    public string? UserId { get; set; }

    /// <summary>True when a server and a session token are stored.</summary>
    [JsonIgnore]
    public bool IsLoggedIn => !string.IsNullOrEmpty(ServerUrl) && !string.IsNullOrEmpty(SessionToken);
}

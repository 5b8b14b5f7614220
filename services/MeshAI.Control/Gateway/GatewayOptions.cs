using System.ComponentModel.DataAnnotations;

namespace MeshAI.Control.Gateway;

/// <summary>The OpenAI-compatible gateway's switches and input bounds (section <c>Control:Gateway</c>; docs/gateway.md).</summary>
public sealed class GatewayOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Control:Gateway";

    /// <summary>Serve /v1/* at all.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Largest request body (bytes); larger bodies get 413.</summary>
    [Range(1024, 16 * 1024 * 1024)]
    public int MaxRequestBytes { get; set; } = 1024 * 1024;

    /// <summary>Longest single embeddings input (characters).</summary>
    [Range(1, 1_000_000)]
    public int MaxInputChars { get; set; } = 32_768;

    /// <summary>Most chat messages per request.</summary>
    [Range(1, 1024)]
    public int MaxMessages { get; set; } = 128;

    /// <summary>Longest chat message content (characters).</summary>
    [Range(1, 1_000_000)]
    public int MaxMessageChars { get; set; } = 65_536;

    /// <summary>Most characters over all chat messages of one request.</summary>
    [Range(1, 4_000_000)]
    public int MaxPromptChars { get; set; } = 262_144;

    /// <summary>Most stop sequences (OpenAI allows 4).</summary>
    [Range(0, 16)]
    public int MaxStops { get; set; } = 4;

    /// <summary>Longest stop sequence (characters).</summary>
    [Range(1, 1024)]
    public int MaxStopChars { get; set; } = 128;

    /// <summary>Most completion tokens one request may ask for (the agent's chat handler limit).</summary>
    [Range(1, 32_768)]
    public int MaxCompletionTokens { get; set; } = 4096;

    /// <summary>Requests per minute per API key (or session) across /v1/*; more get 429.</summary>
    [Range(1, 1_000_000)]
    public int RequestsPerMinutePerCaller { get; set; } = 600;

    /// <summary>End-to-end recipients each payload is sealed to (retries need no new seal).</summary>
    [Range(1, 16)]
    public int Recipients { get; set; } = 3;
}

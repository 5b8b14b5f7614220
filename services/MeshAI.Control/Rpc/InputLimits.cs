using System.ComponentModel.DataAnnotations;

namespace MeshAI.Control.Rpc;

/// <summary>
/// The named bounds of every request field (configuration section <c>Control:Input</c>). <see cref="RequestBoundsTable"/>
/// assigns one of these to every string, bytes, repeated, map and number field of every request message, and
/// <see cref="RequestBounds"/> enforces them before any service code runs and again on every settings write.
/// </summary>
public sealed class InputLimits
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Control:Input";

    // ---- strings (UTF-16 characters) ----

    /// <summary>Resource ids ("net_…", "job_…"), user codes, ceremony and key ids, chunk ids.</summary>
    [Range(16, 1024)]
    public int IdChars { get; set; } = 64;

    /// <summary>Display names: devices, API keys, passkeys, client names, policy rules and tests, model names and versions.</summary>
    [Range(8, 4096)]
    public int NameChars { get; set; } = 100;

    /// <summary>Email addresses and usernames (RFC 5321 path limit).</summary>
    [Range(64, 4096)]
    public int EmailChars { get; set; } = 254;

    /// <summary>Secrets and opaque tokens: session, magic-link, join, invite and pairing secrets, page tokens, idempotency keys, OIDC state and code.</summary>
    [Range(64, 8192)]
    public int TokenChars { get; set; } = 512;

    /// <summary>URLs and links: redirect URIs, blob references, model sources, invite links.</summary>
    [Range(256, 65536)]
    public int UrlChars { get; set; } = 2048;

    /// <summary>Free text: revoke reasons, progress and log messages, failure details, labels and parameters.</summary>
    [Range(64, 1_048_576)]
    public int TextChars { get; set; } = 1024;

    /// <summary>WebAuthn attestation / assertion JSON.</summary>
    [Range(1024, 4_194_304)]
    public int JsonChars { get; set; } = 64 * 1024;

    /// <summary>Model file paths inside a model directory.</summary>
    [Range(16, 4096)]
    public int PathChars { get; set; } = 256;

    /// <summary>Hex digests (SHA-256 is 64 characters).</summary>
    [Range(64, 1024)]
    public int HashChars { get; set; } = 128;

    /// <summary>One embeddings input text.</summary>
    [Range(64, 4_194_304)]
    public int EmbeddingTextChars { get; set; } = 16 * 1024;

    /// <summary>One chat message's content.</summary>
    [Range(64, 4_194_304)]
    public int ChatContentChars { get; set; } = 256 * 1024;

    // ---- bytes ----

    /// <summary>Raw keys, nonces, signatures and wrapped content keys (ed25519 signatures are 64 bytes).</summary>
    [Range(64, 65536)]
    public int KeyBytes { get; set; } = 128;

    /// <summary>A serialized device certificate's details (and any certificate-sized blob).</summary>
    [Range(256, 1_048_576)]
    public int CertificateBytes { get; set; } = 4096;

    /// <summary>One inline blob (an OCR image, a WAV chunk) in a job or a result: the 16 MiB message limit less room for the rest of the message.</summary>
    [Range(1024, int.MaxValue)]
    public int BlobBytes { get; set; } = 15 * 1024 * 1024;

    /// <summary>A job's serialized output in a result frame (as <see cref="BlobBytes"/>: never tighter than the relay's frame limit needs).</summary>
    [Range(1024, int.MaxValue)]
    public int ResultBytes { get; set; } = 15 * 1024 * 1024;

    /// <summary>One streamed token frame (ciphertext of a few tokens).</summary>
    [Range(64, 1_048_576)]
    public int TokenFrameBytes { get; set; } = 16 * 1024;

    // ---- counts ----

    /// <summary>Short lists: scopes, LAN addresses, pinned device ids, states, workloads, allowlist entries, running jobs, field-mask paths.</summary>
    [Range(8, 100_000)]
    public int ListItems { get; set; } = 64;

    /// <summary>Blobs in one job manifest or result.</summary>
    [Range(1, 100_000)]
    public int Blobs { get; set; } = 64;

    /// <summary>Labels, parameters and log fields per map.</summary>
    [Range(1, 100_000)]
    public int MapEntries { get; set; } = 32;

    /// <summary>Rules and tests per policy.</summary>
    [Range(1, 100_000)]
    public int PolicyItems { get; set; } = 256;

    /// <summary>Files per model manifest.</summary>
    [Range(1, 100_000)]
    public int ModelFiles { get; set; } = 64;

    /// <summary>Job attempts an agent may say it still holds when it opens a relay stream (relay protocol 2).</summary>
    [Range(1, 1_000_000)]
    public int HeldAttempts { get; set; } = 1024;

    /// <summary>Messages in one chat input; items in one batch input.</summary>
    [Range(1, 1_000_000)]
    public int WorkloadItems { get; set; } = 1024;

    // ---- numbers ----

    /// <summary>Largest max_cost_credits (micro-credits) a job may carry: one billion credits, far below int64 overflow.</summary>
    [Range(1, long.MaxValue)]
    public long MaxCostCapMicro { get; set; } = 1_000_000_000L * 1_000_000;

    /// <summary>Largest per-tier earn or burn rate: one million credits per minute, in micro-credits (every product stays in Int128).</summary>
    [Range(1, long.MaxValue)]
    public long MaxRateMicroPerMin { get; set; } = 1_000_000L * 1_000_000;

    /// <summary>Largest network multiplier in basis points (100×).</summary>
    [Range(10_000, long.MaxValue)]
    public long MaxMultiplierBps { get; set; } = 1_000_000;

    /// <summary>Largest billing granularity: one hour.</summary>
    [Range(1, long.MaxValue)]
    public long MaxBillingGranularityMs { get; set; } = 3_600_000;

    /// <summary>Largest relay surcharge per MiB, in micro-credits.</summary>
    [Range(0, long.MaxValue)]
    public long MaxRelaySurchargeMicroPerMib { get; set; } = 1_000_000L * 1_000_000;

    /// <summary>Largest absolute scoring weight.</summary>
    [Range(0.01, 1_000_000)]
    public double MaxScoringWeight { get; set; } = 10;

    /// <summary>Most attempts a retry policy may allow (and most backoff steps).</summary>
    [Range(1, 100)]
    public int MaxRetryAttempts { get; set; } = 10;

    /// <summary>Longest single backoff step.</summary>
    [Range(1, int.MaxValue)]
    public int MaxBackoffMs { get; set; } = 60_000;

    /// <summary>Longest scheduled key rotation period.</summary>
    [Range(1, 36_500)]
    public int MaxKeyRotationDays { get; set; } = 3650;

    /// <summary>Highest device trust level a network may require.</summary>
    [Range(1, 1_000_000)]
    public int MaxTrustLevel { get; set; } = 100;

    /// <summary>Most uses of one join token.</summary>
    [Range(1, 1_000_000)]
    public int MaxJoinTokenUses { get; set; } = 1000;

    /// <summary>Most tokens a chat job may ask for.</summary>
    [Range(1, 10_000_000)]
    public int MaxChatTokens { get; set; } = 32_768;
}

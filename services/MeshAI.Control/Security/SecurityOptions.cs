using System.ComponentModel.DataAnnotations;

namespace MeshAI.Control.Security;

/// <summary>Named limits of identity and security (section <c>Control:Security</c>).</summary>
public sealed class SecurityOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Control:Security";

    /// <summary>How long an invite link works.</summary>
    [Range(1, 90)]
    public int InviteTtlDays { get; set; } = 7;

    /// <summary>After a rotation, how long the previous CA and control keys still verify.</summary>
    [Range(1, 24 * 90)]
    public int KeyRotationGraceHours { get; set; } = 7 * 24;

    /// <summary>How often the scheduled-rotation sweep looks for networks whose keys are older than their key_rotation_days.</summary>
    [Range(1, 24 * 60)]
    public int KeyRotationSweepMinutes { get; set; } = 60;

    /// <summary>Unauthenticated auth calls (magic link, device login, passkey login, OIDC) allowed per peer address per minute.</summary>
    [Range(1, 100_000)]
    public int AuthCallsPerMinutePerPeer { get; set; } = 300;

    /// <summary>Device-authenticated calls (RegisterDevice, RenewCertificate, pairing) allowed per device or peer per minute.</summary>
    [Range(1, 100_000)]
    public int DeviceCallsPerMinute { get; set; } = 600;

    /// <summary>How long a passkey or OIDC ceremony (challenge, state) can be finished.</summary>
    [Range(10, 3600)]
    public int CeremonyTtlSeconds { get; set; } = 300;

    /// <summary>WebAuthn relying-party id; empty: the public URL's host ("localhost" when that is an IP address).</summary>
    public string? PasskeyRpId { get; set; }

    /// <summary>WebAuthn relying-party name shown by authenticators.</summary>
    public string PasskeyRpName { get; set; } = "MeshAI";

    /// <summary>Origins WebAuthn responses may come from; empty: the public URL and its localhost form.</summary>
    public string[] PasskeyOrigins { get; set; } = [];

    /// <summary>Longest audit target (an id; longer ones are cut).</summary>
    [Range(16, 4096)]
    public int AuditTargetChars { get; set; } = 128;

    /// <summary>Most detail entries one audit event keeps.</summary>
    [Range(1, 256)]
    public int AuditDetails { get; set; } = 16;

    /// <summary>Longest audit detail value (a revoke reason, an invitee; longer ones are cut with "…").</summary>
    [Range(16, 65536)]
    public int AuditDetailChars { get; set; } = 512;

    /// <summary>
    /// Longest time a control instance answers "who is this caller" (session or API key) and "what is their membership" from
    /// its cache instead of the store (docs/security.md, "Authorisation cache"): the staleness bound when an invalidation is
    /// missed. Revocations, role and membership changes and settings updates clear the cache at once on the instance that made
    /// them and, through the bus, on every other instance. 0 turns the cache off.
    /// </summary>
    [Range(0, 60_000)]
    public int AccessCacheTtlMs { get; set; } = 2_000;

    /// <summary>Most callers and most memberships the authorisation cache keeps (each); a full table is emptied.</summary>
    [Range(16, 1_000_000)]
    public int AccessCacheEntries { get; set; } = 10_000;

    /// <summary>Scopes an API key gets when none are requested.</summary>
    public string[] DefaultApiKeyScopes { get; set; } = ["jobs", "devices:read", "ledger:read"];
}

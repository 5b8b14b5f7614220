namespace MeshAI.Control.Storage;

// Row shapes as stored (snake_case columns map to these by Dapper). Times are Unix milliseconds.

/// <summary>A users row.</summary>
public sealed class UserRow
{
    /// <summary>"usr_…".</summary>
    public string UserId { get; set; } = "";
    public string Email { get; set; } = "";
    public string DisplayName { get; set; } = "";
    public string Username { get; set; } = "";
    public long CreateTimeMs { get; set; }
}

/// <summary>A sessions row (the token is stored hashed).</summary>
public sealed class SessionRow
{
    public string SessionId { get; set; } = "";
    public string UserId { get; set; } = "";
    public string TokenHash { get; set; } = "";
    public string ClientName { get; set; } = "";
    public long CreateTimeMs { get; set; }
    public long ExpireTimeMs { get; set; }
    public bool Revoked { get; set; }
}

/// <summary>A device_logins row (CLI device-code login).</summary>
public sealed class DeviceLoginRow
{
    public string DeviceLoginId { get; set; } = "";
    public string DeviceCodeHash { get; set; } = "";
    public string UserCode { get; set; } = "";
    public string Email { get; set; } = "";
    public string ClientName { get; set; } = "";
    public int State { get; set; }
    public string? ApprovedUserId { get; set; }
    public bool Delivered { get; set; }
    public long CreateTimeMs { get; set; }
    public long ExpireTimeMs { get; set; }
}

/// <summary>A magic_links row.</summary>
public sealed class MagicLinkRow
{
    public string TokenHash { get; set; } = "";
    public string Email { get; set; } = "";
    public string? DeviceLoginId { get; set; }
    public long CreateTimeMs { get; set; }
    public long ExpireTimeMs { get; set; }
    public long? UsedTimeMs { get; set; }
}

/// <summary>A networks row; settings are the JSON form of NetworkSettings.</summary>
public sealed class NetworkRow
{
    public string NetworkId { get; set; } = "";
    public string Name { get; set; } = "";
    public int Visibility { get; set; }
    public int BillingMode { get; set; }
    public string CreatedByUserId { get; set; } = "";
    public long CreateTimeMs { get; set; }
    public string SettingsJson { get; set; } = "";
}

/// <summary>A network_keys row; the private half is encrypted with the server master key.</summary>
public sealed class NetworkKeyRow
{
    public string KeyId { get; set; } = "";
    public string NetworkId { get; set; } = "";
    public int Purpose { get; set; }
    public byte[] PublicKey { get; set; } = [];
    public byte[] PrivateKeyEnc { get; set; } = [];
    public long CreateTimeMs { get; set; }
    public long? NotAfterMs { get; set; }
}

/// <summary>A members row joined with the user's email and name.</summary>
public sealed class MemberRow
{
    public string NetworkId { get; set; } = "";
    public string UserId { get; set; } = "";
    public int Role { get; set; }
    public int State { get; set; }
    public long JoinTimeMs { get; set; }
    public string Email { get; set; } = "";
    public string DisplayName { get; set; } = "";
}

/// <summary>A join_tokens row.</summary>
public sealed class JoinTokenRow
{
    public string JoinTokenId { get; set; } = "";
    public string NetworkId { get; set; } = "";
    public string TokenHash { get; set; } = "";
    public string CreatedByUserId { get; set; } = "";
    public long CreateTimeMs { get; set; }
    public long ExpireTimeMs { get; set; }
    public int MaxUses { get; set; }
    public int Uses { get; set; }
}

/// <summary>A device_pairings row (device-code pairing).</summary>
public sealed class PairingRow
{
    public string PairingId { get; set; } = "";
    public string SecretHash { get; set; } = "";
    public string UserCode { get; set; } = "";
    public string DeviceName { get; set; } = "";
    public string InstallationId { get; set; } = "";
    public int State { get; set; }
    public string? NetworkId { get; set; }
    public string? ApprovedByUserId { get; set; }
    public bool Delivered { get; set; }
    public long CreateTimeMs { get; set; }
    public long ExpireTimeMs { get; set; }
}

/// <summary>A devices row; capabilities are the serialized CapabilityReport.</summary>
public sealed class DeviceRow
{
    public string DeviceId { get; set; } = "";
    public string NetworkId { get; set; } = "";
    public string OwnerUserId { get; set; } = "";
    public string Name { get; set; } = "";
    public int Platform { get; set; }
    public string InstallationId { get; set; } = "";
    public byte[] SigningPublicKey { get; set; } = [];
    public byte[] EncryptionPublicKey { get; set; } = [];
    public byte[] Capabilities { get; set; } = [];
    public int ContributionMode { get; set; }
    public bool ContributionEnabled { get; set; }
    /// <summary>Comma-separated WorkloadClass numbers.</summary>
    public string PinnedWorkloads { get; set; } = "";
    public int TrustLevel { get; set; }
    public string CertificateSerial { get; set; } = "";
    public long CreateTimeMs { get; set; }
    public long? LastSeenTimeMs { get; set; }
    public bool Revoked { get; set; }
    public long? RevokeTimeMs { get; set; }
    public string? RevokeReason { get; set; }
}

/// <summary>A jobs row; envelope is the serialized JobEnvelope, debug_view the serialized JobDebugView.</summary>
public sealed class JobRow
{
    /// <summary>A shallow copy (the byte arrays are shared and never changed in place).</summary>
    public JobRow Copy() => (JobRow)MemberwiseClone();

    public string JobId { get; set; } = "";
    public string NetworkId { get; set; } = "";
    public string SubmittedByUserId { get; set; } = "";
    public int WorkloadId { get; set; }
    public int State { get; set; }
    public int RoutingMode { get; set; }
    public int DataSensitivityTag { get; set; }
    public byte[] Envelope { get; set; } = [];
    public string? IdempotencyKey { get; set; }
    public string? DeviceId { get; set; }
    public int Tier { get; set; }
    public long CreateTimeMs { get; set; }
    public long? StartTimeMs { get; set; }
    public long? EndTimeMs { get; set; }
    public long RuntimeMs { get; set; }
    public long BilledRuntimeMs { get; set; }
    public long CostMicro { get; set; }
    public long MaxCostCredits { get; set; }
    public long TimeoutMs { get; set; }
    public string ErrorMessage { get; set; } = "";
    public long RelayBytes { get; set; }
    public string TraceId { get; set; } = "";
    public byte[]? Output { get; set; }
    public byte[]? OutputNonce { get; set; }
    public bool OutputEncrypted { get; set; }
    public byte[]? DebugView { get; set; }
    public long? PlacementTimeMs { get; set; }
    public int ChunkCount { get; set; }
    public int ChunksCompleted { get; set; }

    /// <summary>The control instance running the job (its lease holder), null before the first claim.</summary>
    public string? OwnerInstance { get; set; }

    /// <summary>When the owner's lease runs out unless renewed; another instance may claim the job after it.</summary>
    public long? LeaseExpireMs { get; set; }
}

/// <summary>A job_attempts row.</summary>
public sealed class JobAttemptRow
{
    public string JobId { get; set; } = "";
    public int Attempt { get; set; }
    public string DeviceId { get; set; } = "";
    public int Cause { get; set; }
    public long StartTimeMs { get; set; }
    public long? EndTimeMs { get; set; }
    public string Detail { get; set; } = "";
    public string ChunkId { get; set; } = "";
}

/// <summary>A ledger_events row (append-only).</summary>
public sealed class LedgerEventRow
{
    public long Sequence { get; set; }
    public string EventId { get; set; } = "";
    public string NetworkId { get; set; } = "";
    public int EventType { get; set; }
    public string JobId { get; set; } = "";
    public string ChunkId { get; set; } = "";
    public string UserId { get; set; } = "";
    public string DeviceId { get; set; } = "";
    public int AccountKind { get; set; }
    public long AmountMicro { get; set; }
    public long RuntimeMs { get; set; }
    public long BilledRuntimeMs { get; set; }
    public int Tier { get; set; }
    public string IdempotencyKey { get; set; } = "";
    public long CreateTimeMs { get; set; }
    public long RelayBytes { get; set; }
}

namespace MeshAI.Control.Storage;

/// <summary>An audit_events row (append-only; details are a JSON string map).</summary>
public sealed class AuditEventRow
{
    public long Sequence { get; set; }
    public string EventId { get; set; } = "";
    public string NetworkId { get; set; } = "";
    public string ActorUserId { get; set; } = "";
    public int Action { get; set; }
    public string Target { get; set; } = "";
    public string DetailsJson { get; set; } = "{}";
    public long TimeMs { get; set; }
    public string RemoteAddress { get; set; } = "";
}

/// <summary>An invites row; the invite secret is stored hashed.</summary>
public sealed class InviteRow
{
    public string InviteId { get; set; } = "";
    public string NetworkId { get; set; } = "";
    public int InviteType { get; set; }
    public string Invitee { get; set; } = "";
    public int Role { get; set; }
    public string TokenHash { get; set; } = "";
    public string CreatedByUserId { get; set; } = "";
    public long CreateTimeMs { get; set; }
    public long ExpireTimeMs { get; set; }
    public bool Revoked { get; set; }
    public int Uses { get; set; }
}

/// <summary>An api_keys row; the secret is stored hashed, scopes comma-separated.</summary>
public sealed class ApiKeyRow
{
    public string ApiKeyId { get; set; } = "";
    public string NetworkId { get; set; } = "";
    public string UserId { get; set; } = "";
    public string Name { get; set; } = "";
    public string Scopes { get; set; } = "";
    public string Prefix { get; set; } = "";
    public string SecretHash { get; set; } = "";
    public long CreateTimeMs { get; set; }
    public bool Revoked { get; set; }
    public long? RevokeTimeMs { get; set; }
}

/// <summary>A passkeys row (a registered WebAuthn credential).</summary>
public sealed class PasskeyRow
{
    public string PasskeyId { get; set; } = "";
    public string UserId { get; set; } = "";
    public string Name { get; set; } = "";
    public byte[] CredentialId { get; set; } = [];
    public byte[] PublicKey { get; set; } = [];
    public byte[] UserHandle { get; set; } = [];
    public long SignCount { get; set; }
    public long CreateTimeMs { get; set; }
}

/// <summary>An auth_ceremonies row: a pending WebAuthn or OIDC exchange, single-use.</summary>
public sealed class CeremonyRow
{
    public string CeremonyId { get; set; } = "";
    public string Kind { get; set; } = "";
    public string? UserId { get; set; }
    public string DataJson { get; set; } = "";
    public long CreateTimeMs { get; set; }
    public long ExpireTimeMs { get; set; }
    public bool Used { get; set; }
}

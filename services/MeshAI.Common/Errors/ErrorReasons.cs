using System.Reflection;

namespace MeshAI.Common.Errors;

/// <summary>
/// Every <c>google.rpc.ErrorInfo.reason</c> the server sends (AIP-193: a constant that names the proximate cause, unique in
/// the <see cref="RpcErrors.Domain"/> domain). Clients branch on these, never on messages. The proto comments of every RPC
/// list which reasons it can return; docs/errors.md explains each one. NOT_FOUND and ALREADY_EXISTS derive theirs from
/// the resource type (<see cref="NotFound"/>, <see cref="AlreadyExists"/>).
/// </summary>
public static class ErrorReasons
{
    // ---- any RPC: the bounds layer, the message size, transient and internal failures ----

    /// <summary>INVALID_ARGUMENT: a string or bytes field is longer than its bound.</summary>
    public const string FieldTooLong = "FIELD_TOO_LONG";

    /// <summary>INVALID_ARGUMENT: a repeated or map field has more entries than its bound.</summary>
    public const string TooManyItems = "TOO_MANY_ITEMS";

    /// <summary>INVALID_ARGUMENT: an enum field holds a value the contract does not define.</summary>
    public const string UnknownEnumValue = "UNKNOWN_ENUM_VALUE";

    /// <summary>INVALID_ARGUMENT: a string holds NUL, or a single-line field holds control characters.</summary>
    public const string InvalidCharacters = "INVALID_CHARACTERS";

    /// <summary>INVALID_ARGUMENT: a number or timestamp is outside its range (or a double is NaN/infinite).</summary>
    public const string ValueOutOfRange = "VALUE_OUT_OF_RANGE";

    /// <summary>INVALID_ARGUMENT: the request bytes are not a valid protobuf message (or hold invalid UTF-8).</summary>
    public const string MalformedRequest = "MALFORMED_REQUEST";

    /// <summary>INVALID_ARGUMENT: a required field is empty.</summary>
    public const string FieldRequired = "FIELD_REQUIRED";

    /// <summary>INVALID_ARGUMENT: a field's value is not acceptable; the BadRequest violation says why.</summary>
    public const string FieldInvalid = "FIELD_INVALID";

    /// <summary>RESOURCE_EXHAUSTED: the request message is over the server's size limit.</summary>
    public const string MessageTooLarge = "MESSAGE_TOO_LARGE";

    /// <summary>RESOURCE_EXHAUSTED: too many calls from one address this minute.</summary>
    public const string RateLimited = "RATE_LIMITED";

    /// <summary>UNAVAILABLE: the store could not be reached or was busy; retry with backoff.</summary>
    public const string StoreUnavailable = "STORE_UNAVAILABLE";

    /// <summary>ABORTED: a concurrent write won; read again and retry.</summary>
    public const string ConcurrentUpdate = "CONCURRENT_UPDATE";

    /// <summary>CANCELLED: the caller cancelled the call.</summary>
    public const string RequestCancelled = "REQUEST_CANCELLED";

    /// <summary>DEADLINE_EXCEEDED: the call's deadline passed.</summary>
    public const string DeadlineExceeded = "DEADLINE_EXCEEDED";

    /// <summary>INTERNAL: a server bug; the message carries a trace id to find the logged exception.</summary>
    public const string InternalError = "INTERNAL_ERROR";

    /// <summary>UNIMPLEMENTED: this server does not serve the method.</summary>
    public const string MethodNotImplemented = "METHOD_NOT_IMPLEMENTED";

    /// <summary>UNAVAILABLE: the server is shutting down or a dependency is not ready.</summary>
    public const string ServiceUnavailable = "SERVICE_UNAVAILABLE";

    // ---- authentication and authorisation ----

    /// <summary>UNAUTHENTICATED: no "authorization: Bearer …" credential.</summary>
    public const string SessionRequired = "SESSION_REQUIRED";

    /// <summary>UNAUTHENTICATED: the session is unknown, expired or revoked (or its user is gone).</summary>
    public const string SessionInvalid = "SESSION_INVALID";

    /// <summary>UNAUTHENTICATED: the API key is unknown or revoked.</summary>
    public const string ApiKeyInvalid = "API_KEY_INVALID";

    /// <summary>UNAUTHENTICATED: the default for credential failures without a more specific reason (relay handshake).</summary>
    public const string AuthenticationFailed = "AUTHENTICATION_FAILED";

    /// <summary>PERMISSION_DENIED: the default for refusals without a more specific reason (relay certificate refusal).</summary>
    public const string PermissionDenied = "PERMISSION_DENIED";

    /// <summary>PERMISSION_DENIED: the RPC has no row in the authorisation table (fail closed).</summary>
    public const string NoAuthorizationRule = "NO_AUTHORIZATION_RULE";

    /// <summary>PERMISSION_DENIED: an API key called an RPC that takes sessions only.</summary>
    public const string SessionOnly = "SESSION_ONLY";

    /// <summary>PERMISSION_DENIED: the API key lacks the scope the RPC needs.</summary>
    public const string ApiKeyScopeMissing = "API_KEY_SCOPE_MISSING";

    /// <summary>PERMISSION_DENIED: only the network's admins may do this.</summary>
    public const string AdminRequired = "ADMIN_REQUIRED";

    /// <summary>PERMISSION_DENIED: guests may not do this (members and admins may).</summary>
    public const string MemberRequired = "MEMBER_REQUIRED";

    /// <summary>PERMISSION_DENIED: only the resource's owner (device owner, job submitter) or an admin may do this.</summary>
    public const string OwnerOrAdminRequired = "OWNER_OR_ADMIN_REQUIRED";

    /// <summary>PERMISSION_DENIED: the invite names another email address or username.</summary>
    public const string InviteForAnotherUser = "INVITE_FOR_ANOTHER_USER";

    /// <summary>UNAUTHENTICATED: the magic link is unknown, already used or expired.</summary>
    public const string MagicLinkInvalid = "MAGIC_LINK_INVALID";

    /// <summary>FAILED_PRECONDITION: OIDC login is not configured on this server.</summary>
    public const string OidcNotConfigured = "OIDC_NOT_CONFIGURED";

    /// <summary>FAILED_PRECONDITION: the OIDC login (state) is unknown, completed or expired.</summary>
    public const string OidcStateInvalid = "OIDC_STATE_INVALID";

    /// <summary>UNAUTHENTICATED: the provider refused the code or its id_token does not check out.</summary>
    public const string OidcLoginFailed = "OIDC_LOGIN_FAILED";

    /// <summary>FAILED_PRECONDITION: the passkey ceremony is unknown, used or expired.</summary>
    public const string PasskeyCeremonyInvalid = "PASSKEY_CEREMONY_INVALID";

    /// <summary>PERMISSION_DENIED: the passkey ceremony belongs to another user.</summary>
    public const string PasskeyCeremonyForbidden = "PASSKEY_CEREMONY_FORBIDDEN";

    /// <summary>PERMISSION_DENIED: the authenticator's attestation does not verify.</summary>
    public const string PasskeyRegistrationFailed = "PASSKEY_REGISTRATION_FAILED";

    /// <summary>UNAUTHENTICATED: unknown passkey or an assertion that does not verify.</summary>
    public const string PasskeyLoginFailed = "PASSKEY_LOGIN_FAILED";

    // ---- devices ----

    /// <summary>UNAUTHENTICATED: a device's proof of key possession does not verify (or its clock is off).</summary>
    public const string DeviceProofInvalid = "DEVICE_PROOF_INVALID";

    /// <summary>UNAUTHENTICATED: a device certificate is missing or not trusted (one reason for every cause).</summary>
    public const string DeviceCertificateRefused = "DEVICE_CERTIFICATE_REFUSED";

    /// <summary>PERMISSION_DENIED: the device was revoked; rejoining needs a new join link and approval.</summary>
    public const string DeviceRevoked = "DEVICE_REVOKED";

    /// <summary>UNAUTHENTICATED: the join token is not valid for this server.</summary>
    public const string JoinTokenInvalid = "JOIN_TOKEN_INVALID";

    /// <summary>FAILED_PRECONDITION: the join token expired.</summary>
    public const string JoinTokenExpired = "JOIN_TOKEN_EXPIRED";

    /// <summary>FAILED_PRECONDITION: the join token has no uses left.</summary>
    public const string JoinTokenUsedUp = "JOIN_TOKEN_USED_UP";

    // ---- members, policies ----

    /// <summary>FAILED_PRECONDITION: the invite expired.</summary>
    public const string InviteExpired = "INVITE_EXPIRED";

    /// <summary>FAILED_PRECONDITION: the single-use invite was used already.</summary>
    public const string InviteAlreadyUsed = "INVITE_ALREADY_USED";

    /// <summary>FAILED_PRECONDITION: only members pending approval can be approved.</summary>
    public const string MemberNotPending = "MEMBER_NOT_PENDING";

    /// <summary>FAILED_PRECONDITION: the change would leave the network without an admin.</summary>
    public const string LastAdmin = "LAST_ADMIN";

    /// <summary>FAILED_PRECONDITION: a stored policy test fails against the proposed policy.</summary>
    public const string PolicyTestsFailed = "POLICY_TESTS_FAILED";

    /// <summary>FAILED_PRECONDITION: expected_version is not the stored policy version.</summary>
    public const string PolicyVersionMismatch = "POLICY_VERSION_MISMATCH";

    // ---- jobs and credits ----

    /// <summary>FAILED_PRECONDITION: the job's estimated cost is above its max_cost_credits.</summary>
    public const string JobCostCapExceeded = "JOB_COST_CAP_EXCEEDED";

    /// <summary>FAILED_PRECONDITION: the pool (or the member's balance) cannot cover the job's estimate.</summary>
    public const string InsufficientCredits = "INSUFFICIENT_CREDITS";

    /// <summary>Anti-abuse (audit and device flags, not an RPC error): a device answered a canary job wrong (docs/anti-abuse.md).</summary>
    public const string CanaryFailed = "CANARY_FAILED";

    /// <summary>INVALID_ARGUMENT: the job names a model no device of the network reports and no manifest publishes.</summary>
    public const string ModelNotAvailable = "MODEL_NOT_AVAILABLE";

    /// <summary>FAILED_PRECONDITION: no online device passes the eligibility filters.</summary>
    public const string NoEligibleDevice = "NO_ELIGIBLE_DEVICE";

    /// <summary>RESOURCE_EXHAUSTED: the user created the free tier's networks already.</summary>
    public const string FreeTierNetworksPerUser = "FREE_TIER_NETWORKS_PER_USER";

    /// <summary>RESOURCE_EXHAUSTED: the network holds the free tier's devices already.</summary>
    public const string FreeTierDevicesPerNetwork = "FREE_TIER_DEVICES_PER_NETWORK";

    /// <summary>RESOURCE_EXHAUSTED: the network relayed the free tier's bytes this month.</summary>
    public const string FreeTierRelayBandwidth = "FREE_TIER_RELAY_BANDWIDTH";

    // ---- chunked blobs (meshai.job.v1.BlobService, docs/job-plane.md "Chunked blobs") ----

    /// <summary>RESOURCE_EXHAUSTED: the announced blob is above Control:Blobs:MaxBlobBytes.</summary>
    public const string BlobTooLarge = "BLOB_TOO_LARGE";

    /// <summary>RESOURCE_EXHAUSTED: the network has Control:Blobs:MaxUploadsPerNetwork unfinished uploads.</summary>
    public const string BlobUploadsInFlight = "BLOB_UPLOADS_IN_FLIGHT";

    /// <summary>RESOURCE_EXHAUSTED: the network's stored blobs would exceed Control:Blobs:MaxStoredBytesPerNetwork.</summary>
    public const string BlobStoreFull = "BLOB_STORE_FULL";

    /// <summary>INVALID_ARGUMENT: a chunk index outside the announced blob.</summary>
    public const string BlobChunkOutOfRange = "BLOB_CHUNK_OUT_OF_RANGE";

    /// <summary>INVALID_ARGUMENT: a chunk is not the upload's chunk size (the last one: the rest of the blob).</summary>
    public const string BlobChunkSizeMismatch = "BLOB_CHUNK_SIZE_MISMATCH";

    /// <summary>
    /// Not an RPC status: named in a failed job's error (non-retryable) when a sealed input blob's chunk does not
    /// authenticate on the placed device (tampered at control, reordered, truncated, or sealed for another job or name).
    /// </summary>
    public const string BlobChunkUnauthenticated = "BLOB_CHUNK_UNAUTHENTICATED";

    /// <summary>
    /// Not an RPC status: named in a failed job's error (retryable) when the placed device cannot unwrap the job's content
    /// key to derive a sealed input blob's key (the key was not wrapped for this device): nothing was read or opened yet.
    /// </summary>
    public const string BlobKeyUnavailable = "BLOB_KEY_UNAVAILABLE";

    /// <summary>FAILED_PRECONDITION: an upload was finished with chunks missing.</summary>
    public const string BlobChunkMissing = "BLOB_CHUNK_MISSING";

    /// <summary>FAILED_PRECONDITION: the uploaded bytes do not hash to the announced SHA-256.</summary>
    public const string BlobHashMismatch = "BLOB_HASH_MISMATCH";

    /// <summary>PERMISSION_DENIED: ReadJobBlob by a device that does not run an open attempt of a job referencing the blob.</summary>
    public const string BlobAccessDenied = "BLOB_ACCESS_DENIED";

    /// <summary>INVALID_ARGUMENT: a submitted envelope references a stored blob (<c>meshai-blob:</c>) whose digest or size disagrees with the blob's own fields.</summary>
    public const string BlobReferenceInvalid = "BLOB_REFERENCE_INVALID";

    /// <summary>Resource types NOT_FOUND names (its reasons are derived from these).</summary>
    public static readonly IReadOnlyList<string> ResourceTypes =
    [
        "network", "member", "invite", "device", "device_login", "device_pairing", "session", "api_key", "job", "model_manifest", "blob", "blob_upload",
    ];

    /// <summary>Resource types ALREADY_EXISTS names (a client picks their names).</summary>
    public static readonly IReadOnlyList<string> NamedResourceTypes = ["model_manifest"];

    /// <summary>NOT_FOUND reason of a resource type: "model manifest" → MODEL_MANIFEST_NOT_FOUND.</summary>
    public static string NotFound(string resourceType) => Upper(resourceType) + "_NOT_FOUND";

    /// <summary>ALREADY_EXISTS reason of a resource type: "model manifest" → MODEL_MANIFEST_ALREADY_EXISTS.</summary>
    public static string AlreadyExists(string resourceType) => Upper(resourceType) + "_ALREADY_EXISTS";

    /// <summary>Every reason: the constants above plus the derived NOT_FOUND / ALREADY_EXISTS ones.</summary>
    public static IReadOnlySet<string> All { get; } = typeof(ErrorReasons).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral && f.FieldType == typeof(string))
        .Select(f => (string)f.GetRawConstantValue()!)
        .Concat(ResourceTypes.Select(NotFound))
        .Concat(NamedResourceTypes.Select(AlreadyExists))
        .ToHashSet(StringComparer.Ordinal);

    private static string Upper(string resourceType) =>
        string.Concat(resourceType.Trim().Select(c => char.IsAsciiLetterOrDigit(c) ? char.ToUpperInvariant(c) : '_'));
}

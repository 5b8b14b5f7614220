using System.Collections.Concurrent;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Core.Interceptors;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Security;

/// <summary>Who may call an RPC.</summary>
public enum RpcAccess
{
    /// <summary>Anyone (login starts, device registration by join token, pairing); rate-limited per peer.</summary>
    Public,

    /// <summary>A device, authenticated by its certificate inside the call (relay stream, RenewCertificate); rate-limited per peer.</summary>
    Device,

    /// <summary>Any signed-in user; no network involved.</summary>
    Session,

    /// <summary>Active guest, member or admin of the request's network.</summary>
    Guest,

    /// <summary>Active member or admin of the request's network (not guests).</summary>
    Member,

    /// <summary>Active admin of the request's network.</summary>
    Admin,

    /// <summary>Anyone, not rate-limited: read-only and constant-cost (the gRPC health service, polled by load balancers).</summary>
    Open,
}

/// <summary>One row of the authorisation table: the access level, the request field holding the network id, and the API-key scope that may call it (null: sessions only).</summary>
public sealed record RpcRule(RpcAccess Access, string NetworkField = "network_id", string? ApiKeyScope = null);

/// <summary>
/// The declarative authorisation table: every RPC the server maps, by full method name. Roles follow the spec
/// (network_model.roles): admins invite/remove members, set policies and credit rates, rotate keys and see all logs;
/// members add their own devices, run allowed workloads and see their usage; guests run restricted workloads with limited
/// visibility. An RPC missing here is refused (fail closed) and fails the matrix test.
/// </summary>
public static class RpcRules
{
    private const string Identity = "/meshai.identity.v1.IdentityService/";
    private const string Network = "/meshai.network.v1.NetworkService/";
    private const string Policy = "/meshai.network.v1.PolicyService/";
    private const string Device = "/meshai.device.v1.DeviceService/";
    private const string Job = "/meshai.job.v1.JobService/";
    private const string Blob = "/meshai.job.v1.BlobService/";
    private const string Ledger = "/meshai.ledger.v1.LedgerService/";
    private const string Model = "/meshai.model.v1.ModelService/";
    private const string Audit = "/meshai.audit.v1.AuditService/";
    private const string Relay = "/meshai.relay.v1.RelayService/";
    private const string WebRelay = "/meshai.relay.v1.WebRelayService/";

    /// <summary>Full method name → rule.</summary>
    public static readonly IReadOnlyDictionary<string, RpcRule> Table = new Dictionary<string, RpcRule>(StringComparer.Ordinal)
    {
        [Identity + "StartMagicLink"] = new(RpcAccess.Public),
        [Identity + "CompleteMagicLink"] = new(RpcAccess.Public),
        [Identity + "StartDeviceLogin"] = new(RpcAccess.Public),
        [Identity + "PollDeviceLogin"] = new(RpcAccess.Public),
        [Identity + "ApproveDeviceLogin"] = new(RpcAccess.Session),
        [Identity + "GetCurrentUser"] = new(RpcAccess.Session, ApiKeyScope: "*"),
        [Identity + "ListSessions"] = new(RpcAccess.Session),
        [Identity + "RevokeSession"] = new(RpcAccess.Session),
        [Identity + "CreateApiKey"] = new(RpcAccess.Member),
        [Identity + "ListApiKeys"] = new(RpcAccess.Guest),
        [Identity + "RevokeApiKey"] = new(RpcAccess.Session),
        [Identity + "BeginPasskeyRegistration"] = new(RpcAccess.Session),
        [Identity + "FinishPasskeyRegistration"] = new(RpcAccess.Session),
        [Identity + "BeginPasskeyLogin"] = new(RpcAccess.Public),
        [Identity + "FinishPasskeyLogin"] = new(RpcAccess.Public),
        [Identity + "StartOidcLogin"] = new(RpcAccess.Public),
        [Identity + "CompleteOidcLogin"] = new(RpcAccess.Public),
        [Identity + "GetSignInOptions"] = new(RpcAccess.Public),
        [Identity + "CreateSignInLink"] = new(RpcAccess.Session),

        [Network + "CreateNetwork"] = new(RpcAccess.Session),
        [Network + "GetNetwork"] = new(RpcAccess.Guest, ApiKeyScope: "*"),
        [Network + "ListNetworks"] = new(RpcAccess.Session),
        [Network + "UpdateNetworkSettings"] = new(RpcAccess.Admin),
        [Network + "ListMembers"] = new(RpcAccess.Member),
        [Network + "InviteMember"] = new(RpcAccess.Admin),
        [Network + "ListInvites"] = new(RpcAccess.Admin),
        [Network + "AcceptInvite"] = new(RpcAccess.Session),
        [Network + "ApproveMember"] = new(RpcAccess.Admin),
        [Network + "UpdateMemberRole"] = new(RpcAccess.Admin),
        [Network + "RemoveMember"] = new(RpcAccess.Admin),
        [Network + "RotateNetworkKeys"] = new(RpcAccess.Admin),
        [Network + "WatchNetwork"] = new(RpcAccess.Member),

        [Policy + "GetPolicy"] = new(RpcAccess.Member),
        [Policy + "UpdatePolicy"] = new(RpcAccess.Admin, "policy.network_id"),
        [Policy + "EvaluatePolicy"] = new(RpcAccess.Member),

        [Device + "CreateJoinToken"] = new(RpcAccess.Member),
        [Device + "RegisterDevice"] = new(RpcAccess.Public),
        [Device + "StartDevicePairing"] = new(RpcAccess.Public),
        [Device + "ApproveDevicePairing"] = new(RpcAccess.Member),
        [Device + "PollDevicePairing"] = new(RpcAccess.Public),
        [Device + "GetDevice"] = new(RpcAccess.Member, ApiKeyScope: "devices:read"),
        [Device + "ListDevices"] = new(RpcAccess.Member, ApiKeyScope: "devices:read"),
        [Device + "UpdateDevice"] = new(RpcAccess.Member),
        [Device + "RevokeDevice"] = new(RpcAccess.Member),
        [Device + "RenewCertificate"] = new(RpcAccess.Device),

        [Job + "PlanJob"] = new(RpcAccess.Guest, "envelope.network_id", "jobs"),
        [Job + "EstimateJob"] = new(RpcAccess.Guest, "envelope.network_id", "jobs"),
        [Job + "SubmitJob"] = new(RpcAccess.Guest, "envelope.network_id", "jobs"),
        [Job + "WatchJob"] = new(RpcAccess.Guest, ApiKeyScope: "jobs"),
        [Job + "GetJob"] = new(RpcAccess.Guest, ApiKeyScope: "jobs"),
        [Job + "ListJobs"] = new(RpcAccess.Member, ApiKeyScope: "jobs"),
        [Job + "CancelJob"] = new(RpcAccess.Guest, ApiKeyScope: "jobs"),
        [Job + "ExplainJob"] = new(RpcAccess.Member, ApiKeyScope: "jobs"),
        [Job + "RunJob"] = new(RpcAccess.Guest, "envelope.network_id", "jobs"),
        // Chunked blobs (docs/job-plane.md): whoever may submit a job may upload and read its blobs.
        [Blob + "StartBlobUpload"] = new(RpcAccess.Guest, ApiKeyScope: "jobs"),
        [Blob + "UploadBlobChunk"] = new(RpcAccess.Guest, ApiKeyScope: "jobs"),
        [Blob + "FinishBlobUpload"] = new(RpcAccess.Guest, ApiKeyScope: "jobs"),
        [Blob + "ReadBlob"] = new(RpcAccess.Guest, ApiKeyScope: "jobs"),
        // The placed device reads its job's input blobs: certificate + proof in the metadata, then its open attempt (JobBlobAccess).
        [Blob + "ReadJobBlob"] = new(RpcAccess.Device),

        [Ledger + "ListLedgerEvents"] = new(RpcAccess.Member, ApiKeyScope: "ledger:read"),
        [Ledger + "GetBalances"] = new(RpcAccess.Member, ApiKeyScope: "ledger:read"),
        [Ledger + "ExportLedger"] = new(RpcAccess.Admin),
        [Ledger + "ReconcileLedger"] = new(RpcAccess.Admin),
        [Ledger + "GetCreditRates"] = new(RpcAccess.Guest, ApiKeyScope: "ledger:read"),
        [Ledger + "UpdateCreditRates"] = new(RpcAccess.Admin),

        [Model + "ListModelManifests"] = new(RpcAccess.Guest),
        [Model + "GetModelManifest"] = new(RpcAccess.Guest),
        [Model + "PublishModelManifest"] = new(RpcAccess.Admin, "details.network_id"),

        [Audit + "ListAuditEvents"] = new(RpcAccess.Admin),
        [Audit + "ExportAuditEvents"] = new(RpcAccess.Admin),

        [Relay + "Connect"] = new(RpcAccess.Device),

        // Browser devices: the stream authenticates like Connect (certificate + signed challenge); the unary calls carry
        // the id of a live, authenticated stream (WebRelaySessions), a 256-bit secret only its holder knows.
        [WebRelay + "OpenSession"] = new(RpcAccess.Device),
        [WebRelay + "AnswerChallenge"] = new(RpcAccess.Device),
        [WebRelay + "SendHeartbeat"] = new(RpcAccess.Device),
        [WebRelay + "AcceptJob"] = new(RpcAccess.Device),
        [WebRelay + "DeclineJob"] = new(RpcAccess.Device),
        [WebRelay + "ReportProgress"] = new(RpcAccess.Device),
        [WebRelay + "ReportResult"] = new(RpcAccess.Device),
        [WebRelay + "ReportFailure"] = new(RpcAccess.Device),
        [WebRelay + "GetDeviceStatus"] = new(RpcAccess.Device),

        ["/grpc.health.v1.Health/Check"] = new(RpcAccess.Open),
        ["/grpc.health.v1.Health/Watch"] = new(RpcAccess.Open),
        ["/grpc.health.v1.Health/List"] = new(RpcAccess.Open),
    };

    /// <summary>
    /// The HTTP endpoints that act for a network, under the same rules (docs/gateway.md, docs/observability.md): the
    /// OpenAI-compatible gateway runs jobs exactly as SubmitJob does (guests included, API keys need "jobs"); a network's
    /// own metrics are for its admins (API keys need "metrics:read").
    /// </summary>
    public static readonly IReadOnlyDictionary<string, RpcRule> HttpTable = new Dictionary<string, RpcRule>(StringComparer.Ordinal)
    {
        ["POST /v1/embeddings"] = new(RpcAccess.Guest, ApiKeyScope: "jobs"),
        ["POST /v1/chat/completions"] = new(RpcAccess.Guest, ApiKeyScope: "jobs"),
        ["GET /v1/models"] = new(RpcAccess.Guest, ApiKeyScope: "jobs"),
        ["GET /metrics/networks/{network_id}"] = new(RpcAccess.Admin, ApiKeyScope: "metrics:read"),
    };

    /// <summary>Reads the network id at a dotted field path of a request ("envelope.network_id"); empty when absent.</summary>
    public static string NetworkIdOf(IMessage? request, string path)
    {
        var message = request;
        var parts = path.Split('.');
        for (var i = 0; message is not null && i < parts.Length; i++)
        {
            var field = message.Descriptor.FindFieldByName(parts[i]);
            if (field is null)
            {
                return "";
            }

            var value = field.Accessor.GetValue(message);
            if (i == parts.Length - 1)
            {
                return field.FieldType == FieldType.String ? value as string ?? "" : "";
            }

            message = value as IMessage;
        }

        return "";
    }
}

/// <summary>
/// The one authorisation layer: every gRPC call passes through here before its service runs. Looks the method up in
/// <see cref="RpcRules.Table"/> (unknown methods are refused), authenticates sessions and API keys, checks network
/// membership and role (non-members get NOT_FOUND so a network's existence is never revealed), API-key network and scope,
/// and applies rate limits to the unauthenticated auth and device endpoints.
/// </summary>
public sealed class AuthorizationInterceptor(SessionAuthenticator auth, CallAuthorizer authorizer, RateLimits limits) : Interceptor
{
    /// <inheritdoc />
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        await AuthorizeAsync(request as IMessage, context);
        return await continuation(request, context);
    }

    /// <inheritdoc />
    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        await AuthorizeAsync(request as IMessage, context);
        await continuation(request, responseStream, context);
    }

    /// <inheritdoc />
    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        await AuthorizeAsync(null, context);
        return await continuation(requestStream, context);
    }

    /// <inheritdoc />
    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        await AuthorizeAsync(null, context);
        await continuation(requestStream, responseStream, context);
    }

    private async Task AuthorizeAsync(IMessage? request, ServerCallContext context)
    {
        AuditLog.RemoteAddress = context.Peer;
        if (!RpcRules.Table.TryGetValue(context.Method, out var rule))
        {
            throw RpcErrors.PermissionDenied($"{context.Method} has no authorisation rule", ErrorReasons.NoAuthorizationRule);
        }

        switch (rule.Access)
        {
            case RpcAccess.Open:
                return;
            case RpcAccess.Public:
                await limits.CheckAsync("auth:" + context.Peer, limits.AuthPerMinute, context.CancellationToken);
                return;
            case RpcAccess.Device:
                await limits.CheckAsync("device:" + context.Peer, limits.DevicePerMinute, context.CancellationToken);
                return;
        }

        // Devices read their network's model manifests with a certificate + proof; ModelApi verifies both itself.
        if (context.Method.StartsWith("/meshai.model.v1.ModelService/", StringComparison.Ordinal) && rule.Access == RpcAccess.Guest &&
            context.RequestHeaders.Get(MeshAI.Common.Crypto.ModelManifests.DeviceCertificateHeader) is not null)
        {
            await limits.CheckAsync("device:" + context.Peer, limits.DevicePerMinute, context.CancellationToken);
            return;
        }

        var caller = await auth.RequireAsync(context);
        await authorizer.AuthorizeAsync(rule, context.Method, caller, RpcRules.NetworkIdOf(request, rule.NetworkField), context.CancellationToken);
    }
}

/// <summary>
/// What a rule demands of an authenticated caller, in one place for the gRPC interceptor and the HTTP endpoints (gateway,
/// per-network metrics): the API key's scope, membership of the network (NOT_FOUND otherwise, so existence is never
/// revealed; an API key sees only its own network) and the role.
/// </summary>
public sealed class CallAuthorizer(NetworkAccess access)
{
    /// <summary>Checks <paramref name="caller"/> against <paramref name="rule"/> for <paramref name="networkId"/>; returns the membership (null for session-level rules).</summary>
    public async Task<Membership?> AuthorizeAsync(RpcRule rule, string what, Caller caller, string networkId, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(rule);
        ArgumentNullException.ThrowIfNull(caller);
        if (caller.IsApiKey && rule.ApiKeyScope is not "*" && (rule.ApiKeyScope is null || !(caller.Scopes ?? []).Contains(rule.ApiKeyScope, StringComparer.Ordinal)))
        {
            throw RpcErrors.PermissionDenied(rule.ApiKeyScope is null
                ? $"API keys cannot call {what}; use a session"
                : $"this API key lacks the '{rule.ApiKeyScope}' scope", rule.ApiKeyScope is null ? ErrorReasons.SessionOnly : ErrorReasons.ApiKeyScopeMissing);
        }

        if (rule.Access is RpcAccess.Session or RpcAccess.Open or RpcAccess.Public)
        {
            return null;
        }

        var membership = await access.RequireMemberCachedAsync(caller, networkId, ct);
        if (rule.Access == RpcAccess.Admin && membership.Role != Role.Admin)
        {
            throw RpcErrors.PermissionDenied($"only admins can call {what}", ErrorReasons.AdminRequired);
        }

        if (rule.Access == RpcAccess.Member && membership.Role is not (Role.Admin or Role.Member))
        {
            throw RpcErrors.PermissionDenied($"guests cannot call {what}", ErrorReasons.MemberRequired);
        }

        return membership;
    }
}

/// <summary>
/// Fixed-window rate limits (per minute) for unauthenticated auth endpoints and device endpoints, keyed by peer. The
/// counters live on the bus (Redis in scale-out), so every control instance behind the front door counts the same window.
/// </summary>
public sealed class RateLimits(IOptions<SecurityOptions> options, TimeProvider clock, MeshAI.Common.Bus.IMeshBus bus, MeshAI.Common.Bus.BusNames names)
{
    /// <summary>Auth calls allowed per peer per minute.</summary>
    public int AuthPerMinute => options.Value.AuthCallsPerMinutePerPeer;

    /// <summary>Device calls allowed per peer per minute.</summary>
    public int DevicePerMinute => options.Value.DeviceCallsPerMinute;

    /// <summary>Counts a call; RESOURCE_EXHAUSTED when <paramref name="key"/> went over <paramref name="perMinute"/> this minute.</summary>
    public async Task CheckAsync(string key, int perMinute, CancellationToken cancellationToken)
    {
        var minute = clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        var count = await bus.IncrementAsync(names.Rate(StripPort(key) + ":" + minute.ToString(System.Globalization.CultureInfo.InvariantCulture)), TimeSpan.FromMinutes(2), cancellationToken);
        if (count > perMinute)
        {
            throw RpcErrors.ResourceExhausted(key, $"too many requests; at most {perMinute} per minute");
        }
    }

    // "ipv4:127.0.0.1:53211" → "ipv4:127.0.0.1": a client's ports change per connection.
    private static string StripPort(string key)
    {
        var colon = key.LastIndexOf(':');
        return colon > key.IndexOf(':', StringComparison.Ordinal) + 1 && key[(colon + 1)..].All(char.IsAsciiDigit) ? key[..colon] : key;
    }
}

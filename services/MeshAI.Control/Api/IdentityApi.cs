using Grpc.Core;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Control.Identity;

namespace MeshAI.Control.Api;

/// <summary>meshai.identity.v1.IdentityService: magic links, device-code login, passkeys, OIDC, sessions, API keys.</summary>
public sealed class IdentityApi(
    LoginFlows logins,
    SessionAuthenticator auth,
    ApiKeys apiKeys,
    MeshAI.Control.Security.AuditLog audit,
    PasskeyCeremonies passkeys,
    OidcLogin oidc,
    ServerEndpoint endpoint,
    Microsoft.Extensions.Options.IOptions<ControlPlaneOptions> options,
    Microsoft.Extensions.Options.IOptions<OidcOptions> oidcOptions) : IdentityService.IdentityServiceBase
{
    /// <inheritdoc />
    public override Task<GetSignInOptionsResponse> GetSignInOptions(GetSignInOptionsRequest request, ServerCallContext context)
    {
        var (rpId, origins) = passkeys.RelyingParty();
        return Task.FromResult(new GetSignInOptionsResponse
        {
            MagicLinkDelivery = string.IsNullOrWhiteSpace(options.Value.Smtp.Host) ? MagicLinkDelivery.Outbox : MagicLinkDelivery.Smtp,
            OidcEnabled = oidcOptions.Value.IsConfigured,
            PasskeyRpId = rpId,
            PasskeyOrigins = { origins.Order(StringComparer.Ordinal) },
            PublicUrl = endpoint.PublicUrl,
        });
    }

    /// <inheritdoc />
    public override async Task<CreateSignInLinkResponse> CreateSignInLink(CreateSignInLinkRequest request, ServerCallContext context)
    {
        var (link, expires) = await logins.CreateSignInLinkAsync(await auth.RequireAsync(context), request.NextPath, context.CancellationToken);
        return new CreateSignInLinkResponse { SignInLink = link, ExpireTime = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(expires) };
    }

    /// <inheritdoc />
    public override Task<StartOidcLoginResponse> StartOidcLogin(StartOidcLoginRequest request, ServerCallContext context) =>
        oidc.StartAsync(request.RedirectUri, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<CompleteOidcLoginResponse> CompleteOidcLogin(CompleteOidcLoginRequest request, ServerCallContext context)
    {
        var issued = await oidc.CompleteAsync(request.State, request.Code, request.ClientName, context.CancellationToken);
        return new CompleteOidcLoginResponse { User = issued.User, SessionToken = issued.Token, Session = issued.Session };
    }

    /// <inheritdoc />
    public override async Task<BeginPasskeyRegistrationResponse> BeginPasskeyRegistration(BeginPasskeyRegistrationRequest request, ServerCallContext context) =>
        await passkeys.BeginRegistrationAsync(await auth.RequireAsync(context), request.PasskeyName, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<FinishPasskeyRegistrationResponse> FinishPasskeyRegistration(FinishPasskeyRegistrationRequest request, ServerCallContext context) =>
        new() { Passkey = await passkeys.FinishRegistrationAsync(await auth.RequireAsync(context), request.CeremonyId, request.AttestationJson, context.CancellationToken) };

    /// <inheritdoc />
    public override Task<BeginPasskeyLoginResponse> BeginPasskeyLogin(BeginPasskeyLoginRequest request, ServerCallContext context) =>
        passkeys.BeginLoginAsync(request.Email, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<FinishPasskeyLoginResponse> FinishPasskeyLogin(FinishPasskeyLoginRequest request, ServerCallContext context)
    {
        var issued = await passkeys.FinishLoginAsync(request.CeremonyId, request.AssertionJson, request.ClientName, context.CancellationToken);
        return new FinishPasskeyLoginResponse { User = issued.User, SessionToken = issued.Token, Session = issued.Session };
    }

    /// <inheritdoc />
    public override async Task<StartMagicLinkResponse> StartMagicLink(StartMagicLinkRequest request, ServerCallContext context) =>
        new() { ExpireTime = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(await logins.StartMagicLinkAsync(request.Email, context.CancellationToken)) };

    /// <inheritdoc />
    public override async Task<CompleteMagicLinkResponse> CompleteMagicLink(CompleteMagicLinkRequest request, ServerCallContext context)
    {
        var issued = await logins.CompleteMagicLinkAsync(request.Token, request.ClientName, context.CancellationToken);
        await audit.RecordAsync("", issued.User.UserId, MeshAI.Contracts.Audit.V1.AuditAction.Login, issued.Session.SessionId,
            new Dictionary<string, string> { ["method"] = "magic_link", ["client_name"] = request.ClientName ?? "" }, context.CancellationToken);
        return new CompleteMagicLinkResponse { User = issued.User, SessionToken = issued.Token, Session = issued.Session };
    }

    /// <inheritdoc />
    public override Task<StartDeviceLoginResponse> StartDeviceLogin(StartDeviceLoginRequest request, ServerCallContext context) =>
        logins.StartDeviceLoginAsync(request.Email, request.ClientName, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<PollDeviceLoginResponse> PollDeviceLogin(PollDeviceLoginRequest request, ServerCallContext context)
    {
        var response = await logins.PollDeviceLoginAsync(request.DeviceCode, context.CancellationToken);
        if (!string.IsNullOrEmpty(response.SessionToken) && response.User is not null)
        {
            await audit.RecordAsync("", response.User.UserId, MeshAI.Contracts.Audit.V1.AuditAction.Login, "",
                new Dictionary<string, string> { ["method"] = "device_code" }, context.CancellationToken);
        }

        return response;
    }

    /// <inheritdoc />
    public override async Task<ApproveDeviceLoginResponse> ApproveDeviceLogin(ApproveDeviceLoginRequest request, ServerCallContext context)
    {
        await logins.ApproveDeviceLoginAsync(await auth.RequireAsync(context), request.UserCode, context.CancellationToken);
        return new ApproveDeviceLoginResponse();
    }

    /// <inheritdoc />
    public override async Task<GetCurrentUserResponse> GetCurrentUser(GetCurrentUserRequest request, ServerCallContext context) =>
        new() { User = await logins.GetUserAsync(await auth.RequireAsync(context), context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<ListSessionsResponse> ListSessions(ListSessionsRequest request, ServerCallContext context) =>
        new() { Sessions = { await logins.ListSessionsAsync(await auth.RequireAsync(context), context.CancellationToken) } };

    /// <inheritdoc />
    public override async Task<RevokeSessionResponse> RevokeSession(RevokeSessionRequest request, ServerCallContext context)
    {
        await logins.RevokeSessionAsync(await auth.RequireAsync(context), request.SessionId, context.CancellationToken);
        return new RevokeSessionResponse();
    }
    /// <inheritdoc />
    public override async Task<CreateApiKeyResponse> CreateApiKey(CreateApiKeyRequest request, ServerCallContext context) =>
        await apiKeys.CreateAsync(await auth.RequireAsync(context), request, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<ListApiKeysResponse> ListApiKeys(ListApiKeysRequest request, ServerCallContext context) =>
        new() { ApiKeys = { await apiKeys.ListAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken) } };

    /// <inheritdoc />
    public override async Task<RevokeApiKeyResponse> RevokeApiKey(RevokeApiKeyRequest request, ServerCallContext context)
    {
        await apiKeys.RevokeAsync(await auth.RequireAsync(context), request.ApiKeyId, context.CancellationToken);
        return new RevokeApiKeyResponse();
    }
}

using Grpc.Core;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Control.Identity;

namespace MeshAI.Control.Api;

/// <summary>meshai.identity.v1.IdentityService: magic links, device-code login, sessions. Passkeys, OIDC and API keys arrive with the security issue (UNIMPLEMENTED).</summary>
public sealed class IdentityApi(LoginFlows logins, SessionAuthenticator auth) : IdentityService.IdentityServiceBase
{
    /// <inheritdoc />
    public override async Task<StartMagicLinkResponse> StartMagicLink(StartMagicLinkRequest request, ServerCallContext context) =>
        new() { ExpireTime = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(await logins.StartMagicLinkAsync(request.Email, context.CancellationToken)) };

    /// <inheritdoc />
    public override async Task<CompleteMagicLinkResponse> CompleteMagicLink(CompleteMagicLinkRequest request, ServerCallContext context)
    {
        var issued = await logins.CompleteMagicLinkAsync(request.Token, request.ClientName, context.CancellationToken);
        return new CompleteMagicLinkResponse { User = issued.User, SessionToken = issued.Token, Session = issued.Session };
    }

    /// <inheritdoc />
    public override Task<StartDeviceLoginResponse> StartDeviceLogin(StartDeviceLoginRequest request, ServerCallContext context) =>
        logins.StartDeviceLoginAsync(request.Email, request.ClientName, context.CancellationToken);

    /// <inheritdoc />
    public override Task<PollDeviceLoginResponse> PollDeviceLogin(PollDeviceLoginRequest request, ServerCallContext context) =>
        logins.PollDeviceLoginAsync(request.DeviceCode, context.CancellationToken);

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
}

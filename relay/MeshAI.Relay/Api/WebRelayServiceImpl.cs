using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Relay.Core;

namespace MeshAI.Relay.Api;

/// <summary>
/// The gRPC-Web door for browser devices: OpenSession is served by <see cref="WebRelaySessions"/> over the relay core;
/// every unary call hands its frame (the same message a native agent writes on Connect) to the session's stream.
/// </summary>
public sealed class WebRelayServiceImpl(WebRelaySessions sessions, IDeviceStatusSource status) : WebRelayService.WebRelayServiceBase
{
    /// <inheritdoc />
    public override Task OpenSession(OpenSessionRequest request, IServerStreamWriter<OpenSessionResponse> responseStream, ServerCallContext context) =>
        sessions.ServeAsync(request, responseStream, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<AnswerChallengeResponse> AnswerChallenge(AnswerChallengeRequest request, ServerCallContext context)
    {
        await Send(request.SessionId, () => new ConnectRequest { ChallengeAnswer = Required(request.Answer, "answer") }, context);
        return new AnswerChallengeResponse();
    }

    /// <inheritdoc />
    public override async Task<SendHeartbeatResponse> SendHeartbeat(SendHeartbeatRequest request, ServerCallContext context)
    {
        await Send(request.SessionId, () => new ConnectRequest { Heartbeat = Required(request.Heartbeat, "heartbeat") }, context);
        return new SendHeartbeatResponse();
    }

    /// <inheritdoc />
    public override async Task<AcceptJobResponse> AcceptJob(AcceptJobRequest request, ServerCallContext context)
    {
        await Send(request.SessionId, () => new ConnectRequest { JobAccept = Required(request.Accept, "accept"), Sequence = request.Sequence }, context);
        return new AcceptJobResponse();
    }

    /// <inheritdoc />
    public override async Task<DeclineJobResponse> DeclineJob(DeclineJobRequest request, ServerCallContext context)
    {
        await Send(request.SessionId, () => new ConnectRequest { JobDecline = Required(request.Decline, "decline"), Sequence = request.Sequence }, context);
        return new DeclineJobResponse();
    }

    /// <inheritdoc />
    public override async Task<ReportProgressResponse> ReportProgress(ReportProgressRequest request, ServerCallContext context)
    {
        await Send(request.SessionId, () => new ConnectRequest { JobProgress = Required(request.Progress, "progress") }, context);
        return new ReportProgressResponse();
    }

    /// <inheritdoc />
    public override async Task<ReportResultResponse> ReportResult(ReportResultRequest request, ServerCallContext context)
    {
        await Send(request.SessionId, () => new ConnectRequest { JobResult = Required(request.Result, "result"), Sequence = request.Sequence }, context);
        return new ReportResultResponse();
    }

    /// <inheritdoc />
    public override async Task<ReportFailureResponse> ReportFailure(ReportFailureRequest request, ServerCallContext context)
    {
        await Send(request.SessionId, () => new ConnectRequest { JobFailure = Required(request.Failure, "failure"), Sequence = request.Sequence }, context);
        return new ReportFailureResponse();
    }

    /// <inheritdoc />
    public override Task<GetDeviceStatusResponse> GetDeviceStatus(GetDeviceStatusRequest request, ServerCallContext context) =>
        status.GetStatusAsync(sessions.AuthenticatedDevice(request.SessionId), context.CancellationToken);

    // The session id is the call's credential: checked before the frame (and its required fields) is looked at.
    private Task Send(string sessionId, Func<ConnectRequest> frame, ServerCallContext context)
    {
        sessions.RequireLive(sessionId);
        return sessions.SendAsync(sessionId, frame(), context.CancellationToken);
    }

    private static T Required<T>(T? value, string field)
        where T : class =>
        value ?? throw RpcErrors.InvalidArgument(field, "required");
}

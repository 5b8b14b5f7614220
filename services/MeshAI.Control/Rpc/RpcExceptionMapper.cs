using System.Diagnostics;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Rpc;

/// <summary>
/// Turns whatever escaped a service into the status the client gets: always a specific code with a google.rpc ErrorInfo
/// (reason from <see cref="ErrorReasons"/>), never UNKNOWN, never internals. Domain errors (RpcException with rich details)
/// pass through; bare RpcExceptions (grpc's own, a base class's UNIMPLEMENTED) get their ErrorInfo; cancellation becomes
/// CANCELLED or DEADLINE_EXCEEDED; store failures become ABORTED (concurrent write) or UNAVAILABLE (busy, unreachable);
/// anything else is INTERNAL with a trace id, and its stack trace goes to the log only.
/// </summary>
public sealed partial class RpcExceptionMapper(ILogger<RpcExceptionMapper> logger, TimeProvider clock)
{
    /// <summary>The exception to throw to the client for <paramref name="exception"/> thrown while serving <paramref name="context"/>.</summary>
    public RpcException Map(Exception exception, ServerCallContext? context)
    {
        ArgumentNullException.ThrowIfNull(exception);
        switch (exception)
        {
            case RpcException rpc:
                return WithErrorInfo(rpc);
            case OperationCanceledException when context?.CancellationToken.IsCancellationRequested == true:
                return Cancelled(context);
            case OperationCanceledException:
                return RpcErrors.Unavailable("the server is shutting down or stopped this call; retry", ErrorReasons.ServiceUnavailable);
            case IOException when context?.CancellationToken.IsCancellationRequested == true:
                return Cancelled(context);
        }

        switch (StoreErrors.Classify(exception))
        {
            case StoreFailure.UniqueViolation:
            case StoreFailure.Conflict:
                LogStoreFailure(logger, context?.Method ?? "", exception.GetType().Name, exception.Message);
                return RpcErrors.Aborted("a concurrent change to the same data won; read again and retry");
            case StoreFailure.Unavailable:
                LogStoreFailure(logger, context?.Method ?? "", exception.GetType().Name, exception.Message);
                return RpcErrors.Unavailable("the store is busy or unreachable; retry with backoff", ErrorReasons.StoreUnavailable);
        }

        var trace = TraceId(context);
        LogInternal(logger, exception, context?.Method ?? "", trace);
        return RpcErrors.Create(StatusCode.Internal, $"internal error (trace {trace}); the server log has the details", ErrorReasons.InternalError,
            new DebugInfo { Detail = "trace " + trace });
    }

    private RpcException Cancelled(ServerCallContext context) =>
        context.Deadline != DateTime.MaxValue && context.Deadline <= clock.GetUtcNow().UtcDateTime
            ? RpcErrors.Create(StatusCode.DeadlineExceeded, "the call's deadline passed", ErrorReasons.DeadlineExceeded)
            : RpcErrors.Create(StatusCode.Cancelled, "the call was cancelled", ErrorReasons.RequestCancelled);

    /// <summary>The exception itself when it carries an ErrorInfo (and is not UNKNOWN); otherwise the same status with one added.</summary>
    public static RpcException WithErrorInfo(RpcException rpc)
    {
        ArgumentNullException.ThrowIfNull(rpc);
        var status = rpc.GetRpcStatus();
        var hasInfo = status?.GetDetail<ErrorInfo>() is not null;
        if (hasInfo && rpc.StatusCode != StatusCode.Unknown)
        {
            return rpc;
        }

        var code = rpc.StatusCode is StatusCode.Unknown or StatusCode.OK ? StatusCode.Internal : rpc.StatusCode;
        var message = string.IsNullOrEmpty(rpc.Status.Detail) ? code.ToString() : rpc.Status.Detail;
        var details = status?.Details.Where(d => !d.Is(ErrorInfo.Descriptor)).Select(Unpack).ToArray() ?? [];
        return RpcErrors.Create(code, message, ReasonFor(code, message), details);
    }

    /// <summary>The reason of a bare status: what grpc and the generated bases raise without details.</summary>
    public static string ReasonFor(StatusCode code, string message) => code switch
    {
        StatusCode.ResourceExhausted when (message ?? "").Contains("message size", StringComparison.OrdinalIgnoreCase) => ErrorReasons.MessageTooLarge,
        StatusCode.ResourceExhausted => ErrorReasons.RateLimited,
        StatusCode.Cancelled => ErrorReasons.RequestCancelled,
        StatusCode.DeadlineExceeded => ErrorReasons.DeadlineExceeded,
        StatusCode.Unavailable => ErrorReasons.ServiceUnavailable,
        StatusCode.Aborted => ErrorReasons.ConcurrentUpdate,
        StatusCode.Unauthenticated => ErrorReasons.AuthenticationFailed,
        StatusCode.PermissionDenied => ErrorReasons.PermissionDenied,
        StatusCode.InvalidArgument => ErrorReasons.FieldInvalid,
        StatusCode.Unimplemented => ErrorReasons.MethodNotImplemented,
        _ => ErrorReasons.InternalError,
    };

    private static Google.Protobuf.IMessage Unpack(Any any) =>
        any.TryUnpack<BadRequest>(out var bad) ? bad
        : any.TryUnpack<PreconditionFailure>(out var pre) ? pre
        : any.TryUnpack<QuotaFailure>(out var quota) ? quota
        : any.TryUnpack<ResourceInfo>(out var resource) ? resource
        : any.TryUnpack<RetryInfo>(out var retry) ? retry
        : new DebugInfo { Detail = "detail of type " + any.TypeUrl };

    private static string TraceId(ServerCallContext? context)
    {
        var activity = Activity.Current?.TraceId.ToString();
        if (!string.IsNullOrEmpty(activity) && activity != "00000000000000000000000000000000")
        {
            return activity;
        }

        try
        {
            return context?.GetHttpContext().TraceIdentifier ?? Guid.NewGuid().ToString("N");
        }
        catch (InvalidOperationException)
        {
            return Guid.NewGuid().ToString("N");
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Unhandled exception in {Method} (trace {TraceId}); the client got INTERNAL")]
    private static partial void LogInternal(ILogger logger, Exception exception, string method, string traceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Store failure in {Method}: {ExceptionType}: {Message}")]
    private static partial void LogStoreFailure(ILogger logger, string method, string exceptionType, string message);
}

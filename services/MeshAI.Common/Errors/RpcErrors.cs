using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;

namespace MeshAI.Common.Errors;

/// <summary>gRPC errors with google.rpc rich details; every domain error goes through here.</summary>
public static class RpcErrors
{
    /// <summary>The ErrorInfo domain of MeshAI errors.</summary>
    public const string Domain = "meshai.net";

    /// <summary>INVALID_ARGUMENT with a BadRequest field violation; <paramref name="reason"/> is one of <see cref="ErrorReasons"/>.</summary>
    public static RpcException InvalidArgument(string field, string description, string reason = ErrorReasons.FieldInvalid) =>
        Build(Code.InvalidArgument, $"{field}: {description}", reason,
            new BadRequest { FieldViolations = { new BadRequest.Types.FieldViolation { Field = field, Description = description } } });

    /// <summary>INVALID_ARGUMENT (FIELD_REQUIRED): <paramref name="field"/> is empty.</summary>
    public static RpcException Required(string field) => InvalidArgument(field, "required", ErrorReasons.FieldRequired);

    /// <summary>NOT_FOUND with ResourceInfo; the reason is derived from the type ("job" → JOB_NOT_FOUND).</summary>
    public static RpcException NotFound(string resourceType, string name) =>
        Build(Code.NotFound, $"{resourceType} '{name}' not found", ErrorReasons.NotFound(resourceType),
            new ResourceInfo { ResourceType = resourceType, ResourceName = name, Description = "does not exist or is not visible to the caller" });

    /// <summary>FAILED_PRECONDITION with a PreconditionFailure violation of <paramref name="type"/>; the reason defaults to the type.</summary>
    public static RpcException FailedPrecondition(string type, string subject, string description, string? reason = null) =>
        Build(Code.FailedPrecondition, description, reason ?? type,
            new PreconditionFailure { Violations = { new PreconditionFailure.Types.Violation { Type = type, Subject = subject, Description = description } } });

    /// <summary>UNAUTHENTICATED.</summary>
    public static RpcException Unauthenticated(string description, string reason = ErrorReasons.AuthenticationFailed) =>
        Build(Code.Unauthenticated, description, reason);

    /// <summary>PERMISSION_DENIED.</summary>
    public static RpcException PermissionDenied(string description, string reason = ErrorReasons.PermissionDenied) =>
        Build(Code.PermissionDenied, description, reason);

    /// <summary>RESOURCE_EXHAUSTED with QuotaFailure.</summary>
    public static RpcException ResourceExhausted(string subject, string description, string reason = ErrorReasons.RateLimited) =>
        Build(Code.ResourceExhausted, description, reason,
            new QuotaFailure { Violations = { new QuotaFailure.Types.Violation { Subject = subject, Description = description } } });

    /// <summary>UNAVAILABLE (retryable) with a RetryInfo hint.</summary>
    public static RpcException Unavailable(string description, string reason = ErrorReasons.ServiceUnavailable) =>
        Build(Code.Unavailable, description, reason, new RetryInfo { RetryDelay = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(250)) });

    /// <summary>ABORTED (CONCURRENT_UPDATE by default): a concurrent write won; the caller may retry.</summary>
    public static RpcException Aborted(string description, string reason = ErrorReasons.ConcurrentUpdate) =>
        Build(Code.Aborted, description, reason, new RetryInfo { RetryDelay = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(50)) });

    /// <summary>ALREADY_EXISTS; the reason is derived from the type ("model manifest" → MODEL_MANIFEST_ALREADY_EXISTS).</summary>
    public static RpcException AlreadyExists(string resourceType, string name) =>
        Build(Code.AlreadyExists, $"{resourceType} '{name}' already exists", ErrorReasons.AlreadyExists(resourceType),
            new ResourceInfo { ResourceType = resourceType, ResourceName = name });

    /// <summary>Any status code with a specific reason and optional details (the exception mapper's door).</summary>
    public static RpcException Create(StatusCode code, string description, string reason, params Google.Protobuf.IMessage[] details) =>
        Build((Code)(int)code, description, reason, details);

    private static RpcException Build(Code code, string message, string reason, params Google.Protobuf.IMessage[] details)
    {
        var status = new Google.Rpc.Status
        {
            Code = (int)code,
            Message = message,
            Details = { Any.Pack(new ErrorInfo { Reason = reason, Domain = Domain }) },
        };
        foreach (var detail in details)
        {
            status.Details.Add(Any.Pack(detail));
        }

        return status.ToRpcException();
    }

    /// <summary>The ErrorInfo.reason of an exception from the server, or null when it carries none.</summary>
    public static string? ReasonOf(RpcException ex) => ex?.GetRpcStatus()?.GetDetail<ErrorInfo>()?.Reason;

    /// <summary>One-line human description of an RpcException including its rich details (for CLIs and logs).</summary>
    public static string Describe(RpcException ex)
    {
        var status = ex.GetRpcStatus();
        var text = $"{ex.StatusCode}: {ex.Status.Detail}";
        if (status is null)
        {
            return text;
        }

        var bad = status.GetDetail<BadRequest>();
        if (bad is not null)
        {
            text += string.Concat(bad.FieldViolations.Select(v => $" [field {v.Field}: {v.Description}]"));
        }

        var pre = status.GetDetail<PreconditionFailure>();
        if (pre is not null)
        {
            text += string.Concat(pre.Violations.Select(v => $" [{v.Type} {v.Subject}]"));
        }

        return text;
    }
}

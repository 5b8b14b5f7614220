using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;

namespace MeshAI.Common.Errors;

/// <summary>gRPC errors with google.rpc rich details; every domain error goes through here.</summary>
public static class RpcErrors
{
    /// <summary>The ErrorInfo domain of MeshAI errors.</summary>
    public const string Domain = "meshai.net";

    /// <summary>INVALID_ARGUMENT with a BadRequest field violation.</summary>
    public static RpcException InvalidArgument(string field, string description) =>
        Build(Code.InvalidArgument, $"{field}: {description}", "INVALID_ARGUMENT",
            new BadRequest { FieldViolations = { new BadRequest.Types.FieldViolation { Field = field, Description = description } } });

    /// <summary>INVALID_ARGUMENT with a BadRequest field violation and a specific ErrorInfo reason (e.g. MODEL_NOT_AVAILABLE).</summary>
    public static RpcException InvalidArgument(string field, string description, string reason) =>
        Build(Code.InvalidArgument, $"{field}: {description}", reason,
            new BadRequest { FieldViolations = { new BadRequest.Types.FieldViolation { Field = field, Description = description } } });

    /// <summary>NOT_FOUND with ResourceInfo.</summary>
    public static RpcException NotFound(string resourceType, string name) =>
        Build(Code.NotFound, $"{resourceType} '{name}' not found", "NOT_FOUND",
            new ResourceInfo { ResourceType = resourceType, ResourceName = name, Description = "does not exist or is not visible to the caller" });

    /// <summary>FAILED_PRECONDITION with a PreconditionFailure violation.</summary>
    public static RpcException FailedPrecondition(string type, string subject, string description) =>
        Build(Code.FailedPrecondition, description, type,
            new PreconditionFailure { Violations = { new PreconditionFailure.Types.Violation { Type = type, Subject = subject, Description = description } } });

    /// <summary>UNAUTHENTICATED.</summary>
    public static RpcException Unauthenticated(string description) =>
        Build(Code.Unauthenticated, description, "UNAUTHENTICATED");

    /// <summary>PERMISSION_DENIED.</summary>
    public static RpcException PermissionDenied(string description) =>
        Build(Code.PermissionDenied, description, "PERMISSION_DENIED");

    /// <summary>RESOURCE_EXHAUSTED with QuotaFailure.</summary>
    public static RpcException ResourceExhausted(string subject, string description) =>
        Build(Code.ResourceExhausted, description, "RESOURCE_EXHAUSTED",
            new QuotaFailure { Violations = { new QuotaFailure.Types.Violation { Subject = subject, Description = description } } });

    /// <summary>UNAVAILABLE (retryable).</summary>
    public static RpcException Unavailable(string description) => Build(Code.Unavailable, description, "UNAVAILABLE");

    /// <summary>ALREADY_EXISTS.</summary>
    public static RpcException AlreadyExists(string resourceType, string name) =>
        Build(Code.AlreadyExists, $"{resourceType} '{name}' already exists", "ALREADY_EXISTS",
            new ResourceInfo { ResourceType = resourceType, ResourceName = name });

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

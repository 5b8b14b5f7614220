using System.Text.Json.Nodes;
using Google.Rpc;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Control.Gateway;

/// <summary>
/// An error in OpenAI's shape: <c>{"error": {"message", "type", "param", "code"}}</c> with the HTTP status OpenAI's client
/// libraries map to their error classes (400 BadRequest, 401 Authentication, 402, 403 PermissionDenied, 404 NotFound,
/// 413, 429 RateLimit, 5xx InternalServer/retried).
/// </summary>
public sealed class GatewayException(int status, string type, string code, string message, string? param = null) : Exception(message)
{
    /// <summary>HTTP status code.</summary>
    public int Status { get; } = status;

    /// <summary>OpenAI error type (invalid_request_error, authentication_error, insufficient_quota, rate_limit_error, server_error, …).</summary>
    public string Type { get; } = type;

    /// <summary>Machine-readable code (model_not_found, invalid_api_key, insufficient_credits, no_eligible_device, …).</summary>
    public string Code { get; } = code;

    /// <summary>The request field at fault, if any.</summary>
    public string? Param { get; } = param;

    /// <summary>Seconds a client should wait before retrying (429), if known.</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>The error body.</summary>
    public JsonObject ToJson() => GatewayErrors.Body(Message, Type, Code, Param);

    /// <summary>400 invalid_request_error for a request field.</summary>
    public static GatewayException Invalid(string param, string message, string code = "invalid_value") => new(400, "invalid_request_error", code, message, param);
}

/// <summary>Maps the domain's gRPC errors (status + google.rpc.ErrorInfo reason) and job outcomes to OpenAI-shaped HTTP errors.</summary>
public static class GatewayErrors
{
    /// <summary>An OpenAI error body.</summary>
    public static JsonObject Body(string message, string type, string code, string? param) => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = message,
            ["type"] = type,
            ["param"] = param,
            ["code"] = code,
        },
    };

    /// <summary>
    /// The HTTP error for a refusal of the job plane. Reasons are matched in both spellings the server has used
    /// (CREDITS / INSUFFICIENT_CREDITS, PLACEMENT / NO_ELIGIBLE_DEVICE, COST_CAP / JOB_COST_CAP_EXCEEDED).
    /// </summary>
    public static GatewayException FromRpc(RpcException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var status = exception.GetRpcStatus();
        var reason = status?.GetDetail<ErrorInfo>()?.Reason ?? "";
        var field = status?.GetDetail<BadRequest>()?.FieldViolations.FirstOrDefault()?.Field;
        var message = exception.Status.Detail;
        return exception.StatusCode switch
        {
            StatusCode.Unauthenticated => new(401, "authentication_error", "invalid_api_key", message),
            StatusCode.PermissionDenied => new(403, "permission_error", Code(reason, "permission_denied"), message),
            StatusCode.NotFound => new(404, "invalid_request_error", Code(reason, "not_found"), message),
            StatusCode.InvalidArgument when reason == Scheduling.ModelAvailability.ModelNotAvailable => new(404, "invalid_request_error", "model_not_found", WithoutField(message, field), "model"),
            StatusCode.InvalidArgument => new(400, "invalid_request_error", Code(reason, "invalid_value"), message, field),
            StatusCode.FailedPrecondition when reason is "CREDITS" or "INSUFFICIENT_CREDITS" => new(402, "insufficient_quota", "insufficient_credits", message),
            StatusCode.FailedPrecondition when reason is "COST_CAP" or "JOB_COST_CAP_EXCEEDED" => new(402, "insufficient_quota", "cost_cap_exceeded", message),
            StatusCode.FailedPrecondition when reason is "PLACEMENT" or "NO_ELIGIBLE_DEVICE" => new(503, "service_unavailable", "no_eligible_device", message),
            StatusCode.FailedPrecondition => new(400, "invalid_request_error", Code(reason, "failed_precondition"), message),
            StatusCode.ResourceExhausted => new(429, "rate_limit_error", Code(reason, "rate_limit_exceeded"), message) { RetryAfterSeconds = 60 - DateTimeOffset.UtcNow.Second },
            StatusCode.Unavailable => new(503, "service_unavailable", Code(reason, "unavailable"), message),
            StatusCode.DeadlineExceeded => new(504, "server_error", "timeout", message),
            StatusCode.Aborted => new(409, "invalid_request_error", Code(reason, "conflict"), message),
            _ => new(500, "server_error", Code(reason, "internal_error"), message),
        };
    }

    /// <summary>
    /// The HTTP error for a job that ended without a result: a workload that refused the input (another device would too)
    /// is the caller's 400; a job that ran out of devices or time is 503 (clients retry); a cost cap reached is 402.
    /// </summary>
    public static GatewayException FromJob(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var last = job.Attempts.Count == 0 ? null : job.Attempts.MaxBy(a => a.Attempt);
        var message = $"job {job.JobId} {(job.State == JobState.Cancelled ? "was cancelled" : "failed")}: {job.ErrorMessage}";
        if (job.Attempts.Any(a => a.Cause == AttemptCause.CostCap))
        {
            return new(402, "insufficient_quota", "cost_cap_reached", message);
        }

        return last?.Cause == AttemptCause.WorkloadError || job.ErrorMessage.StartsWith("workload failed", StringComparison.Ordinal)
            ? new(400, "invalid_request_error", "workload_error", message)
            : new(503, "service_unavailable", job.State == JobState.Cancelled ? "job_cancelled" : "job_failed", message);
    }

    // "envelope.resource_request.model: model 'x' is not …" → "model 'x' is not …": the client never sent an envelope.
    private static string WithoutField(string message, string? field) =>
        field is not null && message.StartsWith(field + ": ", StringComparison.Ordinal) ? message[(field.Length + 2)..] : message;

    // "API_KEY_SCOPE_MISSING" → "api_key_scope_missing"; generic reasons (a status's default reason in RpcErrors: FIELD_INVALID,
    // RATE_LIMITED, SERVICE_UNAVAILABLE, NETWORK_NOT_FOUND, …) fall back to the code OpenAI's clients know for the status.
    private static string Code(string reason, string fallback) =>
        reason.Length == 0 || reason is "INVALID_ARGUMENT" or "NOT_FOUND" or "PERMISSION_DENIED" or "RESOURCE_EXHAUSTED" or "UNAVAILABLE" or "INTERNAL"
            or ErrorReasons.FieldInvalid or ErrorReasons.RateLimited or ErrorReasons.ServiceUnavailable
            || (fallback == "not_found" && reason.EndsWith("_NOT_FOUND", StringComparison.Ordinal))
            ? fallback
            : reason.ToLowerInvariant();
}

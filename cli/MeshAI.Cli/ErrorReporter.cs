using System.Net.Sockets;
using System.Security.Authentication;
using Google.Rpc;
using Grpc.Core;
using MeshAI.Client;
using MeshAI.Common.Errors;

namespace MeshAI.Cli;

/// <summary>Turns any failure into one clear line on stderr and an exit code; never a stack trace.</summary>
public static class ErrorReporter
{
    /// <summary>Writes the message for <paramref name="exception"/> and returns the exit code.</summary>
    public static int Report(Exception exception, ServerTarget? target, TextWriter error) => Report(exception, target, error, null);

    /// <summary>
    /// Writes the message for <paramref name="exception"/> and returns the exit code; <paramref name="fieldLabel"/> names
    /// a BadRequest field the way the user typed it (a request path → "--text #2"), or returns null to keep the path.
    /// </summary>
    public static int Report(Exception exception, ServerTarget? target, TextWriter error, Func<string, string?>? fieldLabel)
    {
        ArgumentNullException.ThrowIfNull(error);
        var (message, code) = Describe(exception, target, fieldLabel);
        error.WriteLine("error: " + message);
        return code;
    }

    /// <summary>The one-line message and exit code for <paramref name="exception"/>.</summary>
    public static (string Message, int ExitCode) Describe(Exception exception, ServerTarget? target) => Describe(exception, target, null);

    /// <summary>The one-line message and exit code for <paramref name="exception"/>, naming fields through <paramref name="fieldLabel"/>.</summary>
    public static (string Message, int ExitCode) Describe(Exception exception, ServerTarget? target, Func<string, string?>? fieldLabel)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var server = string.IsNullOrEmpty(target?.ServerUrl) ? "the server" : target.ServerUrl;
        switch (exception)
        {
            case CliException cli:
                return (cli.Message, cli.ExitCode);
            case MeshJobException job:
                return (job.Message, ExitCodes.Failure);
            case OperationCanceledException:
                return ("Cancelled.", ExitCodes.Cancelled);
            case RpcException rpc when rpc.StatusCode == StatusCode.Cancelled && rpc.Status.DebugException is null:
                return ("Cancelled.", ExitCodes.Cancelled);
        }

        var transport = exception is RpcException r ? r.Status.DebugException : exception;
        if (transport is not null && DescribeTransport(transport, server, target?.Fingerprint) is { } transportMessage)
        {
            return (transportMessage, ExitCodes.Failure);
        }

        if (exception is RpcException rpcException)
        {
            var text = DescribeRpc(rpcException, fieldLabel);
            if (rpcException.StatusCode == StatusCode.Unauthenticated)
            {
                var pin = string.IsNullOrEmpty(target?.Fingerprint) ? "" : " --fingerprint " + target.Fingerprint;
                text += $" — your session may have expired or been revoked. Run: meshnet auth login --server {server}{pin} --email EMAIL";
            }
            else if (rpcException.StatusCode == StatusCode.DeadlineExceeded)
            {
                text = string.IsNullOrWhiteSpace(rpcException.Status.Detail)
                    ? $"DeadlineExceeded: {server} did not answer in time"
                    : text + $" — {server} did not answer in time";
            }

            return (text, ExitCodes.Failure);
        }

        return (exception.Message, ExitCodes.Failure);
    }

    /// <summary>
    /// A server (or SDK) refusal as one line: "invalid FIELD: WHY" for field violations, "WHY (REASON)" for a failed
    /// precondition or quota, "Code: message" otherwise; never the same text twice.
    /// </summary>
    public static string DescribeRpc(RpcException exception, Func<string, string?>? fieldLabel = null)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var status = exception.GetRpcStatus();
        var detail = exception.Status.Detail.Trim();
        if (status?.GetDetail<BadRequest>() is { FieldViolations.Count: > 0 } bad)
        {
            return "invalid " + string.Join("; ", bad.FieldViolations.Select(v => $"{fieldLabel?.Invoke(v.Field) ?? v.Field}: {v.Description}"));
        }

        if (status?.GetDetail<PreconditionFailure>() is { Violations.Count: > 0 } pre)
        {
            return $"{detail} ({string.Join(", ", pre.Violations.Select(v => v.Type).Distinct())})";
        }

        if (exception.StatusCode is StatusCode.NotFound or StatusCode.ResourceExhausted or StatusCode.PermissionDenied && detail.Length > 0)
        {
            return detail;
        }

        return detail.Length == 0 ? exception.StatusCode.ToString() : $"{exception.StatusCode}: {detail}";
    }

    private static string? DescribeTransport(Exception exception, string server, string? fingerprint)
    {
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            switch (current)
            {
                case AuthenticationException:
                    return string.IsNullOrEmpty(fingerprint)
                        ? $"TLS handshake with {server} failed: its certificate is not trusted ({current.Message}). " +
                          "For a self-signed server, log in with --fingerprint <sha256 from MESHAI_SERVER_READY>."
                        : $"TLS handshake with {server} failed: the server certificate did not match the pinned fingerprint {fingerprint}. " +
                          "If the server was reinstalled, log in again with its new fingerprint.";
                case SocketException { SocketErrorCode: SocketError.ConnectionRefused }:
                    return $"Cannot connect to {server}: connection refused. Is meshai-server running there?";
                case SocketException socket:
                    return $"Cannot connect to {server}: {socket.Message}";
            }
        }

        return exception is HttpRequestException http ? $"Cannot reach {server}: {http.Message}" : null;
    }
}

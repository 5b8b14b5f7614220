using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Connections;

namespace MeshAI.Server;

/// <summary>Why meshai-server could not start, as the one line it prints instead of a stack trace.</summary>
public static class StartupFailure
{
    /// <summary>Exit code for a start-up failure (configuration, port, files, store).</summary>
    public const int ExitCode = 2;

    /// <summary>One line (without the "error: " prefix) for <paramref name="exception"/>.</summary>
    public static string Describe(Exception exception, ServerSettings? settings)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var endpoint = settings is null ? "the configured address" : $"{settings.Listen}:{settings.Port}";
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            switch (current)
            {
                case AddressInUseException:
                case SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse }:
                    return $"cannot listen on {endpoint}: the port is already in use (another meshai-server?). " +
                           "Stop that process, or start on another port with --port N (or MESHAI_PORT=N).";
                case SocketException { SocketErrorCode: SocketError.AddressNotAvailable }:
                    return $"cannot listen on {endpoint}: {settings?.Listen ?? "that address"} is not an address of this machine (check --listen).";
                case SocketException { SocketErrorCode: SocketError.AccessDenied }:
                    return $"cannot listen on {endpoint}: permission denied (ports below 1024 need root; pick --port 1024 or higher).";
                case UnauthorizedAccessException access:
                    return $"permission denied: {access.Message} (check --data-dir / MESHAI_HOME)";
                case CryptographicException crypto:
                    return $"cannot use the TLS certificate: {crypto.Message}";
            }
        }

        if (exception is InvalidOperationException or FormatException)
        {
            return exception.Message.ReplaceLineEndings(" ").Trim();
        }

        var innermost = exception.GetBaseException();
        return $"meshai-server could not start: {innermost.Message.ReplaceLineEndings(" ").Trim()} ({innermost.GetType().Name})";
    }
}

using System.Net.Security;
using System.Security.Cryptography;
using Grpc.Core;
using Grpc.Net.Client;

namespace MeshAI.Common.Transport;

/// <summary>Creates gRPC channels to a MeshAI server, pinning its TLS certificate fingerprint and attaching a bearer token.</summary>
public static class GrpcChannels
{
    /// <summary>
    /// A channel to <paramref name="serverUrl"/>. With https and a fingerprint, only a certificate with that SHA-256
    /// fingerprint is accepted (self-signed servers); with https and no fingerprint, normal CA validation applies.
    /// </summary>
    public static GrpcChannel Create(string serverUrl, string? pinnedFingerprint, Func<string?>? bearerToken = null, int maxMessageBytes = 16 * 1024 * 1024)
    {
        var handler = PinnedHandler(pinnedFingerprint);
        var options = new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = maxMessageBytes,
            MaxSendMessageSize = maxMessageBytes,
            DisposeHttpClient = true,
        };
        if (bearerToken is not null)
        {
            var credentials = CallCredentials.FromInterceptor((_, metadata) =>
            {
                var token = bearerToken();
                if (!string.IsNullOrEmpty(token))
                {
                    metadata.Add("authorization", "Bearer " + token);
                }

                return Task.CompletedTask;
            });
            options.Credentials = ChannelCredentials.Create(new SslCredentials(), credentials);
            options.UnsafeUseInsecureChannelCallCredentials = true;
        }

        return GrpcChannel.ForAddress(serverUrl, options);
    }

    /// <summary>
    /// Where each HTTP/2 stream's receive window starts (.NET's default is 64 KiB, grown by RTT-probe PINGs up to 16 MiB). A
    /// process that turns the dynamic sizing off (the agent: its PINGs doubled the frames of every heartbeat, issue #11) keeps
    /// this window, enough for 80 MiB/s at 50 ms of round trip; it is credit, not a buffer allocated up front.
    /// </summary>
    public const int StreamWindowBytes = 4 * 1024 * 1024;

    /// <summary>
    /// An HTTP/2-ready handler for plain HTTPS calls to the same server (model files, the web pages): with a fingerprint,
    /// only a certificate with that SHA-256 fingerprint is accepted; without one, normal CA validation applies.
    /// </summary>
    public static SocketsHttpHandler PinnedHandler(string? pinnedFingerprint)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            KeepAlivePingDelay = TimeSpan.FromSeconds(20),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            InitialHttp2StreamWindowSize = StreamWindowBytes,
        };
        if (!string.IsNullOrEmpty(pinnedFingerprint))
        {
            var expected = pinnedFingerprint.Replace(":", "", StringComparison.Ordinal).ToLowerInvariant();
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, cert, _, _) =>
                    cert is not null && string.Equals(Convert.ToHexStringLower(SHA256.HashData(cert.GetRawCertData())), expected, StringComparison.Ordinal),
            };
        }

        return handler;
    }
}

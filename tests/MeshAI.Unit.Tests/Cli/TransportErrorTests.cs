using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using MeshAI.Common.Transport;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Cli;

/// <summary>Real sockets: what `meshnet` says when the server is down or is not the server whose certificate was pinned.</summary>
[TestFixture]
[Category("Unit")]
public sealed class TransportErrorTests
{
    [Test]
    public async Task A_server_that_is_not_listening_is_named_with_connection_refused()
    {
        using var cli = new CliHarness(realTransport: true);
        var port = FreePort();
        await cli.LoginAsync(server: $"https://127.0.0.1:{port}");

        var code = await cli.RunAsync("devices", "list");

        Assert.That(code, Is.EqualTo(1));
        Assert.That(cli.Stderr, Is.EqualTo($"error: Cannot connect to https://127.0.0.1:{port}: connection refused. Is meshai-server running there?\n"));
    }

    [Test]
    public async Task A_certificate_that_does_not_match_the_pinned_fingerprint_is_named_as_such()
    {
        using var cli = new CliHarness(realTransport: true);
        using var server = TlsServer.Start(Path.Combine(cli.Directory, "server.pfx"));
        var wrongFingerprint = new string('0', 64);
        await cli.LoginAsync(server: server.Url, fingerprint: wrongFingerprint);

        var code = await cli.RunAsync("net", "list");

        Assert.That(code, Is.EqualTo(1));
        Assert.That(cli.Stderr, Does.StartWith($"error: TLS handshake with {server.Url} failed: the server certificate did not match the pinned fingerprint {wrongFingerprint}."));
        Assert.That(cli.Stderr.Trim().Split('\n'), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task A_self_signed_certificate_without_a_pin_says_to_pass_the_fingerprint()
    {
        using var cli = new CliHarness(realTransport: true);
        using var server = TlsServer.Start(Path.Combine(cli.Directory, "server.pfx"));

        var code = await cli.RunAsync("auth", "login", "--server", server.Url, "--email", "ada@example.com");

        Assert.That(code, Is.EqualTo(1));
        Assert.That(cli.Stderr, Does.StartWith($"error: TLS handshake with {server.Url} failed: its certificate is not trusted"));
        Assert.That(cli.Stderr, Does.Contain("--fingerprint"));
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A TLS listener with a self-signed certificate that completes no HTTP: enough for the client's certificate check.</summary>
    private sealed class TlsServer : IDisposable
    {
        private readonly TcpListener listener;
        private readonly CancellationTokenSource stop = new();

        private TlsServer(TcpListener listener) => this.listener = listener;

        public string Url => $"https://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";

        public static TlsServer Start(string pfxPath)
        {
            var certificate = ServerCertificates.LoadOrCreate(pfxPath);
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var server = new TlsServer(listener);
            _ = server.AcceptLoopAsync(certificate);
            return server;
        }

        public void Dispose()
        {
            stop.Cancel();
            listener.Stop();
            stop.Dispose();
        }

        private async Task AcceptLoopAsync(System.Security.Cryptography.X509Certificates.X509Certificate2 certificate)
        {
            using (certificate)
            {
                while (!stop.IsCancellationRequested)
                {
                    try
                    {
                        var client = await listener.AcceptTcpClientAsync(stop.Token);
                        _ = HandshakeAsync(client, certificate);
                    }
                    catch (Exception) when (stop.IsCancellationRequested)
                    {
                        return;
                    }
                    catch (SocketException)
                    {
                        return;
                    }
                }
            }
        }

        private async Task HandshakeAsync(TcpClient client, System.Security.Cryptography.X509Certificates.X509Certificate2 certificate)
        {
            using (client)
            {
                try
                {
                    await using var ssl = new SslStream(client.GetStream());
                    await ssl.AuthenticateAsServerAsync(
                        new SslServerAuthenticationOptions { ServerCertificate = certificate, ApplicationProtocols = [SslApplicationProtocol.Http2] },
                        stop.Token);
                }
                catch (Exception)
                {
                    // The client is expected to abort the handshake.
                }
            }
        }
    }
}

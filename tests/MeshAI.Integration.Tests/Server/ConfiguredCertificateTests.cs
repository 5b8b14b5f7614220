using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshAI.Common.Transport;
using MeshAI.Server;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Server;

/// <summary>A configured TLS certificate (as from a real CA) replaces the self-signed default on the real listener.</summary>
[Category("Integration")]
public sealed class ConfiguredCertificateTests
{
    [Test]
    public async Task A_configured_pem_certificate_is_served_and_its_fingerprint_published()
    {
        var dir = Directory.CreateTempSubdirectory("meshai-tls").FullName;
        try
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=mesh.example.test", key, HashAlgorithmName.SHA256);
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(System.Net.IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
            using var issued = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
            var certPath = Path.Combine(dir, "cert.pem");
            var keyPath = Path.Combine(dir, "key.pem");
            await File.WriteAllTextAsync(certPath, issued.ExportCertificatePem());
            await File.WriteAllTextAsync(keyPath, key.ExportPkcs8PrivateKeyPem());

            var (app, settings, certificate) = ServerHost.Build(["--data-dir", Path.Combine(dir, "data"), "--port", "0", "--tls-cert", certPath, "--tls-key", keyPath]);
            await using (app)
            {
                var (url, fingerprint) = await ServerHost.StartAsync(app, settings, certificate, CancellationToken.None);
                Assert.That(fingerprint, Is.EqualTo(ServerCertificates.Fingerprint(issued)));
                Assert.That(File.Exists(Path.Combine(dir, "data", "tls", "server.pfx")), Is.False, "no self-signed certificate is generated");

                // The pinned channel only accepts the configured certificate: a health call over it succeeds.
                using var handler = new SocketsHttpHandler();
                handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, _) =>
                    cert is not null && Convert.ToHexStringLower(SHA256.HashData(cert.GetRawCertData())) == fingerprint;
                using var http = new HttpClient(handler);
                Assert.That(await http.GetStringAsync(new Uri(url + "/healthz")), Is.EqualTo("Healthy"));
                await app.StopAsync();
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void A_missing_or_keyless_certificate_is_a_clear_configuration_error()
    {
        var missing = Assert.Throws<InvalidOperationException>(() => ServerCertificates.LoadConfigured("/nonexistent/cert.pem", null, null));
        Assert.That(missing!.Message, Does.Contain("does not exist"));

        var dir = Directory.CreateTempSubdirectory("meshai-tls").FullName;
        try
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var cert = new CertificateRequest("CN=x", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));
            var publicOnly = Path.Combine(dir, "public.pfx");
            File.WriteAllBytes(publicOnly, X509CertificateLoader.LoadCertificate(cert.RawData).Export(X509ContentType.Pkcs12));
            var keyless = Assert.Throws<InvalidOperationException>(() => ServerCertificates.LoadConfigured(publicOnly, null, null));
            Assert.That(keyless!.Message, Does.Contain("no private key"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MeshAI.Common.Transport;

/// <summary>The server's TLS certificate: self-signed by default, persisted, identified by its SHA-256 fingerprint.</summary>
public static class ServerCertificates
{
    /// <summary>Loads the PFX at <paramref name="path"/>, or creates a self-signed one (ECDSA P-256, 5 years) there.</summary>
    public static X509Certificate2 LoadOrCreate(string path)
    {
        if (File.Exists(path))
        {
            return X509CertificateLoader.LoadPkcs12FromFile(path, password: null);
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=meshai-server", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        san.AddIpAddress(System.Net.IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(5));
        var pfx = cert.Export(X509ContentType.Pfx);
        PrivateFiles.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        PrivateFiles.WriteAllBytes(path, pfx);

        return X509CertificateLoader.LoadPkcs12(pfx, password: null);
    }

    /// <summary>
    /// A configured certificate (e.g. from a real CA): a PKCS#12 file (with an optional password), or a PEM certificate
    /// chain plus a PEM private key. Throws <see cref="InvalidOperationException"/> with a clear message when unusable.
    /// </summary>
    public static X509Certificate2 LoadConfigured(string certificatePath, string? keyPath, string? password)
    {
        if (!File.Exists(certificatePath))
        {
            throw new InvalidOperationException($"TLS certificate file '{certificatePath}' does not exist");
        }

        if (keyPath is not null && !File.Exists(keyPath))
        {
            throw new InvalidOperationException($"TLS key file '{keyPath}' does not exist");
        }

        try
        {
            var certificate = keyPath is null
                ? X509CertificateLoader.LoadPkcs12FromFile(certificatePath, password)
                : X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            if (!certificate.HasPrivateKey)
            {
                throw new InvalidOperationException($"TLS certificate '{certificatePath}' has no private key (give --tls-key for a PEM certificate)");
            }

            // Round-trip through PKCS#12 so the key is usable by SslStream on every platform.
            return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), password: null);
        }
        catch (CryptographicException ex)
        {
            throw new InvalidOperationException($"TLS certificate '{certificatePath}' could not be loaded: {ex.Message}", ex);
        }
    }

    /// <summary>Writes the certificate (never its key) as PEM to <paramref name="path"/>, unless the file already holds exactly that.</summary>
    public static void WritePublicPem(X509Certificate2 certificate, string path)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var pem = certificate.ExportCertificatePem() + "\n";
        if (File.Exists(path) && File.ReadAllText(path) == pem)
        {
            return;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, pem);
    }

    /// <summary>Lower-case hex SHA-256 of the certificate's DER bytes (what join links and the CLI pin).</summary>
    public static string Fingerprint(X509Certificate2 certificate) =>
        Convert.ToHexStringLower(SHA256.HashData(certificate.RawData));
}

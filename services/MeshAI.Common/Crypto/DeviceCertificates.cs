using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Contracts.Device.V1;

namespace MeshAI.Common.Crypto;

/// <summary>Issues and verifies device certificates: signed protobuf details, Nebula-style.</summary>
public static class DeviceCertificates
{
    /// <summary>Signs the details with the network CA key.</summary>
    public static DeviceCertificate Issue(DeviceCertificateDetails details, SigningKeyPair ca)
    {
        var bytes = details.ToByteArray();
        return new DeviceCertificate { Details = ByteString.CopyFrom(bytes), Signature = ByteString.CopyFrom(ca.Sign(bytes)) };
    }

    /// <summary>
    /// Parses and verifies a certificate against trusted CA public keys (by key id).
    /// Returns null with a reason when the signature, key id or validity window does not check out.
    /// </summary>
    public static DeviceCertificateDetails? Verify(
        DeviceCertificate? certificate,
        IReadOnlyDictionary<string, byte[]> trustedCaKeys,
        DateTimeOffset now,
        out string reason)
    {
        reason = "";
        if (certificate is null || certificate.Details.IsEmpty || certificate.Signature.IsEmpty)
        {
            reason = "certificate missing";
            return null;
        }

        DeviceCertificateDetails details;
        try
        {
            details = DeviceCertificateDetails.Parser.ParseFrom(certificate.Details);
        }
        catch (InvalidProtocolBufferException)
        {
            reason = "certificate malformed";
            return null;
        }

        if (!trustedCaKeys.TryGetValue(details.CaKeyId, out var caKey))
        {
            reason = $"certificate signed by unknown CA key {details.CaKeyId}";
            return null;
        }

        if (!SigningKeyPair.Verify(caKey, certificate.Details.Span, certificate.Signature.Span))
        {
            reason = "certificate signature invalid";
            return null;
        }

        if (details.NotBefore is null || details.NotAfter is null ||
            now < details.NotBefore.ToDateTimeOffset() - TimeSpan.FromMinutes(5) ||
            now > details.NotAfter.ToDateTimeOffset())
        {
            reason = "certificate outside its validity window";
            return null;
        }

        return details;
    }

    /// <summary>
    /// True for the reasons that mean "no trusted CA signed this" (missing, malformed, unknown CA key, bad signature), as
    /// opposed to a genuine certificate outside its validity window; callers facing untrusted peers report these uniformly.
    /// </summary>
    public static bool IsSignatureFailure(string reason) =>
        reason is "certificate missing" or "certificate malformed" or "certificate signature invalid" ||
        (reason ?? "").StartsWith("certificate signed by unknown CA key", StringComparison.Ordinal);

    /// <summary>Convenience for building validity timestamps.</summary>
    public static Timestamp Ts(DateTimeOffset t) => Timestamp.FromDateTimeOffset(t);
}

using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Device.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Devices;

/// <summary>
/// RenewCertificate: a device proves possession of its key and presents its current certificate (which must still verify:
/// current or within-grace CA, not expired, not revoked); it gets a certificate from the network's current CA when its
/// own is from an older CA or past half its validity, plus the network's current public keys. The old certificate is
/// not denylisted: it stops verifying when its CA key leaves the grace window.
/// </summary>
public sealed class CertificateRenewal(
    IDeviceAuthority authority,
    DeviceRepository devices,
    SecurityRepository store,
    NetworkKeyVault keys,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock)
{
    /// <summary>Verifies the request and returns the (re-)issued certificate and the trusted keys.</summary>
    public async Task<RenewCertificateResponse> RenewAsync(RenewCertificateRequest request, CancellationToken ct)
    {
        if (request.CurrentCertificate is null || request.CurrentCertificate.Details.IsEmpty)
        {
            throw RpcErrors.Unauthenticated("RenewCertificate is authenticated by the device's current certificate (current_certificate)", ErrorReasons.DeviceCertificateRefused);
        }

        var now = clock.GetUtcNow();
        var limits = options.Value.Limits;
        if (Math.Abs(now.ToUnixTimeMilliseconds() - request.TimestampUnixMs) > limits.ProofClockSkewSeconds * 1000L)
        {
            throw RpcErrors.InvalidArgument("timestamp_unix_ms", $"clock differs from the server's by more than {limits.ProofClockSkewSeconds} s");
        }

        var (identity, reason) = await authority.AuthenticateAsync(request.CurrentCertificate, ct);
        if (identity is null)
        {
            throw reason.Contains("revoked", StringComparison.OrdinalIgnoreCase)
                ? RpcErrors.PermissionDenied("device certificate revoked; rejoining needs a new join link and approval", ErrorReasons.DeviceRevoked)
                : RpcErrors.Unauthenticated("certificate refused: " + reason, ErrorReasons.DeviceCertificateRefused);
        }

        if (!SigningKeyPair.Verify(identity.SigningPublicKey, ProofMessages.Renew(identity.CertificateSerial, request.TimestampUnixMs), request.ProofSignature.Span))
        {
            throw RpcErrors.Unauthenticated("proof of key possession does not verify (proof_signature)", ErrorReasons.DeviceProofInvalid);
        }

        var current = DeviceCertificateDetails.Parser.ParseFrom(request.CurrentCertificate.Details);
        var set = await keys.GetKeysAsync(identity.NetworkId, ct);
        var halfLife = current.NotBefore.ToDateTimeOffset() + ((current.NotAfter.ToDateTimeOffset() - current.NotBefore.ToDateTimeOffset()) / 2);
        var certificate = request.CurrentCertificate;
        if (current.CaKeyId != set.CaKeyId || now >= halfLife)
        {
            var device = await devices.GetDeviceByIdAsync(identity.DeviceId, ct) ?? throw RpcErrors.NotFound("device", identity.DeviceId);
            var details = current.Clone();
            details.Serial = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
            details.CaKeyId = set.CaKeyId;
            details.EncryptionPublicKey = ByteString.CopyFrom(device.EncryptionPublicKey);
            details.NotBefore = Timestamp.FromDateTimeOffset(now);
            details.NotAfter = Timestamp.FromDateTimeOffset(now.AddDays(limits.CertificateValidityDays));
            certificate = DeviceCertificates.Issue(details, set.Ca);
            await store.SetDeviceSerialAsync(identity.DeviceId, details.Serial, ct);
        }

        await store.SetDeviceControlKeyAsync(identity.DeviceId, set.ControlKeyId, ct);
        return new RenewCertificateResponse { Certificate = certificate, NetworkKeys = { NetworkKeyVault.PublicKeys(set.Rows) } };
    }
}

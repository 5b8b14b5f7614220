using MeshAI.Common.Crypto;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Device.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Devices;

/// <summary>
/// The relay's question "is this certificate trustworthy?": the network's CA keys by key id, validity, and the denylist.
/// Every refusal before the CA signature verifies (malformed, unknown network, unknown CA key, bad signature) has one and the
/// same reason, <see cref="NotTrusted"/>, so the relay cannot be used to probe which network ids exist; only a certificate
/// the network's CA really issued learns more (expired, revoked, unregistered).
/// </summary>
public sealed class DeviceAuthority(DeviceRepository devices, NetworkRepository networks, NetworkKeyVault keys, TimeProvider clock) : IDeviceAuthority
{
    /// <summary>The one refusal reason for a certificate no CA of the network it names has signed.</summary>
    public const string NotTrusted = "certificate not trusted";

    /// <inheritdoc />
    public async Task<(DeviceIdentity? Identity, string Reason)> AuthenticateAsync(DeviceCertificate certificate, CancellationToken cancellationToken)
    {
        DeviceCertificateDetails claimed;
        try
        {
            claimed = DeviceCertificateDetails.Parser.ParseFrom(certificate.Details);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            return (null, NotTrusted);
        }

        // Only this network's CA keys are trusted: a certificate from another network's CA never verifies here. An unknown
        // network has no keys, so it fails exactly like a foreign or forged certificate.
        var trusted = string.IsNullOrEmpty(claimed.NetworkId) || await networks.GetNetworkAsync(claimed.NetworkId, cancellationToken) is null
            ? new Dictionary<string, byte[]>()
            : await keys.TrustedCaKeysAsync(claimed.NetworkId, cancellationToken);
        var details = DeviceCertificates.Verify(certificate, trusted, clock.GetUtcNow(), out var reason);
        if (details is null)
        {
            return (null, DeviceCertificates.IsSignatureFailure(reason) ? NotTrusted : reason);
        }

        var device = await devices.GetDeviceByIdAsync(details.DeviceId, cancellationToken);
        if (device is null || device.NetworkId != details.NetworkId)
        {
            return (null, "device is not registered in this network");
        }

        if (!device.SigningPublicKey.AsSpan().SequenceEqual(details.SigningPublicKey.Span))
        {
            return (null, "certificate key does not match the registered device key");
        }

        if (device.Revoked || await devices.IsRevokedAsync(details.DeviceId, details.Serial, cancellationToken))
        {
            return (null, "device certificate revoked");
        }

        return (new DeviceIdentity(details.DeviceId, details.NetworkId, details.OwnerUserId, details.SigningPublicKey.ToByteArray(), details.Serial), "");
    }

    /// <inheritdoc />
    public Task<bool> IsRevokedAsync(string deviceId, string certificateSerial, CancellationToken cancellationToken) =>
        devices.IsRevokedAsync(deviceId, certificateSerial, cancellationToken);
}

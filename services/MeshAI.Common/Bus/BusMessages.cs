using MeshAI.Common.Seams;
using MeshAI.Contracts.Bus.V1;

namespace MeshAI.Common.Bus;

/// <summary>Conversions between the seams' types and their bus messages.</summary>
public static class BusMessages
{
    /// <summary>The bus form of an authenticated device.</summary>
    public static DeviceRef ToRef(DeviceIdentity device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return new DeviceRef
        {
            DeviceId = device.DeviceId,
            NetworkId = device.NetworkId,
            OwnerUserId = device.OwnerUserId,
            SigningPublicKey = Google.Protobuf.ByteString.CopyFrom(device.SigningPublicKey),
            CertificateSerial = device.CertificateSerial,
        };
    }

    /// <summary>The device a bus message names.</summary>
    public static DeviceIdentity FromRef(DeviceRef device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return new DeviceIdentity(device.DeviceId, device.NetworkId, device.OwnerUserId, device.SigningPublicKey.ToByteArray(), device.CertificateSerial);
    }
}

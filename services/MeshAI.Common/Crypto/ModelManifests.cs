using System.Globalization;
using System.Text;
using Google.Protobuf;
using MeshAI.Contracts.Model.V1;

namespace MeshAI.Common.Crypto;

/// <summary>
/// Signs and verifies network model manifests (serialized <see cref="ModelManifestDetails"/> + an ed25519 signature by
/// the network's control signing key), and the proof a device sends when it fetches one.
/// </summary>
public static class ModelManifests
{
    /// <summary>gRPC binary metadata carrying the fetching device's <c>DeviceCertificate</c> bytes.</summary>
    public const string DeviceCertificateHeader = "meshai-device-certificate-bin";

    /// <summary>gRPC metadata: the proof's Unix time in milliseconds.</summary>
    public const string DeviceTimestampHeader = "meshai-device-timestamp";

    /// <summary>gRPC binary metadata: the device's signature over <see cref="FetchProof"/>.</summary>
    public const string DeviceProofHeader = "meshai-device-proof-bin";

    /// <summary>Signs the details with the network's control key.</summary>
    public static ModelManifest Sign(ModelManifestDetails details, SigningKeyPair controlKey, string manifestId)
    {
        ArgumentNullException.ThrowIfNull(details);
        ArgumentNullException.ThrowIfNull(controlKey);
        var bytes = details.ToByteArray();
        return new ModelManifest
        {
            Details = ByteString.CopyFrom(bytes),
            Signature = ByteString.CopyFrom(controlKey.Sign(bytes)),
            SigningKeyId = SigningKeyPair.KeyId(controlKey.PublicKey),
            ManifestId = manifestId,
        };
    }

    /// <summary>The weights file of a manifest: the one its <c>model_file</c> parameter names, else its first file (null when it lists none).</summary>
    public static ModelFile? WeightsFile(ModelManifestDetails details)
    {
        ArgumentNullException.ThrowIfNull(details);
        if (details.Files.Count == 0)
        {
            return null;
        }

        var name = details.Parameters.TryGetValue("model_file", out var file) && file.Length > 0 ? file : details.Files[0].Path;
        return details.Files.FirstOrDefault(f => f.Path == name) ?? details.Files[0];
    }

    /// <summary>
    /// The details when the signature verifies with one of <paramref name="trustedControlKeys"/> and the manifest is for
    /// <paramref name="expectedNetworkId"/>; otherwise null and the reason.
    /// </summary>
    public static ModelManifestDetails? Verify(ModelManifest? manifest, IReadOnlyDictionary<string, byte[]> trustedControlKeys, string expectedNetworkId, out string reason)
    {
        ArgumentNullException.ThrowIfNull(trustedControlKeys);
        reason = "";
        if (manifest is null || manifest.Details.IsEmpty)
        {
            reason = "unsigned manifest";
            return null;
        }

        if (!trustedControlKeys.TryGetValue(manifest.SigningKeyId, out var key))
        {
            reason = $"signed by key {manifest.SigningKeyId}, which is not one of this network's control keys";
            return null;
        }

        if (!SigningKeyPair.Verify(key, manifest.Details.Span, manifest.Signature.Span))
        {
            reason = "signature does not verify with the network's control key";
            return null;
        }

        ModelManifestDetails details;
        try
        {
            details = ModelManifestDetails.Parser.ParseFrom(manifest.Details);
        }
        catch (InvalidProtocolBufferException)
        {
            reason = "manifest details malformed";
            return null;
        }

        if (!string.Equals(details.NetworkId, expectedNetworkId, StringComparison.Ordinal))
        {
            reason = $"manifest is for network {details.NetworkId}, not {expectedNetworkId}";
            return null;
        }

        return details;
    }

    /// <summary>What a device signs to fetch model manifests of its network.</summary>
    public static byte[] FetchProof(string certificateSerial, string networkId, long timestampUnixMs) =>
        Encoding.UTF8.GetBytes("meshai-model-fetch-v1\n" + certificateSerial + "\n" + networkId + "\n" + timestampUnixMs.ToString(CultureInfo.InvariantCulture));
}

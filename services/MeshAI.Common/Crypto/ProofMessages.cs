using System.Globalization;
using System.Text;

namespace MeshAI.Common.Crypto;

/// <summary>The exact byte strings devices sign, in one place so signer and verifier cannot drift.</summary>
public static class ProofMessages
{
    /// <summary>Proof of key possession at registration (see RegisterDeviceRequest.proof_signature).</summary>
    public static byte[] Register(string joinToken, string installationId, long timestampUnixMs, ReadOnlySpan<byte> signingPublicKey, ReadOnlySpan<byte> encryptionPublicKey)
    {
        var text = "meshai-register-v1\n" + joinToken + "\n" + installationId + "\n" +
                   timestampUnixMs.ToString(CultureInfo.InvariantCulture) + "\n" +
                   Convert.ToHexStringLower(signingPublicKey) + "\n" + Convert.ToHexStringLower(encryptionPublicKey);
        return Encoding.UTF8.GetBytes(text);
    }

    /// <summary>Relay stream challenge answer (see ChallengeAnswer.signature).</summary>
    public static byte[] RelayChallenge(ReadOnlySpan<byte> nonce, string relayId)
    {
        var prefix = Encoding.UTF8.GetBytes("meshai-relay-v1\n");
        var suffix = Encoding.UTF8.GetBytes(relayId);
        var buffer = new byte[prefix.Length + nonce.Length + suffix.Length];
        prefix.CopyTo(buffer, 0);
        nonce.CopyTo(buffer.AsSpan(prefix.Length));
        suffix.CopyTo(buffer, prefix.Length + nonce.Length);
        return buffer;
    }

    /// <summary>Certificate renewal proof (see RenewCertificateRequest.proof_signature).</summary>
    public static byte[] Renew(string serial, long timestampUnixMs) =>
        Encoding.UTF8.GetBytes("meshai-renew-v1\n" + serial + "\n" + timestampUnixMs.ToString(CultureInfo.InvariantCulture));
}

using System.Security.Cryptography;
using MeshAI.Common.Crypto;

namespace MeshAI.Relay.Core;

/// <summary>The relay's proof-of-possession step: a fresh nonce the device signs together with the relay id.</summary>
public static class ChallengeVerifier
{
    /// <summary>Size of the challenge nonce in bytes.</summary>
    public const int NonceBytes = 32;

    /// <summary>A new random nonce.</summary>
    public static byte[] NewNonce() => RandomNumberGenerator.GetBytes(NonceBytes);

    /// <summary>True when <paramref name="signature"/> is the device key's signature over <see cref="ProofMessages.RelayChallenge"/>.</summary>
    public static bool Verify(ReadOnlySpan<byte> devicePublicKey, ReadOnlySpan<byte> nonce, string relayId, ReadOnlySpan<byte> signature) =>
        nonce.Length == NonceBytes && SigningKeyPair.Verify(devicePublicKey, ProofMessages.RelayChallenge(nonce, relayId), signature);
}

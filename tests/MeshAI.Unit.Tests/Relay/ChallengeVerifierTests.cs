using MeshAI.Common.Crypto;
using MeshAI.Relay.Core;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Relay;

[TestFixture]
[Category("Unit")]
public sealed class ChallengeVerifierTests
{
    private readonly SigningKeyPair _device = SigningKeyPair.Generate();

    [Test]
    public void Answer_signed_by_the_device_key_over_nonce_and_relay_id_verifies()
    {
        var nonce = ChallengeVerifier.NewNonce();
        var signature = _device.Sign(ProofMessages.RelayChallenge(nonce, "relay-local"));

        Assert.That(ChallengeVerifier.Verify(_device.PublicKey, nonce, "relay-local", signature), Is.True);
    }

    [Test]
    public void Answer_for_another_relay_is_refused()
    {
        var nonce = ChallengeVerifier.NewNonce();
        var signature = _device.Sign(ProofMessages.RelayChallenge(nonce, "relay-other"));

        Assert.That(ChallengeVerifier.Verify(_device.PublicKey, nonce, "relay-local", signature), Is.False);
    }

    [Test]
    public void Answer_for_another_nonce_is_refused()
    {
        var signature = _device.Sign(ProofMessages.RelayChallenge(ChallengeVerifier.NewNonce(), "relay-local"));

        Assert.That(ChallengeVerifier.Verify(_device.PublicKey, ChallengeVerifier.NewNonce(), "relay-local", signature), Is.False);
    }

    [Test]
    public void Answer_signed_by_another_key_is_refused()
    {
        var nonce = ChallengeVerifier.NewNonce();
        var signature = SigningKeyPair.Generate().Sign(ProofMessages.RelayChallenge(nonce, "relay-local"));

        Assert.That(ChallengeVerifier.Verify(_device.PublicKey, nonce, "relay-local", signature), Is.False);
    }

    [Test]
    public void Garbage_signature_or_short_nonce_is_refused()
    {
        var nonce = ChallengeVerifier.NewNonce();
        Assert.That(ChallengeVerifier.Verify(_device.PublicKey, nonce, "relay-local", new byte[3]), Is.False);
        Assert.That(ChallengeVerifier.Verify(_device.PublicKey, nonce.AsSpan(0, 8), "relay-local", _device.Sign(ProofMessages.RelayChallenge(nonce.AsSpan(0, 8), "relay-local"))), Is.False);
    }

    [Test]
    public void Nonces_are_32_random_bytes()
    {
        var a = ChallengeVerifier.NewNonce();
        var b = ChallengeVerifier.NewNonce();
        Assert.That(a, Has.Length.EqualTo(32));
        Assert.That(a, Is.Not.EqualTo(b));
    }
}

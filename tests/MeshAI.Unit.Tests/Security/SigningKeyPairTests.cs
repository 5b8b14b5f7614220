using System.Text;
using MeshAI.Common.Crypto;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Security;

/// <summary>
/// <see cref="SigningKeyPair.Sign"/> keeps its imported key after the first signature (#11): every signature, from any
/// thread, must still verify under the pair's public key, and a `with` copy carrying another seed must sign with that seed.
/// </summary>
[TestFixture]
[Category("Unit")]
public sealed class SigningKeyPairTests
{
    [Test]
    public void Repeated_and_concurrent_signatures_of_one_pair_all_verify_and_are_deterministic()
    {
        var pair = SigningKeyPair.Generate();
        var messages = Enumerable.Range(0, 64).Select(i => Encoding.UTF8.GetBytes("ticket " + i)).ToArray();
        var signatures = new byte[messages.Length][];
        Parallel.For(0, messages.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => signatures[i] = pair.Sign(messages[i]));

        Assert.Multiple(() =>
        {
            for (var i = 0; i < messages.Length; i++)
            {
                Assert.That(SigningKeyPair.Verify(pair.PublicKey, messages[i], signatures[i]), Is.True, "signature " + i);
                Assert.That(pair.Sign(messages[i]), Is.EqualTo(signatures[i]), "ed25519 is deterministic: the kept key is the same key");
            }
        });
    }

    [Test]
    public void A_with_copy_carrying_another_seed_signs_with_that_seed_not_the_kept_key()
    {
        var first = SigningKeyPair.Generate();
        var second = SigningKeyPair.Generate();
        var message = Encoding.UTF8.GetBytes("placement");
        _ = first.Sign(message); // imports and keeps first's key
        var copy = first with { PrivateKey = second.PrivateKey, PublicKey = second.PublicKey };

        var signature = copy.Sign(message);
        Assert.Multiple(() =>
        {
            Assert.That(SigningKeyPair.Verify(second.PublicKey, message, signature), Is.True);
            Assert.That(SigningKeyPair.Verify(first.PublicKey, message, signature), Is.False);
            Assert.That(copy, Is.Not.EqualTo(first));
            Assert.That(first with { }, Is.EqualTo(first), "equality is still the record's: the same key arrays");
        });
    }
}

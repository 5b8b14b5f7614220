using Google.Protobuf;
using MeshAI.Agent.Jobs;
using MeshAI.Agent.State;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Security;

[TestFixture]
[Category("Unit")]
public sealed class PayloadCryptoTests
{
    private static readonly string[] Both = ["dev_a", "dev_b"];
    private static readonly byte[] Secret = "the quarterly numbers nobody may see"u8.ToArray();

    private static JobEnvelope Envelope() => new()
    {
        NetworkId = "net_a",
        WorkloadId = WorkloadClass.DiagnosticEcho,
        InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFrom(Secret) } }.ToByteString(), PayloadSha256 = "x" },
    };

    [Test]
    public void Every_candidate_can_open_the_payload_once_encrypted_for_all_of_them()
    {
        var a = EncryptionKeyPair.Generate();
        var b = EncryptionKeyPair.Generate();
        var submitter = EncryptionKeyPair.Generate();
        var envelope = Envelope();
        var plaintext = envelope.InputManifest.Payload.ToByteArray();
        PayloadCrypto.EncryptEnvelope(envelope, [new("dev_a", a.PublicKey), new("dev_b", b.PublicKey)], submitter.PublicKey);

        Assert.Multiple(() =>
        {
            Assert.That(PayloadCrypto.IsEncrypted(envelope), Is.True);
            Assert.That(envelope.InputManifest.PayloadSha256, Is.Empty, "a plaintext hash would allow confirming guesses");
            Assert.That(Contains(envelope.ToByteArray(), Secret), Is.False);
            Assert.That(envelope.PayloadEncryption.Recipients.Select(r => r.DeviceId), Is.EqualTo(Both));
            Assert.That(PayloadCrypto.DecryptEnvelope(envelope, "dev_a", a), Is.EqualTo(plaintext));
            Assert.That(PayloadCrypto.DecryptEnvelope(envelope, "dev_b", b), Is.EqualTo(plaintext));
        });
    }

    [Test]
    public void A_device_without_a_wrapped_key_or_with_the_wrong_key_cannot_open_it()
    {
        var a = EncryptionKeyPair.Generate();
        var envelope = Envelope();
        PayloadCrypto.EncryptEnvelope(envelope, [new("dev_a", a.PublicKey)], EncryptionKeyPair.Generate().PublicKey);
        Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.DecryptEnvelope(envelope, "dev_c", a));
        Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.DecryptEnvelope(envelope, "dev_a", EncryptionKeyPair.Generate()));
    }

    [Test]
    public void Tampered_ciphertext_wrapped_key_or_moved_network_does_not_authenticate()
    {
        var a = EncryptionKeyPair.Generate();
        var envelope = Envelope();
        PayloadCrypto.EncryptEnvelope(envelope, [new("dev_a", a.PublicKey)], EncryptionKeyPair.Generate().PublicKey);

        var flipped = envelope.Clone();
        var bytes = flipped.InputManifest.Payload.ToByteArray();
        bytes[3] ^= 1;
        flipped.InputManifest.Payload = ByteString.CopyFrom(bytes);
        Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.DecryptEnvelope(flipped, "dev_a", a));

        var moved = envelope.Clone();
        moved.NetworkId = "net_b";
        Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.DecryptEnvelope(moved, "dev_a", a), "bound to the network");

        var relabelled = envelope.Clone();
        relabelled.PayloadEncryption.Recipients[0].DeviceId = "dev_z";
        Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.DecryptEnvelope(relabelled, "dev_z", a), "wrap is bound to the device id");
    }

    [Test]
    public void Results_sealed_to_the_submitter_open_only_with_its_key_and_job_id()
    {
        var submitter = EncryptionKeyPair.Generate();
        var (sealedOutput, nonce) = PayloadCrypto.SealToSubmitter(Secret, submitter.PublicKey, "job_1");
        Assert.Multiple(() =>
        {
            Assert.That(Contains(sealedOutput, Secret), Is.False);
            Assert.That(PayloadCrypto.OpenFromDevice(sealedOutput, nonce, submitter, "job_1"), Is.EqualTo(Secret));
            Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.OpenFromDevice(sealedOutput, nonce, EncryptionKeyPair.Generate(), "job_1"));
            Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.OpenFromDevice(sealedOutput, nonce, submitter, "job_2"));
        });
    }

    [Test]
    public void Agent_step_opens_the_input_and_seals_the_result_back()
    {
        var keys = AgentKeys.Generate();
        var submitter = EncryptionKeyPair.Generate();
        var envelope = Envelope();
        var plaintext = envelope.InputManifest.Payload;
        PayloadCrypto.EncryptEnvelope(envelope, [new("dev_a", keys.EncryptionPublicKey)], submitter.PublicKey);
        var step = new EndToEndPayload(keys, "dev_a");
        Assert.That(step.OpenInput(envelope, envelope.InputManifest.Payload), Is.EqualTo(plaintext));

        var result = EndToEndPayload.SealResult(envelope, new JobResult { JobId = "job_9", Output = ByteString.CopyFrom(Secret) });
        Assert.That(result.Encrypted, Is.True);
        Assert.That(PayloadCrypto.OpenFromDevice(result.Output.Span, result.Nonce.Span, submitter, "job_9"), Is.EqualTo(Secret));

        var clear = Envelope();
        Assert.That(step.OpenInput(clear, clear.InputManifest.Payload), Is.EqualTo(clear.InputManifest.Payload), "unencrypted passes through");
    }

    [Test]
    public void Every_result_seal_uses_a_fresh_ephemeral_key_and_one_buffer_of_exact_size()
    {
        var submitter = EncryptionKeyPair.Generate();
        var vectors = new byte[98_304]; // an embeddings result: 64 x 384 floats
        new Random(7).NextBytes(vectors);
        var (first, firstNonce) = PayloadCrypto.SealToSubmitter(vectors, submitter.PublicKey, "job_1");
        var (second, secondNonce) = PayloadCrypto.SealToSubmitter(vectors, submitter.PublicKey, "job_1");
        Assert.Multiple(() =>
        {
            Assert.That(first, Has.Length.EqualTo(PayloadCrypto.PublicKeySize + vectors.Length + 16), "ephemeral public key, ciphertext, tag");
            Assert.That(first.AsSpan(0, PayloadCrypto.PublicKeySize).SequenceEqual(second.AsSpan(0, PayloadCrypto.PublicKeySize)), Is.False,
                "the ephemeral key is never reused for the same submitter");
            Assert.That(firstNonce, Is.Not.EqualTo(secondNonce));
            Assert.That(PayloadCrypto.OpenFromDevice(first, firstNonce, submitter, "job_1"), Is.EqualTo(vectors));
            Assert.That(PayloadCrypto.OpenFromDevice(second, secondNonce, submitter, "job_1"), Is.EqualTo(vectors));
        });
    }

    [Test]
    public void An_imported_key_opens_only_for_its_own_pair_and_a_rotated_key_needs_a_new_import()
    {
        var before = EncryptionKeyPair.Generate();
        var rotated = EncryptionKeyPair.Generate();
        using var importedBefore = ImportedEncryptionKey.Import(before);
        using var importedRotated = ImportedEncryptionKey.Import(rotated);
        var envelope = Envelope();
        var plaintext = envelope.InputManifest.Payload.ToByteArray();
        PayloadCrypto.EncryptEnvelope(envelope, [new("dev_a", rotated.PublicKey)], before.PublicKey);
        var (sealedToBefore, nonce) = PayloadCrypto.SealToSubmitter(Secret, before.PublicKey, "job_1");
        Assert.Multiple(() =>
        {
            Assert.That(PayloadCrypto.DecryptEnvelope(envelope, "dev_a", importedRotated), Is.EqualTo(plaintext));
            Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.DecryptEnvelope(envelope, "dev_a", importedBefore), "the old key does not open what was wrapped for the rotated one");
            Assert.That(PayloadCrypto.OpenFromDevice(sealedToBefore, nonce, importedBefore, "job_1"), Is.EqualTo(Secret));
            Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.OpenFromDevice(sealedToBefore, nonce, importedRotated, "job_1"), "the rotated key does not open results sealed to the old one");
            Assert.That(importedRotated.PublicKey, Is.EqualTo(rotated.PublicKey));
        });

        var disposed = ImportedEncryptionKey.Import(rotated);
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(() => PayloadCrypto.DecryptEnvelope(envelope, "dev_a", disposed));
    }

    [Test]
    public void A_new_agent_step_with_new_keys_does_not_open_what_was_sealed_for_the_old_keys()
    {
        var oldKeys = AgentKeys.Generate();
        var newKeys = AgentKeys.Generate();
        var envelope = Envelope();
        PayloadCrypto.EncryptEnvelope(envelope, [new("dev_a", oldKeys.EncryptionPublicKey)], EncryptionKeyPair.Generate().PublicKey);
        var oldStep = new EndToEndPayload(oldKeys, "dev_a");
        var newStep = new EndToEndPayload(newKeys, "dev_a");
        Assert.That(oldStep.OpenInput(envelope, envelope.InputManifest.Payload).ToByteArray(), Is.Not.Empty);
        Assert.Throws<PayloadCryptoException>(() => newStep.OpenInput(envelope, envelope.InputManifest.Payload));
    }

    [Test]
    public void Plan_signature_covers_network_and_recipients()
    {
        var control = SigningKeyPair.Generate();
        var recipients = new[] { new RecipientKey { DeviceId = "dev_a", EncryptionPublicKey = ByteString.CopyFrom(new byte[32]) } };
        var signature = control.Sign(PayloadCrypto.PlanSignatureMessage("net_a", recipients));
        Assert.That(SigningKeyPair.Verify(control.PublicKey, PayloadCrypto.PlanSignatureMessage("net_a", recipients), signature), Is.True);
        Assert.That(SigningKeyPair.Verify(control.PublicKey, PayloadCrypto.PlanSignatureMessage("net_b", recipients), signature), Is.False);
        recipients[0].DeviceId = "dev_evil";
        Assert.That(SigningKeyPair.Verify(control.PublicKey, PayloadCrypto.PlanSignatureMessage("net_a", recipients), signature), Is.False);
    }

    internal static bool Contains(ReadOnlySpan<byte> haystack, ReadOnlySpan<byte> needle) => haystack.IndexOf(needle) >= 0;
}

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

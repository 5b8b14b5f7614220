using Google.Protobuf;
using MeshAI.Agent.State;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Agent.Jobs;

/// <summary>
/// The agent's one step of end-to-end payload encryption (docs/security.md): opens an encrypted envelope's payload with
/// this device's X25519 key before the workload decodes it, and seals the workload's output back to the submitter's key
/// before it leaves the device. Unencrypted envelopes pass through unchanged.
/// </summary>
public sealed class EndToEndPayload(AgentKeys keys, string deviceId)
{
    private readonly EncryptionKeyPair _key = new(keys.EncryptionPrivateKey, keys.EncryptionPublicKey);

    /// <summary>The payload bytes the workload should decode (plaintext); throws <see cref="PayloadCryptoException"/> when it cannot be opened.</summary>
    public ByteString OpenInput(JobEnvelope envelope, ByteString offeredPayload)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        if (!PayloadCrypto.IsEncrypted(envelope))
        {
            return offeredPayload;
        }

        return ByteString.CopyFrom(PayloadCrypto.DecryptEnvelope(envelope, deviceId, _key));
    }

    /// <summary>
    /// A streamed token as it leaves the device: sealed to the submitter (token = ephemeral key ‖ ciphertext, with its nonce)
    /// when the job came encrypted, the plain UTF-8 text (empty nonce) otherwise. Clients open it like a result.
    /// </summary>
    public static (ByteString Token, ByteString Nonce) SealToken(JobEnvelope envelope, string jobId, string text)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        if (!PayloadCrypto.IsEncrypted(envelope))
        {
            return (ByteString.CopyFromUtf8(text), ByteString.Empty);
        }

        var (sealedToken, nonce) = PayloadCrypto.SealToSubmitter(System.Text.Encoding.UTF8.GetBytes(text), envelope.PayloadEncryption.SubmitterPublicKey.Span, jobId);
        return (ByteString.CopyFrom(sealedToken), ByteString.CopyFrom(nonce));
    }

    /// <summary>Seals <paramref name="result"/>'s output to the submitter when the job came encrypted.</summary>
    public static JobResult SealResult(JobEnvelope envelope, JobResult result)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        ArgumentNullException.ThrowIfNull(result);
        if (!PayloadCrypto.IsEncrypted(envelope))
        {
            return result;
        }

        var (sealedOutput, nonce) = PayloadCrypto.SealToSubmitter(result.Output.Span, envelope.PayloadEncryption.SubmitterPublicKey.Span, result.JobId);
        result.Output = ByteString.CopyFrom(sealedOutput);
        result.Nonce = ByteString.CopyFrom(nonce);
        result.Encrypted = true;
        return result;
    }
}

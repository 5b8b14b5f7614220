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
    // Imported into NSec's guarded memory once per session instead of once per open (each import is a sodium_malloc: guard
    // pages, mprotect). Made from this session's keys only: a re-enrolled device (new keys) gets a new session and a new
    // import. Freed by its SafeHandle when the session is collected.
    private readonly ImportedEncryptionKey _key = ImportedEncryptionKey.Import(new EncryptionKeyPair(keys.EncryptionPrivateKey, keys.EncryptionPublicKey));

    /// <summary>The payload bytes the workload should decode (plaintext); throws <see cref="PayloadCryptoException"/> when it cannot be opened.</summary>
    public ByteString OpenInput(JobEnvelope envelope, ByteString offeredPayload)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        if (!PayloadCrypto.IsEncrypted(envelope))
        {
            return offeredPayload;
        }

        // The plaintext array is ours alone (fresh from the decryption): wrapped, not copied.
        return UnsafeByteOperations.UnsafeWrap(PayloadCrypto.DecryptEnvelope(envelope, deviceId, _key));
    }

    /// <summary>
    /// The token stream of one job on this device (chat resume, docs/chat-resume.md): every token goes to the submitter
    /// (sealed to the submitter's key when the job came encrypted, like the result) and, for an encrypted job, also sealed
    /// under the job's resume key for a device that may have to continue the stream; <see cref="JobTokenStream.Open"/> reads what earlier attempts delivered. Throws
    /// <see cref="PayloadCryptoException"/> when the envelope's content key cannot be unwrapped here.
    /// </summary>
    public JobTokenStream TokenStream(JobEnvelope envelope, string jobId)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        if (!PayloadCrypto.IsEncrypted(envelope))
        {
            return new JobTokenStream(envelope, jobId, null);
        }

        var contentKey = PayloadCrypto.UnwrapContentKey(envelope, deviceId, _key);
        try
        {
            return new JobTokenStream(envelope, jobId, PayloadCrypto.ResumeKey(contentKey, jobId));
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(contentKey);
        }
    }

    /// <summary>
    /// The keys an encrypted job's input blobs are sealed under (docs/security.md item 9: derived from the content key this
    /// device unwraps, once per job, on the first blob); null for an unencrypted job, whose blobs are stored as uploaded.
    /// </summary>
    public InputBlobKeys? InputBlobKeys(JobEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        return PayloadCrypto.IsEncrypted(envelope) ? new InputBlobKeys(() => PayloadCrypto.UnwrapContentKey(envelope, deviceId, _key), envelope.NetworkId) : null;
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
        // Both arrays are fresh from the seal and referenced nowhere else: wrapped, not copied (a 98 KB embeddings result).
        result.Output = UnsafeByteOperations.UnsafeWrap(sealedOutput);
        result.Nonce = UnsafeByteOperations.UnsafeWrap(nonce);
        result.Encrypted = true;
        return result;
    }
}

/// <summary>
/// One encrypted job's input blob keys (<see cref="BlobSealing.InputBlobKey"/>): the content key is unwrapped on the first
/// <see cref="For"/> and kept for the job's other blobs, then zeroed by <see cref="Dispose"/> (the fetcher disposes it when
/// the job's blobs are fetched).
/// </summary>
public sealed class InputBlobKeys(Func<byte[]> unwrapContentKey, string networkId) : IDisposable
{
    private byte[]? _contentKey;

    /// <summary>The key of input blob <paramref name="blobName"/> (the caller zeroes it); throws <see cref="PayloadCryptoException"/> when the content key cannot be unwrapped here.</summary>
    public byte[] For(string blobName)
    {
        _contentKey ??= unwrapContentKey();
        return BlobSealing.InputBlobKey(_contentKey, networkId, blobName);
    }

    /// <summary>Zeroes the unwrapped content key.</summary>
    public void Dispose()
    {
        if (_contentKey is not null)
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(_contentKey);
            _contentKey = null;
        }
    }
}

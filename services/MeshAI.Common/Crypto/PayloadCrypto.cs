using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Google.Protobuf;
using MeshAI.Contracts.Job.V1;
using NSec.Cryptography;

namespace MeshAI.Common.Crypto;

/// <summary>Raised when an end-to-end encrypted payload or result cannot be opened (wrong key, tampered, malformed).</summary>
public sealed class PayloadCryptoException(string message) : Exception(message);

/// <summary>
/// End-to-end payload encryption (docs/security.md): the payload is sealed once under a random content key with
/// XChaCha20-Poly1305; the content key is wrapped for every candidate device with ephemeral X25519 → HKDF-SHA256 →
/// XChaCha20-Poly1305; results are sealed back to the submitter's X25519 key the same way. Relay and control only
/// ever handle the ciphertext.
/// </summary>
public static class PayloadCrypto
{
    /// <summary>Content key size (XChaCha20-Poly1305 key).</summary>
    public const int KeySize = 32;

    /// <summary>XChaCha20-Poly1305 nonce size.</summary>
    public const int NonceSize = 24;

    /// <summary>Raw X25519 public key size.</summary>
    public const int PublicKeySize = 32;

    private static readonly AeadAlgorithm Aead = AeadAlgorithm.XChaCha20Poly1305;
    private static readonly KeyAgreementAlgorithm Agreement = KeyAgreementAlgorithm.X25519;
    private static readonly KeyDerivationAlgorithm Kdf = KeyDerivationAlgorithm.HkdfSha256;

    /// <summary>True when the envelope's payload is end-to-end encrypted.</summary>
    public static bool IsEncrypted(JobEnvelope envelope) =>
        (envelope?.PayloadEncryption?.Scheme ?? PayloadEncryptionScheme.Unspecified) == PayloadEncryptionScheme.X25519HkdfXchacha20Poly1305;

    /// <summary>
    /// Encrypts the envelope's plaintext payload in place for <paramref name="recipients"/> (device id → X25519 public key)
    /// and records <paramref name="submitterPublicKey"/> for the result. payload_sha256 is cleared: a hash of the plaintext
    /// would let anyone holding the envelope confirm a guessed input; the AEAD tag binds the content instead.
    /// </summary>
    public static void EncryptEnvelope(JobEnvelope envelope, IEnumerable<KeyValuePair<string, byte[]>> recipients, ReadOnlySpan<byte> submitterPublicKey)
    {
        var contentKey = RandomNumberGenerator.GetBytes(KeySize);
        try
        {
            EncryptEnvelope(envelope, recipients, submitterPublicKey, contentKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(contentKey);
        }
    }

    /// <summary>
    /// As <see cref="EncryptEnvelope(JobEnvelope, IEnumerable{KeyValuePair{string, byte[]}}, ReadOnlySpan{byte})"/> with a
    /// content key the caller drew (random, 32 bytes, one job only) and zeroes: a client that seals the job's input blobs
    /// under keys derived from it (<see cref="BlobSealing.InputBlobKey"/>) draws it before uploading them.
    /// </summary>
    public static void EncryptEnvelope(JobEnvelope envelope, IEnumerable<KeyValuePair<string, byte[]>> recipients, ReadOnlySpan<byte> submitterPublicKey, ReadOnlySpan<byte> contentKey)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        ArgumentNullException.ThrowIfNull(recipients);
        if (submitterPublicKey.Length != PublicKeySize)
        {
            throw new ArgumentException("submitter key must be a raw 32-byte X25519 public key", nameof(submitterPublicKey));
        }

        if (contentKey.Length != KeySize)
        {
            throw new ArgumentException("content key must be 32 bytes", nameof(contentKey));
        }

        envelope.InputManifest ??= new InputManifest();
        var nonce = RandomNumberGenerator.GetBytes(NonceSize);
        var ciphertext = SealWithKey(contentKey, nonce, envelope.InputManifest.Payload.Span, PayloadContext(envelope));
        var encryption = new PayloadEncryption
        {
            Scheme = PayloadEncryptionScheme.X25519HkdfXchacha20Poly1305,
            PayloadNonce = ByteString.CopyFrom(nonce),
            SubmitterPublicKey = ByteString.CopyFrom(submitterPublicKey),
        };
        foreach (var (deviceId, publicKey) in recipients)
        {
            encryption.Recipients.Add(WrapKey(contentKey, deviceId, publicKey));
        }

        if (encryption.Recipients.Count == 0)
        {
            throw new ArgumentException("at least one recipient is required", nameof(recipients));
        }

        envelope.InputManifest.Payload = ByteString.CopyFrom(ciphertext);
        envelope.InputManifest.PayloadSha256 = "";
        envelope.PayloadEncryption = encryption;
    }

    /// <summary>Decrypts the payload of an encrypted envelope with this device's X25519 key.</summary>
    public static byte[] DecryptEnvelope(JobEnvelope envelope, string deviceId, EncryptionKeyPair deviceKey)
    {
        ArgumentNullException.ThrowIfNull(deviceKey);
        using var imported = ImportedEncryptionKey.Import(deviceKey);
        return DecryptEnvelope(envelope, deviceId, imported);
    }

    /// <summary>Decrypts the payload of an encrypted envelope with this device's imported X25519 key (imported once, used per job).</summary>
    public static byte[] DecryptEnvelope(JobEnvelope envelope, string deviceId, ImportedEncryptionKey deviceKey)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        ArgumentNullException.ThrowIfNull(deviceKey);
        if (!IsEncrypted(envelope))
        {
            throw new PayloadCryptoException("payload is not end-to-end encrypted");
        }

        var contentKey = UnwrapContentKey(envelope, deviceId, deviceKey);
        try
        {
            return OpenWithKey(contentKey, envelope.PayloadEncryption.PayloadNonce.Span, (envelope.InputManifest?.Payload ?? ByteString.Empty).Span, PayloadContext(envelope))
                   ?? throw new PayloadCryptoException("payload ciphertext does not authenticate");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(contentKey);
        }
    }

    /// <summary>The envelope's content key as unwrapped by one of its recipients (the caller zeroes it after use).</summary>
    public static byte[] UnwrapContentKey(JobEnvelope envelope, string deviceId, EncryptionKeyPair deviceKey)
    {
        ArgumentNullException.ThrowIfNull(deviceKey);
        using var imported = ImportedEncryptionKey.Import(deviceKey);
        return UnwrapContentKey(envelope, deviceId, imported);
    }

    /// <summary>The envelope's content key as unwrapped with the device's imported key (the caller zeroes it after use).</summary>
    public static byte[] UnwrapContentKey(JobEnvelope envelope, string deviceId, ImportedEncryptionKey deviceKey)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        ArgumentNullException.ThrowIfNull(deviceKey);
        if (!IsEncrypted(envelope))
        {
            throw new PayloadCryptoException("payload is not end-to-end encrypted");
        }

        var wrapped = envelope.PayloadEncryption.Recipients.FirstOrDefault(r => string.Equals(r.DeviceId, deviceId, StringComparison.Ordinal))
                      ?? throw new PayloadCryptoException($"the payload key was not wrapped for device {deviceId}");
        return UnwrapKey(wrapped, deviceId, deviceKey);
    }

    /// <summary>
    /// The job's resume key (chat resume, docs/chat-resume.md): HKDF-SHA256 of the payload content key with info
    /// "meshai-resume-v1\n" + job_id. Every recipient of the envelope — and nobody else — can derive it, so a device that
    /// continues a stream reads the tokens another recipient sealed under it, while relay and control see ciphertext only.
    /// </summary>
    public static byte[] ResumeKey(ReadOnlySpan<byte> contentKey, string jobId)
    {
        if (contentKey.Length != KeySize)
        {
            throw new ArgumentException("content key must be 32 bytes", nameof(contentKey));
        }

        var key = new byte[KeySize];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, contentKey, key, [], ResumeInfo(jobId));
        return key;
    }

    /// <summary>Seals token <paramref name="index"/> of a job's stream under its resume key; returns the ciphertext and its 24-byte nonce.</summary>
    public static (byte[] Sealed, byte[] Nonce) SealResumeText(ReadOnlySpan<byte> resumeKey, string jobId, int index, ReadOnlySpan<byte> plaintext)
    {
        var nonce = RandomNumberGenerator.GetBytes(NonceSize);
        return (SealWithKey(resumeKey, nonce, plaintext, ResumeContext(jobId, index)), nonce);
    }

    /// <summary>Opens what <see cref="SealResumeText"/> sealed; the index is authenticated, so tokens cannot be reordered.</summary>
    public static byte[] OpenResumeText(ReadOnlySpan<byte> resumeKey, string jobId, int index, ReadOnlySpan<byte> sealedText, ReadOnlySpan<byte> nonce) =>
        OpenWithKey(resumeKey, nonce, sealedText, ResumeContext(jobId, index))
        ?? throw new PayloadCryptoException($"resumed token {index} of job {jobId} does not authenticate");

    /// <summary>Wraps <paramref name="contentKey"/> for one device: ephemeral X25519 with its key, HKDF-SHA256, XChaCha20-Poly1305.</summary>
    public static WrappedKey WrapKey(ReadOnlySpan<byte> contentKey, string deviceId, ReadOnlySpan<byte> recipientPublicKey)
    {
        var info = WrapInfo(deviceId);
        var ephemeralPublic = new byte[PublicKeySize];
        var nonce = RandomNumberGenerator.GetBytes(NonceSize);
        var wrapped = new byte[contentKey.Length + Aead.TagSize];
        using (var key = EphemeralAeadKey(recipientPublicKey, info, ephemeralPublic))
        {
            Aead.Encrypt(key, nonce, info, contentKey, wrapped);
        }

        return new WrappedKey
        {
            DeviceId = deviceId,
            EphemeralPublicKey = ByteString.CopyFrom(ephemeralPublic),
            Nonce = ByteString.CopyFrom(nonce),
            WrappedContentKey = ByteString.CopyFrom(wrapped),
        };
    }

    /// <summary>Unwraps a content key with the recipient's private key.</summary>
    public static byte[] UnwrapKey(WrappedKey wrapped, string deviceId, EncryptionKeyPair recipient)
    {
        ArgumentNullException.ThrowIfNull(recipient);
        using var imported = ImportedEncryptionKey.Import(recipient);
        return UnwrapKey(wrapped, deviceId, imported);
    }

    /// <summary>Unwraps a content key with the recipient's imported private key.</summary>
    public static byte[] UnwrapKey(WrappedKey wrapped, string deviceId, ImportedEncryptionKey recipient)
    {
        ArgumentNullException.ThrowIfNull(wrapped);
        ArgumentNullException.ThrowIfNull(recipient);
        var key = Agree(recipient, wrapped.EphemeralPublicKey.Span, WrapInfo(deviceId));
        try
        {
            var contentKey = OpenWithKey(key, wrapped.Nonce.Span, wrapped.WrappedContentKey.Span, WrapInfo(deviceId));
            return contentKey is { Length: KeySize } ? contentKey : throw new PayloadCryptoException("wrapped key does not authenticate for this device");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>
    /// Seals a result (or streamed token) of <paramref name="jobId"/> to the submitter's X25519 key; returns
    /// ephemeral public key ‖ ciphertext and the nonce (JobResult.output / JobResult.nonce).
    /// </summary>
    public static (byte[] Sealed, byte[] Nonce) SealToSubmitter(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> submitterPublicKey, string jobId)
    {
        // One output buffer (ephemeral public ‖ ciphertext ‖ tag) written in place: a 98 KB embeddings result is encrypted
        // once and not copied again. The ephemeral key is created for this seal alone and never leaves NSec's memory.
        var info = ResultInfo(jobId);
        var nonce = RandomNumberGenerator.GetBytes(NonceSize);
        var sealedData = new byte[PublicKeySize + plaintext.Length + Aead.TagSize];
        using (var key = EphemeralAeadKey(submitterPublicKey, info, sealedData.AsSpan(0, PublicKeySize)))
        {
            Aead.Encrypt(key, nonce, info, plaintext, sealedData.AsSpan(PublicKeySize));
        }

        return (sealedData, nonce);
    }

    /// <summary>Opens what <see cref="SealToSubmitter"/> produced with the submitter's private key.</summary>
    public static byte[] OpenFromDevice(ReadOnlySpan<byte> sealedData, ReadOnlySpan<byte> nonce, EncryptionKeyPair submitter, string jobId)
    {
        ArgumentNullException.ThrowIfNull(submitter);
        using var imported = ImportedEncryptionKey.Import(submitter);
        return OpenFromDevice(sealedData, nonce, imported, jobId);
    }

    /// <summary>Opens what <see cref="SealToSubmitter"/> produced with the submitter's imported private key.</summary>
    public static byte[] OpenFromDevice(ReadOnlySpan<byte> sealedData, ReadOnlySpan<byte> nonce, ImportedEncryptionKey submitter, string jobId)
    {
        ArgumentNullException.ThrowIfNull(submitter);
        if (sealedData.Length < PublicKeySize + Aead.TagSize)
        {
            throw new PayloadCryptoException("sealed result is too short");
        }

        var key = Agree(submitter, sealedData[..PublicKeySize], ResultInfo(jobId));
        try
        {
            return OpenWithKey(key, nonce, sealedData[PublicKeySize..], ResultInfo(jobId))
                   ?? throw new PayloadCryptoException($"result of job {jobId} does not authenticate with this submitter key");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>The bytes control signs in PlanJobResponse.signature: a domain tag, the network id and the serialized recipients.</summary>
    public static byte[] PlanSignatureMessage(string networkId, IEnumerable<RecipientKey> recipients)
    {
        var list = new PlanJobResponse();
        list.Recipients.Add(recipients);
        return [.. Encoding.UTF8.GetBytes("meshai-plan-v1\n" + networkId + "\n"), .. list.ToByteArray()];
    }

    private static byte[] PayloadContext(JobEnvelope envelope) =>
        Encoding.UTF8.GetBytes("meshai-payload-v1\n" + envelope.NetworkId + "\n" + ((int)envelope.WorkloadId).ToString(CultureInfo.InvariantCulture));

    private static byte[] WrapInfo(string deviceId) => Encoding.UTF8.GetBytes("meshai-wrap-v1\n" + deviceId);

    private static byte[] ResultInfo(string jobId) => Encoding.UTF8.GetBytes("meshai-result-v1\n" + jobId);

    private static byte[] ResumeInfo(string jobId) => Encoding.UTF8.GetBytes("meshai-resume-v1\n" + jobId);

    private static byte[] ResumeContext(string jobId, int index) =>
        Encoding.UTF8.GetBytes("meshai-resume-v1\n" + jobId + "\n" + index.ToString(CultureInfo.InvariantCulture));

    // An ephemeral X25519 agreement with the recipient, HKDF-SHA256 straight into an XChaCha20-Poly1305 key (the same bytes
    // Derive produces on the opening side). The one sealing side of wrapped keys and results; writes the ephemeral public key to ephemeralPublicOut.
    private static Key EphemeralAeadKey(ReadOnlySpan<byte> recipientPublicKey, byte[] info, Span<byte> ephemeralPublicOut)
    {
        if (recipientPublicKey.Length != PublicKeySize)
        {
            throw new ArgumentException("recipient key must be a raw 32-byte X25519 public key", nameof(recipientPublicKey));
        }

        if (!PublicKey.TryImport(Agreement, recipientPublicKey, KeyBlobFormat.RawPublicKey, out var peer) || peer is null)
        {
            throw new PayloadCryptoException("peer key is not a valid X25519 public key");
        }

        using var ephemeral = Key.Create(Agreement);
        if (!ephemeral.PublicKey.TryExport(KeyBlobFormat.RawPublicKey, ephemeralPublicOut, out var written) || written != PublicKeySize)
        {
            throw new PayloadCryptoException("ephemeral key export failed");
        }

        using var shared = Agreement.Agree(ephemeral, peer) ?? throw new PayloadCryptoException("key agreement failed (low-order point)");
        Span<byte> salt = stackalloc byte[2 * PublicKeySize];
        ephemeralPublicOut[..PublicKeySize].CopyTo(salt);
        recipientPublicKey.CopyTo(salt[PublicKeySize..]);
        return Kdf.DeriveKey(shared, salt, info, Aead);
    }

    private static byte[] Agree(ImportedEncryptionKey own, ReadOnlySpan<byte> ephemeralPublic, byte[] info)
    {
        if (ephemeralPublic.Length != PublicKeySize)
        {
            throw new PayloadCryptoException("ephemeral key must be 32 bytes");
        }

        return Derive(own.Key, ephemeralPublic, ephemeralPublic, own.PublicKey, info);
    }

    // HKDF-SHA256(ikm = X25519(private, peer), salt = ephemeral public ‖ recipient public, info = context).
    private static byte[] Derive(Key privateKey, ReadOnlySpan<byte> peerPublic, ReadOnlySpan<byte> ephemeralPublic, ReadOnlySpan<byte> recipientPublic, byte[] info)
    {
        if (!PublicKey.TryImport(Agreement, peerPublic, KeyBlobFormat.RawPublicKey, out var peer) || peer is null)
        {
            throw new PayloadCryptoException("peer key is not a valid X25519 public key");
        }

        using var shared = Agreement.Agree(privateKey, peer) ?? throw new PayloadCryptoException("key agreement failed (low-order point)");
        byte[] salt = [.. ephemeralPublic, .. recipientPublic];
        return Kdf.DeriveBytes(shared, salt, info, KeySize);
    }

    private static byte[] SealWithKey(ReadOnlySpan<byte> rawKey, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        using var key = Key.Import(Aead, rawKey, KeyBlobFormat.RawSymmetricKey);
        return Aead.Encrypt(key, nonce, associatedData, plaintext);
    }

    private static byte[]? OpenWithKey(ReadOnlySpan<byte> rawKey, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> associatedData)
    {
        if (nonce.Length != NonceSize || ciphertext.Length < Aead.TagSize)
        {
            return null;
        }

        using var key = Key.Import(Aead, rawKey, KeyBlobFormat.RawSymmetricKey);
        var plaintext = new byte[ciphertext.Length - Aead.TagSize];
        return Aead.Decrypt(key, nonce, associatedData, ciphertext, plaintext) ? plaintext : null;
    }
}

/// <summary>
/// A device's (or submitter's) X25519 private key imported once into NSec's guarded memory, for the many opens and unwraps
/// of a long-lived holder (the agent's relay session): <see cref="PayloadCrypto"/>'s <see cref="EncryptionKeyPair"/> overloads
/// import the private key per call instead. It is made from the key's bytes once and never changes: a rotated key is a new
/// <see cref="EncryptionKeyPair"/> and needs a new instance (docs/security.md). Dispose to free the guarded memory.
/// </summary>
public sealed class ImportedEncryptionKey : IDisposable
{
    private ImportedEncryptionKey(Key key, byte[] publicKey)
    {
        Key = key;
        PublicKey = publicKey;
    }

    /// <summary>The raw 32-byte public key of the pair.</summary>
    public byte[] PublicKey { get; }

    internal Key Key { get; }

    /// <summary>Imports <paramref name="pair"/>'s private key (the public key is copied).</summary>
    public static ImportedEncryptionKey Import(EncryptionKeyPair pair)
    {
        ArgumentNullException.ThrowIfNull(pair);
        if (pair.PublicKey.Length != PayloadCrypto.PublicKeySize)
        {
            throw new ArgumentException("public key must be a raw 32-byte X25519 public key", nameof(pair));
        }

        return new ImportedEncryptionKey(Key.Import(KeyAgreementAlgorithm.X25519, pair.PrivateKey, KeyBlobFormat.RawPrivateKey), [.. pair.PublicKey]);
    }

    /// <inheritdoc />
    public void Dispose() => Key.Dispose();
}

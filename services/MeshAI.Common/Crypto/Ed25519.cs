using NSec.Cryptography;

namespace MeshAI.Common.Crypto;

/// <summary>An ed25519 signing key pair held as raw bytes (32-byte private seed, 32-byte public key).</summary>
public sealed record SigningKeyPair(byte[] PrivateKey, byte[] PublicKey)
{
    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;

    // The imported NSec key, made on the first Sign and kept with this pair (#11): importing a raw seed allocates libsodium
    // guarded memory (mmap + mprotect) and derives the public key (a scalar multiplication), which cost more than the
    // signature itself on every placement ticket. The seed is already in this object's managed memory, so keeping the
    // imported copy exposes nothing new; the key's SafeHandle frees its secure memory when this pair is collected.
    private Key? _key;

    /// <summary>Generates a new key pair.</summary>
    public static SigningKeyPair Generate()
    {
        using var key = Key.Create(Algorithm, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return new SigningKeyPair(key.Export(KeyBlobFormat.RawPrivateKey), key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    /// <summary>Signs the data.</summary>
    public byte[] Sign(ReadOnlySpan<byte> data)
    {
        var key = Volatile.Read(ref _key);
        if (key is null)
        {
            var imported = Key.Import(Algorithm, PrivateKey, KeyBlobFormat.RawPrivateKey);
            key = Interlocked.CompareExchange(ref _key, imported, null) ?? imported;
            if (!ReferenceEquals(key, imported))
            {
                imported.Dispose(); // another thread imported it first
            }
        }

        return Algorithm.Sign(key, data);
    }

    // A `with` copy may carry another seed: it imports its own key instead of copying this one.
    private SigningKeyPair(SigningKeyPair original)
    {
        PrivateKey = original.PrivateKey;
        PublicKey = original.PublicKey;
    }

    /// <summary>Equal when both hold the same key arrays (the record's own rule; the cached import is not part of it).</summary>
    public bool Equals(SigningKeyPair? other) =>
        other is not null && ReferenceEquals(PrivateKey, other.PrivateKey) && ReferenceEquals(PublicKey, other.PublicKey);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(PrivateKey, PublicKey);

    /// <summary>Verifies an ed25519 signature; false for malformed keys or signatures.</summary>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != Algorithm.PublicKeySize || signature.Length != Algorithm.SignatureSize)
        {
            return false;
        }

        if (!NSec.Cryptography.PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out var key) || key is null)
        {
            return false;
        }

        return Algorithm.Verify(key, data, signature);
    }

    /// <summary>Short id of a public key: first 16 hex chars of its SHA-256.</summary>
    public static string KeyId(ReadOnlySpan<byte> publicKey) => "k_" + Secrets.Sha256Hex(publicKey)[..16];
}

/// <summary>An X25519 key pair for payload encryption, as raw bytes.</summary>
public sealed record EncryptionKeyPair(byte[] PrivateKey, byte[] PublicKey)
{
    /// <summary>Generates a new key pair.</summary>
    public static EncryptionKeyPair Generate()
    {
        var algorithm = KeyAgreementAlgorithm.X25519;
        using var key = Key.Create(algorithm, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return new EncryptionKeyPair(key.Export(KeyBlobFormat.RawPrivateKey), key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }
}

using NSec.Cryptography;

namespace MeshAI.Common.Crypto;

/// <summary>An ed25519 signing key pair held as raw bytes (32-byte private seed, 32-byte public key).</summary>
public sealed record SigningKeyPair(byte[] PrivateKey, byte[] PublicKey)
{
    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;

    /// <summary>Generates a new key pair.</summary>
    public static SigningKeyPair Generate()
    {
        using var key = Key.Create(Algorithm, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return new SigningKeyPair(key.Export(KeyBlobFormat.RawPrivateKey), key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    /// <summary>Signs the data.</summary>
    public byte[] Sign(ReadOnlySpan<byte> data)
    {
        using var key = Key.Import(Algorithm, PrivateKey, KeyBlobFormat.RawPrivateKey);
        return Algorithm.Sign(key, data);
    }

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

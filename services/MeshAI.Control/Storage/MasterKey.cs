using System.Security.Cryptography;

namespace MeshAI.Control.Storage;

/// <summary>The server master key (<c>&lt;data-dir&gt;/master.key</c>, 32 random bytes, mode 0600) that encrypts private keys at rest with AES-256-GCM.</summary>
public sealed class MasterKey
{
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private readonly byte[] _key;

    private MasterKey(byte[] key) => _key = key;

    /// <summary>Loads the key file, creating it (0600) on first start.</summary>
    public static MasterKey LoadOrCreate(string path)
    {
        if (File.Exists(path))
        {
            var existing = File.ReadAllBytes(path);
            if (existing.Length != 32)
            {
                throw new InvalidOperationException($"master key {path} must be 32 bytes");
            }

            return new MasterKey(existing);
        }

        MeshAI.Common.PrivateFiles.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var key = RandomNumberGenerator.GetBytes(32);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using var stream = new FileStream(path, options);
            stream.Write(key);
        }
        catch (IOException) when (File.Exists(path))
        {
            return LoadOrCreate(path); // another process created it first
        }

        return new MasterKey(key);
    }

    /// <summary>nonce ‖ tag ‖ ciphertext, bound to <paramref name="context"/> (the key id) as associated data.</summary>
    public byte[] Encrypt(ReadOnlySpan<byte> plaintext, string context)
    {
        var output = new byte[NonceSize + TagSize + plaintext.Length];
        var nonce = output.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_key, TagSize);
        aes.Encrypt(nonce, plaintext, output.AsSpan(NonceSize + TagSize), output.AsSpan(NonceSize, TagSize), System.Text.Encoding.UTF8.GetBytes(context));
        return output;
    }

    /// <summary>Reverses <see cref="Encrypt"/>; throws when the data or context was tampered with.</summary>
    public byte[] Decrypt(ReadOnlySpan<byte> sealedData, string context)
    {
        var plaintext = new byte[sealedData.Length - NonceSize - TagSize];
        using var aes = new AesGcm(_key, TagSize);
        aes.Decrypt(sealedData[..NonceSize], sealedData[(NonceSize + TagSize)..], sealedData.Slice(NonceSize, TagSize), plaintext, System.Text.Encoding.UTF8.GetBytes(context));
        return plaintext;
    }
}

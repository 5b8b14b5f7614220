using System.Security.Cryptography;
using System.Text;

namespace MeshAI.Common.Crypto;

/// <summary>Opaque bearer secrets (session tokens, join tokens, API keys) and their stored hashes.</summary>
public static class Secrets
{
    /// <summary>A new secret: prefix + 32 random bytes, base64url.</summary>
    public static string NewToken(string prefix)
    {
        return prefix + "_" + Base64Url(RandomNumberGenerator.GetBytes(32));
    }

    /// <summary>Hex SHA-256 of the secret: what the server stores instead of the secret.</summary>
    public static string Hash(string secret) => Sha256Hex(Encoding.UTF8.GetBytes(secret));

    /// <summary>Lower-case hex SHA-256.</summary>
    public static string Sha256Hex(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));

    /// <summary>Base64url without padding.</summary>
    public static string Base64Url(ReadOnlySpan<byte> data) =>
        Convert.ToBase64String(data).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>A short human code like "KXQF-7TRM" (no ambiguous characters).</summary>
    public static string NewUserCode()
    {
        const string alphabet = "BCDFGHJKLMNPQRSTVWXZ23456789";
        var a = RandomNumberGenerator.GetString(alphabet, 4);
        var b = RandomNumberGenerator.GetString(alphabet, 4);
        return a + "-" + b;
    }

    /// <summary>Constant-time comparison of two hex hashes.</summary>
    public static bool HashEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(a), Encoding.ASCII.GetBytes(b));
}

using System.Security.Cryptography;

namespace MeshAI.Common;

/// <summary>Type-prefixed identifiers ("net_…", "dev_…", "job_…") and random secrets.</summary>
public static class Ids
{
    private const string Alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

    /// <summary>A new id: prefix, underscore, 20 random base-36 characters.</summary>
    public static string New(string prefix) => prefix + "_" + RandomString(20);

    /// <summary>Random lower-case alphanumeric string of the given length.</summary>
    public static string RandomString(int length)
    {
        return RandomNumberGenerator.GetString(Alphabet, length);
    }

    /// <summary>True when the id is non-empty, has the prefix and only id characters.</summary>
    public static bool IsValid(string? id, string prefix)
    {
        if (string.IsNullOrEmpty(id) || id.Length > 64 || !id.StartsWith(prefix + "_", StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var c in id.AsSpan(prefix.Length + 1))
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '-')
            {
                return false;
            }
        }

        return true;
    }
}

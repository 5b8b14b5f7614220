using System.Globalization;
using MeshAI.Common.Domain;

namespace MeshAI.Cli.Output;

/// <summary>Integer micro-credits as credits with six decimals ("0.066667"), and back.</summary>
public static class Credits
{
    /// <summary>"12.500000", "-0.066667".</summary>
    public static string Format(long micro) => Money.Credits(micro);

    /// <summary>Credits (up to six decimals) to micro-credits; false for negative, malformed or overlong values.</summary>
    public static bool TryParse(string? text, out long micro)
    {
        micro = 0;
        if (!decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var credits) ||
            credits < 0 || decimal.Round(credits, 6) != credits || credits > long.MaxValue / Tiers.MicroPerCredit)
        {
            return false;
        }

        micro = (long)(credits * Tiers.MicroPerCredit);
        return true;
    }
}

using System.Globalization;
using System.Text;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Domain;
using MeshAI.Contracts.Common.V1;

namespace MeshAI.Cli.Output;

/// <summary>Human spellings of enums, tiers, times and durations.</summary>
public static class Display
{
    /// <summary>A proto enum value as the spec spells it: RoutingMode.PinnedDevice → "pinned_device", Tier._2 → "tier2", unspecified → "-".</summary>
    public static string Name<TEnum>(TEnum value)
        where TEnum : struct, System.Enum
    {
        if (value is Tier tier)
        {
            return tier == Tier.Unspecified ? "-" : Tiers.Name(tier);
        }

        if (Convert.ToInt32(value, CultureInfo.InvariantCulture) == 0)
        {
            return "-";
        }

        return Snake(value.ToString());
    }

    /// <summary>"PinnedDevice" → "pinned_device".</summary>
    public static string Snake(string pascal)
    {
        ArgumentNullException.ThrowIfNull(pascal);
        var builder = new StringBuilder(pascal.Length + 4);
        for (var i = 0; i < pascal.Length; i++)
        {
            var c = pascal[i];
            if (char.IsUpper(c) && i > 0 && pascal[i - 1] != '_')
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(c));
        }

        return builder.ToString().TrimStart('_');
    }

    /// <summary>"2025-01-02 03:04:05Z", or "-" when unset.</summary>
    public static string Time(Timestamp? time) =>
        time is null || (time.Seconds == 0 && time.Nanos == 0)
            ? "-"
            : time.ToDateTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>"123 ms", "-" for zero.</summary>
    public static string Millis(long ms) => ms <= 0 ? "-" : ms.ToString(CultureInfo.InvariantCulture) + " ms";

    /// <summary>"15.9 s", "-" for zero.</summary>
    public static string Seconds(long ms) => ms <= 0 ? "-" : (ms / 1000.0).ToString("0.0", CultureInfo.InvariantCulture) + " s";

    /// <summary>Invariant integer text.</summary>
    public static string Int(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Shortens <paramref name="text"/> to <paramref name="max"/> characters with an ellipsis.</summary>
    public static string Clip(string text, int max)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = text.ReplaceLineEndings(" ");
        return text.Length <= max ? text : text[..(max - 1)] + "…";
    }
}

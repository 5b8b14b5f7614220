using System.Globalization;
using System.Text;
using MeshAI.Common.Errors;

namespace MeshAI.Control.Storage;

/// <summary>Opaque keyset-pagination cursors (base64url of "time|id" or a sequence number).</summary>
public static class PageTokens
{
    /// <summary>Encodes a (time, id) cursor.</summary>
    public static string EncodeTimeId(long timeMs, string id) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(timeMs.ToString(CultureInfo.InvariantCulture) + "|" + id));

    /// <summary>Decodes a (time, id) cursor; the defaults when empty; INVALID_ARGUMENT when malformed.</summary>
    public static (long TimeMs, string Id) DecodeTimeId(string? token, long defaultTime, string defaultId)
    {
        if (string.IsNullOrEmpty(token))
        {
            return (defaultTime, defaultId);
        }

        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(token));
            var bar = text.IndexOf('|', StringComparison.Ordinal);
            return (long.Parse(text[..bar], CultureInfo.InvariantCulture), text[(bar + 1)..]);
        }
        catch (Exception e) when (e is FormatException or ArgumentOutOfRangeException or OverflowException)
        {
            throw RpcErrors.InvalidArgument("page_token", "malformed page token");
        }
    }

    /// <summary>Encodes an id-only or sequence cursor.</summary>
    public static string EncodeId(string id) => Convert.ToBase64String(Encoding.UTF8.GetBytes(id));

    /// <summary>Decodes an id-only cursor ("" when empty).</summary>
    public static string DecodeId(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return "";
        }

        try
        {
            return Encoding.UTF8.GetString(Convert.FromBase64String(token));
        }
        catch (FormatException)
        {
            throw RpcErrors.InvalidArgument("page_token", "malformed page token");
        }
    }

    /// <summary>Clamps a requested page size to [1, max], using the default for 0.</summary>
    public static int Size(int requested, ControlLimits limits) =>
        requested <= 0 ? limits.DefaultPageSize : Math.Min(requested, limits.MaxPageSize);
}

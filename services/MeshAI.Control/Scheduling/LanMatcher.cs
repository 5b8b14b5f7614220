using System.Net;
using MeshAI.Contracts.Device.V1;

namespace MeshAI.Control.Scheduling;

/// <summary>
/// Where the submitter is, for local_prefer routing: the address the server saw the SubmitJob call come from, plus any
/// LAN prefixes the client reported itself (label <see cref="ClientLanLabel"/>, comma-separated CIDRs).
/// </summary>
public sealed class SubmitterLocation
{
    /// <summary>Input-manifest label a client may set with its own LAN prefixes ("192.168.1.23/24,fd00::5/64").</summary>
    public const string ClientLanLabel = "meshai.client_lan";

    /// <summary>Nobody known.</summary>
    public static SubmitterLocation Unknown { get; } = new(null, []);

    /// <summary>Creates a location.</summary>
    public SubmitterLocation(IPAddress? observed, IReadOnlyList<IPNetwork> reported)
    {
        Observed = observed is { IsIPv4MappedToIPv6: true } ? observed.MapToIPv4() : observed;
        Reported = reported;
    }

    /// <summary>The peer address of the submit call.</summary>
    public IPAddress? Observed { get; }

    /// <summary>The client's own LAN prefixes.</summary>
    public IReadOnlyList<IPNetwork> Reported { get; }

    /// <summary>From a gRPC peer string ("ipv4:10.0.0.5:5123", "ipv6:[::1]:5123") and the envelope's labels.</summary>
    public static SubmitterLocation From(string? grpcPeer, IReadOnlyDictionary<string, string>? labels)
    {
        IPAddress? observed = null;
        if (!string.IsNullOrEmpty(grpcPeer))
        {
            var text = grpcPeer;
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            text = colon >= 0 ? text[(colon + 1)..] : text;
            if (text.StartsWith('['))
            {
                var end = text.IndexOf(']', StringComparison.Ordinal);
                text = end > 0 ? text[1..end] : text;
            }
            else if (text.Count(c => c == ':') == 1)
            {
                text = text[..text.IndexOf(':', StringComparison.Ordinal)];
            }

            observed = IPAddress.TryParse(text, out var ip) ? ip : null;
        }

        var reported = new List<IPNetwork>();
        if (labels is not null && labels.TryGetValue(ClientLanLabel, out var lan))
        {
            foreach (var part in lan.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Take(16))
            {
                if (LanMatcher.TryParseInterface(part, out var network))
                {
                    reported.Add(network);
                }
            }
        }

        return observed is null && reported.Count == 0 ? Unknown : new SubmitterLocation(observed, reported);
    }
}

/// <summary>
/// LAN detection (docs/scheduling.md): a device is on the submitter's LAN when the submitter's observed address lies in
/// one of the device's reported LAN prefixes (server and submitter on the same LAN), or when a prefix the client reported
/// is the same network as one of the device's (both behind the same router, server anywhere).
/// </summary>
public static class LanMatcher
{
    /// <summary>Parses an interface address with its prefix ("192.168.1.23/24") into its network (192.168.1.0/24).</summary>
    public static bool TryParseInterface(string cidr, out IPNetwork network)
    {
        network = default;
        var slash = (cidr ?? "").IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || !IPAddress.TryParse(cidr![..slash], out var address) ||
            !int.TryParse(cidr[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var prefix))
        {
            return false;
        }

        var bits = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
        if (prefix < 1 || prefix > bits)
        {
            return false;
        }

        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(prefix - (i * 8), 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - keep));
        }

        network = new IPNetwork(new IPAddress(bytes), prefix);
        return true;
    }

    /// <summary>True when the device is on the submitter's LAN.</summary>
    public static bool SameLan(SubmitterLocation submitter, CapabilityReport caps)
    {
        ArgumentNullException.ThrowIfNull(submitter);
        ArgumentNullException.ThrowIfNull(caps);
        if (submitter.Observed is null && submitter.Reported.Count == 0)
        {
            return false;
        }

        foreach (var cidr in caps.LanAddresses)
        {
            if (!TryParseInterface(cidr, out var network))
            {
                continue;
            }

            if (submitter.Observed is { } ip && !IPAddress.IsLoopback(ip) && network.Contains(ip))
            {
                return true;
            }

            foreach (var reported in submitter.Reported)
            {
                if (reported.Equals(network))
                {
                    return true;
                }
            }
        }

        return false;
    }
}

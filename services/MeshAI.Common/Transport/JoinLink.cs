using System.Web;

namespace MeshAI.Common.Transport;

/// <summary>A device join link: "meshai://join?server=…&amp;token=…&amp;fp=…" (also the QR payload).</summary>
public sealed record JoinLink(string ServerUrl, string Token, string Fingerprint)
{
    /// <summary>The link text.</summary>
    public override string ToString() =>
        "meshai://join?server=" + Uri.EscapeDataString(ServerUrl) + "&token=" + Uri.EscapeDataString(Token) + "&fp=" + Fingerprint;

    /// <summary>Path of the web contributor page on the server (a browser joins there as a device).</summary>
    public const string WebContributorPath = "/contribute";

    /// <summary>
    /// The same one-use token as a link a phone's camera opens in its browser: "https://server/contribute#token=…". The token
    /// sits in the fragment, which browsers never send to the server (no request line, no Referer).
    /// </summary>
    public static string WebContributorLink(string serverUrl, string token)
    {
        ArgumentNullException.ThrowIfNull(serverUrl);
        return serverUrl.TrimEnd('/') + WebContributorPath + "#token=" + Uri.EscapeDataString(token);
    }

    /// <summary>Parses a link; false when it is not a well-formed MeshAI join link.</summary>
    public static bool TryParse(string? text, out JoinLink? link)
    {
        link = null;
        if (string.IsNullOrWhiteSpace(text) || !Uri.TryCreate(text.Trim(), UriKind.Absolute, out var uri) ||
            uri.Scheme != "meshai" || uri.Host != "join")
        {
            return false;
        }

        var query = HttpUtility.ParseQueryString(uri.Query);
        var server = query["server"];
        var token = query["token"];
        if (string.IsNullOrEmpty(server) || string.IsNullOrEmpty(token) ||
            !Uri.TryCreate(server, UriKind.Absolute, out var serverUri) || (serverUri.Scheme != "https" && serverUri.Scheme != "http"))
        {
            return false;
        }

        link = new JoinLink(server, token, query["fp"] ?? "");
        return true;
    }
}

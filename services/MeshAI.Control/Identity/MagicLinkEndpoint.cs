using System.Net;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Identity;

/// <summary>GET /auth/magic?token=…: the plain HTTP end of a magic link (approves a pending CLI login, or signs the browser in).</summary>
public static class MagicLinkEndpoint
{
    /// <summary>The route.</summary>
    public const string Path = "/auth/magic";

    /// <summary>
    /// Handles the request. A link that approves a terminal's device-code login gets a small HTML page. Every other link goes
    /// on to the dashboard's sign-in page when the host serves one: the page exchanges the token itself (so the session never
    /// appears in HTML) and shows the server's reason when the link is used or expired. Without a dashboard: the HTML page.
    /// </summary>
    public static async Task<IResult> HandleAsync(string? token, string? next, LoginFlows logins, IOptions<ControlPlaneOptions> options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            if (options.Value.BrowserSignInPath is { Length: > 0 } signInPage && !await logins.IsDeviceLoginLinkAsync(token ?? "", cancellationToken))
            {
                var target = signInPage + "?token=" + Uri.EscapeDataString(token ?? "") + (string.IsNullOrEmpty(next) ? "" : "&next=" + Uri.EscapeDataString(next));
                return Results.Redirect(target);
            }

            var done = await logins.CompleteFromBrowserAsync(token ?? "", cancellationToken);
            var who = WebUtility.HtmlEncode(done.User.Email);
            var body = done.ApprovedDeviceLogin
                ? $"<p>Signed in as <b>{who}</b>. Your terminal is approved; you can close this page.</p>"
                : done.SessionToken is not null
                    ? $"<p>Signed in as <b>{who}</b>.</p><p>Session token (keep it secret): <code>{WebUtility.HtmlEncode(done.SessionToken)}</code></p>"
                    : $"<p>Signed in as <b>{who}</b>, but the terminal login had expired; start it again.</p>";
            return Page("Signed in", body, StatusCodes.Status200OK);
        }
        catch (RpcException e)
        {
            return Page("Link not valid", $"<p>{WebUtility.HtmlEncode(e.Status.Detail)}</p>", StatusCodes.Status400BadRequest);
        }
    }

    private static IResult Page(string title, string body, int status) =>
        Results.Content(
            $"<!doctype html><html><head><meta charset=\"utf-8\"><title>MeshAI — {title}</title></head><body><h1>{title}</h1>{body}</body></html>",
            "text/html; charset=utf-8", System.Text.Encoding.UTF8, status);
}

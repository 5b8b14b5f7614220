using System.Globalization;
using System.Net;
using System.Net.Mail;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Identity;

/// <summary>Delivers magic-link mail.</summary>
public interface IMagicLinkSender
{
    /// <summary>Sends the link (and the user code of a pending device login, when there is one).</summary>
    Task SendAsync(string email, string link, string? userCode, CancellationToken cancellationToken);
}

/// <summary>Shared text of the magic-link mail; the outbox contract requires the "Link: …" line.</summary>
internal static class MagicLinkMail
{
    public const string Subject = "Your MeshAI sign-in link";

    public static string Body(string link, string? userCode) =>
        "Open this link to sign in to MeshAI:\r\n\r\n" +
        "Link: " + link + "\r\n" +
        (userCode is null ? "" : "\r\nConfirm that your terminal shows the code " + userCode + ".\r\n") +
        "\r\nIf you did not ask for this, ignore this mail.\r\n";
}

/// <summary>Writes each mail to <c>&lt;data-dir&gt;/outbox/&lt;yyyyMMddHHmmssfff&gt;-&lt;email&gt;.eml</c> (the default with no SMTP).</summary>
public sealed class OutboxMagicLinkSender(IOptions<ControlPlaneOptions> options, TimeProvider clock, ILogger<OutboxMagicLinkSender> logger) : IMagicLinkSender
{
    /// <inheritdoc />
    public async Task SendAsync(string email, string link, string? userCode, CancellationToken cancellationToken)
    {
        // The outbox holds sign-in links: only the server's user may list or read it (0700 folder, 0600 files from creation).
        var outbox = MeshAI.Common.PrivateFiles.CreateDirectory(Path.Combine(options.Value.DataDir, "outbox"));
        var now = clock.GetUtcNow();
        var safeEmail = string.Concat(email.Select(c => char.IsAsciiLetterOrDigit(c) || c is '@' or '.' or '-' or '_' or '+' ? c : '_'));
        var path = Path.Combine(outbox, now.ToString("yyyyMMddHHmmssfff", CultureInfo.InvariantCulture) + "-" + safeEmail + ".eml");
        var text = "To: " + email + "\r\nSubject: " + MagicLinkMail.Subject + "\r\nDate: " + now.ToString("r", CultureInfo.InvariantCulture) +
                   "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + MagicLinkMail.Body(link, userCode);
        await MeshAI.Common.PrivateFiles.WriteAllBytesAsync(path, System.Text.Encoding.UTF8.GetBytes(text), cancellationToken);

        logger.LogInformation("Magic link for {Email} written to {Path}", email, path);
    }
}

/// <summary>Sends magic-link mail through SMTP (System.Net.Mail). Not covered by automated tests.</summary>
public sealed class SmtpMagicLinkSender(IOptions<ControlPlaneOptions> options) : IMagicLinkSender
{
    /// <inheritdoc />
    public async Task SendAsync(string email, string link, string? userCode, CancellationToken cancellationToken)
    {
        var smtp = options.Value.Smtp;
        using var client = new SmtpClient(smtp.Host, smtp.Port) { EnableSsl = smtp.EnableSsl };
        if (!string.IsNullOrEmpty(smtp.User))
        {
            client.Credentials = new NetworkCredential(smtp.User, smtp.Password);
        }

        using var message = new MailMessage(smtp.From, email, MagicLinkMail.Subject, MagicLinkMail.Body(link, userCode));
        await client.SendMailAsync(message, cancellationToken);
    }
}

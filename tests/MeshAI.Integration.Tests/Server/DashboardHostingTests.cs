#pragma warning disable CA1861 // expected values read best inline
using System.Net;
using Grpc.Core;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Integration.Tests.Control;
using MeshAI.Server;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Server;

/// <summary>
/// The web pages on the server's TLS port (services/MeshAI.Server/DashboardHosting.cs) with a stand-in build in
/// --web-root: caching, pre-compressed assets, pages and client-side routes, the CSP and security headers on every
/// response, and the browser sign-in RPCs (GetSignInOptions, CreateSignInLink, the /auth/magic hand-over).
/// </summary>
[TestFixture]
[Category("Integration")]
public sealed class DashboardHostingTests : IDisposable
{
    private const string Asset = "assets/index-abc123.js";
    private string _webRoot = null!;
    private ControlTestServer _server = null!;
    private HttpClient _http = null!;

    /// <summary>A tiny build: index.html, contribute.html, favicon.svg and one hashed asset with .br/.gz variants.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _webRoot = Directory.CreateTempSubdirectory("meshai-web").FullName;
        Directory.CreateDirectory(Path.Combine(_webRoot, "assets"));
        await File.WriteAllTextAsync(Path.Combine(_webRoot, "index.html"), "<!doctype html><title>dashboard</title>");
        await File.WriteAllTextAsync(Path.Combine(_webRoot, "contribute.html"), "<!doctype html><title>contribute</title>");
        await File.WriteAllTextAsync(Path.Combine(_webRoot, "favicon.svg"), "<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
        await File.WriteAllTextAsync(Path.Combine(_webRoot, Asset), "console.log('plain');");
        await File.WriteAllBytesAsync(Path.Combine(_webRoot, Asset + ".br"), [1, 2, 3, 4]);
        await File.WriteAllBytesAsync(Path.Combine(_webRoot, Asset + ".gz"), [5, 6, 7]);
        _server = await ControlTestServer.StartAsync("sqlite", "--web-root", _webRoot);
        _http = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true, AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None });
    }

    /// <inheritdoc />
    public void Dispose() => _http?.Dispose();

    /// <summary>Stops the server.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        Directory.Delete(_webRoot, recursive: true);
    }

    [Test]
    public async Task Pages_and_client_side_routes_are_revalidated_html_with_the_csp_and_security_headers()
    {
        foreach (var (path, title) in new[] { ("/", "dashboard"), ("/networks/net_x/devices", "dashboard"), ("/invite?token=abc", "dashboard"), ("/contribute", "contribute") })
        {
            using var response = await _http.GetAsync(new Uri(_server.Url + path));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), path);
            Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain($"<title>{title}</title>"), path);
            Assert.That(response.Content.Headers.ContentType?.ToString(), Is.EqualTo("text/html; charset=utf-8"), path);
            Assert.That(response.Headers.CacheControl?.NoCache, Is.True, path + ": pages are revalidated so a new build shows at once");
            AssertSecurityHeaders(response, path);
        }
    }

    [Test]
    public async Task Hashed_assets_are_immutable_and_served_precompressed_when_accepted()
    {
        using var br = new HttpRequestMessage(HttpMethod.Get, new Uri(_server.Url + "/" + Asset));
        br.Headers.AcceptEncoding.ParseAdd("gzip, br");
        using var brotli = await _http.SendAsync(br);
        Assert.Multiple(async () =>
        {
            Assert.That(brotli.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(brotli.Content.Headers.ContentEncoding, Is.EqualTo(new[] { "br" }));
            Assert.That(await brotli.Content.ReadAsByteArrayAsync(), Is.EqualTo(new byte[] { 1, 2, 3, 4 }), "the .br file beside the asset");
            Assert.That(brotli.Headers.CacheControl?.ToString(), Is.EqualTo("public, max-age=31536000, immutable"));
            Assert.That(brotli.Headers.Vary, Does.Contain("Accept-Encoding"));
            Assert.That(brotli.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/javascript"));
        });

        using var gz = new HttpRequestMessage(HttpMethod.Get, new Uri(_server.Url + "/" + Asset));
        gz.Headers.AcceptEncoding.ParseAdd("gzip");
        using var gzip = await _http.SendAsync(gz);
        Assert.That(gzip.Content.Headers.ContentEncoding, Is.EqualTo(new[] { "gzip" }));

        using var plain = await _http.GetAsync(new Uri(_server.Url + "/" + Asset));
        Assert.That(await plain.Content.ReadAsStringAsync(), Is.EqualTo("console.log('plain');"), "no Accept-Encoding: the file itself");
        AssertSecurityHeaders(plain, Asset);

        using var again = new HttpRequestMessage(HttpMethod.Get, new Uri(_server.Url + "/" + Asset));
        again.Headers.IfNoneMatch.Add(plain.Headers.ETag!);
        using var notModified = await _http.SendAsync(again);
        Assert.That(notModified.StatusCode, Is.EqualTo(HttpStatusCode.NotModified), "ETag revalidation");
    }

    [Test]
    public async Task Missing_files_and_paths_outside_the_build_are_not_found()
    {
        foreach (var path in new[] { "/nope.js", "/assets/nope.js", "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd", "/assets/%2e%2e%2f%2e%2e%2fMeshAI.sln" })
        {
            using var response = await _http.GetAsync(new Uri(_server.Url + path));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), path);
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(body, Does.Not.Contain("<title>dashboard").And.Not.Contain("root:").And.Not.Contain("Microsoft Visual Studio"), path);
        }

        using var health = await _http.GetAsync(new Uri(_server.Url + "/healthz"));
        Assert.That(await health.Content.ReadAsStringAsync(), Is.EqualTo("Healthy"), "API routes win over the pages");
    }

    [Test]
    public async Task Sign_in_options_describe_the_server_and_a_sign_in_link_hands_over_to_the_dashboard_once()
    {
        var anonymous = new IdentityService.IdentityServiceClient(_server.Channel());
        var options = await anonymous.GetSignInOptionsAsync(new GetSignInOptionsRequest());
        Assert.Multiple(() =>
        {
            Assert.That(options.MagicLinkDelivery, Is.EqualTo(MagicLinkDelivery.Outbox), "no SMTP configured");
            Assert.That(options.OidcEnabled, Is.False);
            Assert.That(options.PasskeyRpId, Is.EqualTo("localhost"), "the public URL is an IP address");
            Assert.That(options.PasskeyOrigins, Does.Contain(_server.Url));
            Assert.That(options.PublicUrl, Is.EqualTo(_server.Url));
        });

        var token = await _server.SignInAsync("links@example.com");
        var identity = new IdentityService.IdentityServiceClient(_server.Channel(token));
        await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => identity.CreateSignInLinkAsync(new CreateSignInLinkRequest { NextPath = "//evil.example/x" }).ResponseAsync);
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => anonymous.CreateSignInLinkAsync(new CreateSignInLinkRequest()).ResponseAsync);
        var created = await identity.CreateSignInLinkAsync(new CreateSignInLinkRequest { NextPath = "/networks/net_a" });
        var link = new Uri(created.SignInLink);
        Assert.That(link.GetLeftPart(UriPartial.Path), Is.EqualTo(_server.Url + "/auth/magic"));

        using var handover = await _http.GetAsync(link);
        Assert.That(handover.StatusCode, Is.EqualTo(HttpStatusCode.Redirect), "the dashboard exchanges the token itself");
        var location = handover.Headers.Location!.ToString();
        Assert.That(location, Does.StartWith(DashboardHosting.SignInPath + "?token=").And.EndWith("&next=%2Fnetworks%2Fnet_a"));
        Assert.That(await handover.Content.ReadAsStringAsync(), Does.Not.Contain("mss_"), "no session token in the response");

        var secret = Uri.UnescapeDataString(location[(location.IndexOf("token=", StringComparison.Ordinal) + 6)..location.IndexOf('&', StringComparison.Ordinal)]);
        var session = await anonymous.CompleteMagicLinkAsync(new CompleteMagicLinkRequest { Token = secret, ClientName = "dashboard" });
        Assert.That(session.User.Email, Is.EqualTo("links@example.com"), "the link signs in as the user who created it");
        var reused = await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => anonymous.CompleteMagicLinkAsync(new CompleteMagicLinkRequest { Token = secret }).ResponseAsync);
        Assert.That(reused.Status.Detail, Does.Contain("already used"));
    }

    private static void AssertSecurityHeaders(HttpResponseMessage response, string what)
    {
        Assert.Multiple(() =>
        {
            Assert.That(response.Headers.GetValues("Content-Security-Policy").Single(), Is.EqualTo(DashboardHosting.ContentSecurityPolicy), what);
            Assert.That(DashboardHosting.ContentSecurityPolicy, Does.Contain("script-src 'self'").And.Contain("frame-ancestors 'none'").And.Not.Contain("unsafe-inline"));
            Assert.That(response.Headers.GetValues("X-Content-Type-Options").Single(), Is.EqualTo("nosniff"), what);
            Assert.That(response.Headers.GetValues("X-Frame-Options").Single(), Is.EqualTo("DENY"), what);
            Assert.That(response.Headers.GetValues("Referrer-Policy").Single(), Is.EqualTo("no-referrer"), what);
        });
    }
}

using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.FileProviders;
using Microsoft.Net.Http.Headers;

namespace MeshAI.Server;

/// <summary>
/// Serves the web dashboard (clients/dashboard, built by Vite) at "/" on the server's TLS port: hashed assets under
/// /assets with a one-year immutable cache, pages (index.html for "/" and every client-side route, &lt;page&gt;.html at
/// /&lt;page&gt;) revalidated on every load, pre-compressed .br/.gz variants when the browser accepts them, and a strict
/// Content-Security-Policy on every response (docs/dashboard.md).
/// </summary>
public static class DashboardHosting
{
    /// <summary>The page a magic link finishes a browser sign-in on (the dashboard route that exchanges the token).</summary>
    public const string SignInPath = "/signin/magic";

    /// <summary>
    /// Everything from this origin only; no inline script or style, no eval (WebAssembly compilation only, for pages that run
    /// models in the browser), no framing; images may be data:/blob: URLs (QR codes, OCR previews).
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; " +
        "connect-src 'self'; worker-src 'self' blob:; manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    private const string ImmutableCache = "public, max-age=31536000, immutable";
    private const string Revalidate = "no-cache";
    private static readonly FileExtensionContentTypeProvider ContentTypes = new();

    /// <summary>
    /// The folder holding the built dashboard (its index.html): <c>--web-root</c> when given, else <c>wwwroot</c> beside the
    /// server (a published build), else <c>clients/dashboard/dist</c> of the source tree the server was built in. Null when
    /// there is none (the server then answers "/" with a page that says how to build it).
    /// </summary>
    public static string? ResolveWebRoot(string? configured)
    {
        if (!string.IsNullOrWhiteSpace(configured))
        {
            var full = Path.GetFullPath(configured);
            return File.Exists(Path.Combine(full, "index.html"))
                ? full
                : throw new InvalidOperationException($"--web-root {full} has no index.html; build the dashboard (npm run build in clients/dashboard) or drop the option");
        }

        var beside = Path.Combine(AppContext.BaseDirectory, "wwwroot");
        if (File.Exists(Path.Combine(beside, "index.html")))
        {
            return beside;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var dist = Path.Combine(dir.FullName, "clients", "dashboard", "dist");
            if (File.Exists(Path.Combine(dist, "index.html")) && File.Exists(Path.Combine(dir.FullName, "MeshAI.sln")))
            {
                return dist;
            }
        }

        return null;
    }

    /// <summary>Maps the dashboard's routes (lowest priority: every API route wins).</summary>
    public static void MapDashboard(this WebApplication app, string? webRoot)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (webRoot is null)
        {
            app.MapMethods("/", [HttpMethods.Get, HttpMethods.Head], () => Results.Content(
                "<!doctype html><meta charset=utf-8><title>MeshAI</title><h1>MeshAI server</h1>" +
                "<p>The web dashboard is not built. Run <code>npm ci &amp;&amp; npm run build</code> in <code>clients/dashboard</code> " +
                "(./quickstart.sh does), or start the server with <code>--web-root DIR</code>.</p>", "text/html; charset=utf-8", null, StatusCodes.Status503ServiceUnavailable));
            return;
        }

        var files = new PhysicalFileProvider(webRoot);
        app.MapMethods("/assets/{**path}", [HttpMethods.Get, HttpMethods.Head], (HttpContext context, string path) =>
            Serve(context, files, "assets/" + path, ImmutableCache));
        // One segment ("/favicon.svg", "/contribute", "/invite"): a top-level file, a page (<name>.html) or a dashboard route.
        app.MapMethods("/{name}", [HttpMethods.Get, HttpMethods.Head], (HttpContext context, string name) =>
            Path.HasExtension(name) ? Serve(context, files, name, Revalidate)
            : files.GetFileInfo(name + ".html") is { Exists: true, IsDirectory: false } ? Serve(context, files, name + ".html", Revalidate)
            : Serve(context, files, "index.html", Revalidate));
        // Deeper paths that no API route took and that do not look like files: client-side routes of the dashboard.
        app.MapFallback((HttpContext context) =>
            HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method)
                ? Serve(context, files, "index.html", Revalidate)
                : Results.StatusCode(StatusCodes.Status405MethodNotAllowed));
        app.MapMethods("/", [HttpMethods.Get, HttpMethods.Head], (HttpContext context) => Serve(context, files, "index.html", Revalidate));
    }

    private static IResult Serve(HttpContext context, PhysicalFileProvider files, string relativePath, string cacheControl)
    {
        // PhysicalFileProvider refuses paths that leave the root ("..", absolute paths) by returning a not-found entry.
        var file = files.GetFileInfo(relativePath);
        if (!file.Exists || file.IsDirectory || file.PhysicalPath is null)
        {
            return NotFound(context);
        }

        var headers = context.Response.Headers;
        SecurityHeaders(headers);
        headers.CacheControl = cacheControl;
        headers.Vary = HeaderNames.AcceptEncoding;
        if (!ContentTypes.TryGetContentType(relativePath, out var contentType))
        {
            contentType = "application/octet-stream";
        }
        else if (contentType is "text/html" or "text/css" or "text/javascript")
        {
            contentType += "; charset=utf-8";
        }

        var physical = file.PhysicalPath;
        var accepted = context.Request.Headers.AcceptEncoding.ToString();
        foreach (var (encoding, suffix) in new[] { ("br", ".br"), ("gzip", ".gz") })
        {
            if (accepted.Contains(encoding, StringComparison.OrdinalIgnoreCase) && files.GetFileInfo(relativePath + suffix) is { Exists: true, PhysicalPath: { } compressed })
            {
                headers.ContentEncoding = encoding;
                physical = compressed;
                break;
            }
        }

        var info = new FileInfo(physical);
        var etag = new EntityTagHeaderValue("\"" + info.Length.ToString("x", System.Globalization.CultureInfo.InvariantCulture) + "-" +
                                            info.LastWriteTimeUtc.Ticks.ToString("x", System.Globalization.CultureInfo.InvariantCulture) + "\"");
        return Results.File(physical, contentType, lastModified: info.LastWriteTimeUtc, entityTag: etag);
    }

    private static IResult NotFound(HttpContext context)
    {
        SecurityHeaders(context.Response.Headers);
        return Results.NotFound();
    }

    private static void SecurityHeaders(IHeaderDictionary headers)
    {
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        // Sign-in and invite URLs carry one-time tokens: never leak them in a Referer.
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        // With COOP, makes the pages cross-origin isolated (SharedArrayBuffer): the contributor runs ONNX Runtime's
        // WebAssembly on several threads. Everything is same-origin already (CSP), so nothing else is affected.
        headers["Cross-Origin-Embedder-Policy"] = "require-corp";
    }
}

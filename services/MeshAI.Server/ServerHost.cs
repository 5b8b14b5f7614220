using System.Net;
using System.Security.Cryptography.X509Certificates;
using Grpc.AspNetCore.Web;
using MeshAI.Common.Local;
using MeshAI.Common.Transport;
using MeshAI.Control;
using MeshAI.Control.Observability;
using MeshAI.Control.Rpc;
using MeshAI.Relay;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MeshAI.Server;

/// <summary>Builds and starts the one-process server (control plane + relay); also used in-process by integration tests.</summary>
public static class ServerHost
{
    /// <summary>Largest gRPC message in either direction.</summary>
    public const int MaxGrpcMessageBytes = 16 * 1024 * 1024;

    /// <summary>A built, not yet started server. <paramref name="configureServices"/> runs before the components register (to replace seams in tests).</summary>
    public static (WebApplication App, ServerSettings Settings, X509Certificate2 Certificate) Build(string[] args, Action<IServiceCollection>? configureServices = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args });
        builder.Configuration.AddEnvironmentVariables("MESHAI_");
        builder.Configuration.AddCommandLine(args);
        var settings = ServerSettings.From(builder.Configuration);
        var webRoot = DashboardHosting.ResolveWebRoot(settings.WebRoot);
        builder.Configuration.AddInMemoryCollection(settings.ToComponentConfiguration(builder.Configuration));
        if (webRoot is not null)
        {
            builder.Configuration.AddInMemoryCollection([new("Control:BrowserSignInPath", DashboardHosting.SignInPath)]);
        }

        builder.Logging.ClearProviders();
        // Every log line inside a request or a job span carries its trace id, span id and job id (scopes of the JSON console).
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId | ActivityTrackingOptions.ParentId | ActivityTrackingOptions.Baggage);
        builder.Logging.AddJsonConsole(o =>
        {
            o.IncludeScopes = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            o.UseUtcTimestamp = true;
        });
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(Enum.Parse<LogLevel>(settings.LogLevel, ignoreCase: true));
        // A failed start (busy port, …) is reported by Program as one line (StartupFailure); the host would also log it
        // at Error with a 40-line stack trace. Critical host events (a BackgroundService stopping the host) still log.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);

        try
        {
            // Everything under the data directory is the server's alone: 0700 folders, 0600 files (also what an older version left).
            MeshAI.Common.PrivateFiles.CreateDirectory(settings.DataDir);
            MeshAI.Common.PrivateFiles.Tighten(settings.DataDir);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"cannot create the data directory {settings.DataDir}: {ex.Message} (check --data-dir / MESHAI_HOME)", ex);
        }

        // A configured certificate (--tls-cert [--tls-key] [--tls-password]) replaces the self-signed default.
        var certificate = settings.TlsCertificate is { } configured
            ? ServerCertificates.LoadConfigured(configured, settings.TlsKey, settings.TlsPassword)
            : ServerCertificates.LoadOrCreate(Path.Combine(settings.DataDir, "tls", "server.pfx"));
        // The certificate alone, in PEM, for clients that trust it by file (OpenAI SDKs: NODE_EXTRA_CA_CERTS / SSL_CERT_FILE; Prometheus: ca_file).
        ServerCertificates.WritePublicPem(certificate, Path.Combine(settings.DataDir, "tls", "server.pem"));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = MaxGrpcMessageBytes + 1024;
            k.Listen(IPAddress.Parse(settings.Listen), settings.Port, listen =>
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(certificate);
            });
        });

        configureServices?.Invoke(builder.Services);
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = MaxGrpcMessageBytes;
            o.MaxSendMessageSize = MaxGrpcMessageBytes;
        });
        if (settings.Bus is { } bus)
        {
            builder.Services.AddSingleton<MeshAI.Common.Bus.IMeshBus>(sp => RedisMeshBus.Connect(bus, sp.GetRequiredService<ILogger<RedisMeshBus>>()));
        }

        builder.Services.AddMeshBus(builder.Configuration);
        builder.Services.AddObservability(builder.Configuration, settings.Role == "all" ? "meshai-server" : "meshai-" + settings.Role);
        builder.Services.AddControlPlane(builder.Configuration);
        if (settings.RunsRelay)
        {
            builder.Services.AddRelay(builder.Configuration);
        }

        builder.Services.AddRequestDecodingErrors(); // after the last AddGrpc

        var app = builder.Build();
        app.UseGrpcWeb(new GrpcWebOptions { DefaultEnabled = true });
        app.UseRequestSizeLimit(MaxGrpcMessageBytes);
        if (settings.RunsControl)
        {
            app.MapControlPlane();
        }

        if (settings.RunsRelay)
        {
            app.MapRelay();
        }

        app.MapObservability(); // /healthz, /readyz, gRPC health, /metrics, /metrics/networks/{id}
        app.MapModelFiles(settings.ModelsDir);
        if (settings.RunsControl)
        {
            app.MapDashboard(webRoot); // the pages talk to the control plane's RPCs: a relay-only instance serves none
        }
        return (app, settings, certificate);
    }

    /// <summary>Starts the server, resolves the bound port and publishes the public URL and TLS fingerprint to the control plane.</summary>
    public static async Task<(string PublicUrl, string Fingerprint)> StartAsync(WebApplication app, ServerSettings settings, X509Certificate2 certificate, CancellationToken cancellationToken)
    {
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var port = new Uri(address.Replace("[::]", "localhost", StringComparison.Ordinal)).Port;
        var host = settings.Listen is "0.0.0.0" or "::" ? "127.0.0.1" : settings.Listen;
        var publicUrl = (settings.PublicUrl ?? $"https://{(host.Contains(':', StringComparison.Ordinal) ? "[" + host + "]" : host)}:{port}").TrimEnd('/');
        var fingerprint = ServerCertificates.Fingerprint(certificate);
        app.Services.GetRequiredService<ServerEndpoint>().Set(publicUrl, fingerprint);
        // Local tools (meshnet auth login without --server, the quickstart) read the URL and fingerprint from here.
        new LocalServerEndpoint(publicUrl, fingerprint).Write(Path.Combine(settings.DataDir, MeshHome.EndpointFileName));
        return (publicUrl, fingerprint);
    }
}

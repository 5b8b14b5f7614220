using Grpc.Core;
using MeshAI.Common.Transport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshAI.Bench.Baseline;

/// <summary>An in-process Kestrel gRPC echo over the same TLS + HTTP/2 stack the server uses.</summary>
public sealed class BaselineEchoServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private BaselineEchoServer(WebApplication app, string url, string fingerprint)
    {
        _app = app;
        Url = url;
        Fingerprint = fingerprint;
    }

    /// <summary>https://127.0.0.1:port.</summary>
    public string Url { get; }

    /// <summary>Pinned fingerprint of the self-signed certificate.</summary>
    public string Fingerprint { get; }

    /// <summary>Starts the echo server on a free loopback port.</summary>
    public static async Task<BaselineEchoServer> StartAsync(string scratchDirectory)
    {
        var certificate = ServerCertificates.LoadOrCreate(Path.Combine(scratchDirectory, "baseline.pfx"));
        var port = MeshAI.Testing.FreePort.Next();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // The server's own message limit (ServerHost.MaxGrpcMessageBytes), so the payload harness can echo what a job can carry.
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = 16 * 1024 * 1024;
            o.MaxSendMessageSize = 16 * 1024 * 1024;
        });
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, port, l =>
        {
            l.Protocols = HttpProtocols.Http1AndHttp2;
            l.UseHttps(certificate);
        }));
        var app = builder.Build();
        app.MapGrpcService<EchoService>();
        await app.StartAsync();
        return new BaselineEchoServer(app, $"https://127.0.0.1:{port}", ServerCertificates.Fingerprint(certificate));
    }

    /// <summary>Stops the server.</summary>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private sealed class EchoService : BaselineEchoService.BaselineEchoServiceBase
    {
        public override Task<EchoResponse> Echo(EchoRequest request, ServerCallContext context) =>
            Task.FromResult(new EchoResponse { Data = request.Data });
    }
}

using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using MeshAI.Common.Bus;
using MeshAI.Common.Observability;
using MeshAI.Control.Gateway;
using MeshAI.Control.Identity;
using MeshAI.Control.Security;
using MeshAI.Control.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Prometheus;

namespace MeshAI.Control.Observability;

/// <summary>Composition of metrics, tracing and health checks into the server host (docs/observability.md).</summary>
public static class ObservabilityExtensions
{
    /// <summary>Path of the server-wide metrics (aggregates without network labels).</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>Path of one network's metrics (its admins only).</summary>
    public const string NetworkMetricsPath = "/metrics/networks/{network_id}";

    /// <summary>Tag of the health checks /readyz (and the gRPC health service) reports.</summary>
    public const string ReadyTag = "ready";

    private const string PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>
    /// Registers Prometheus metrics (<see cref="MeshMetrics"/>, the gRPC metrics interceptor), OpenTelemetry tracing (the MeshAI
    /// source and ASP.NET Core requests; OTLP export when configured), and the health checks behind /healthz, /readyz and the
    /// gRPC health service. <paramref name="serviceName"/> names this process in traces.
    /// </summary>
    public static IServiceCollection AddObservability(this IServiceCollection services, IConfiguration configuration, string serviceName)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<ObservabilityOptions>().Bind(configuration.GetSection(ObservabilityOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton<StoreGauges>();
        services.TryAddSingleton<MeshMetrics>();
        services.TryAddSingleton<GrpcMetricsInterceptor>();
        services.AddGrpc(o => o.Interceptors.Add<GrpcMetricsInterceptor>());

        var observability = configuration.GetSection(ObservabilityOptions.Section).Get<ObservabilityOptions>() ?? new ObservabilityOptions();
        var endpoint = observability.OtlpEndpoint.Length > 0 ? observability.OtlpEndpoint : Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT") ?? "";
        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName, serviceVersion: typeof(ObservabilityExtensions).Assembly.GetName().Version?.ToString()))
            .WithTracing(tracing =>
            {
                tracing.AddSource(MeshTelemetry.Name)
                    .AddAspNetCoreInstrumentation(o => o.Filter = http => !IsPlumbing(http.Request.Path));
                if (endpoint.Length > 0)
                {
                    tracing.AddOtlpExporter(o =>
                    {
                        if (observability.OtlpEndpoint.Length > 0)
                        {
                            var http = observability.OtlpProtocol is "http/protobuf" or "http";
                            o.Protocol = http ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                            o.Endpoint = new Uri(http && !observability.OtlpEndpoint.EndsWith("/v1/traces", StringComparison.Ordinal)
                                ? observability.OtlpEndpoint.TrimEnd('/') + "/v1/traces"
                                : observability.OtlpEndpoint);
                        }
                    });
                }
            });

        services.AddHealthChecks()
            .AddCheck<StoreHealthCheck>("store", tags: [ReadyTag])
            .AddCheck<BusHealthCheck>("bus", tags: [ReadyTag]);
        services.AddGrpcHealthChecks(o => o.Services.Map("", r => r.Tags.Contains(ReadyTag)));
        return services;
    }

    /// <summary>
    /// Maps <c>/healthz</c> (liveness: the process answers), <c>/readyz</c> (readiness: the store and the bus answer), the gRPC
    /// health service, <c>/metrics</c> and <c>/metrics/networks/{network_id}</c>.
    /// </summary>
    public static IEndpointRouteBuilder MapObservability(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false });
        endpoints.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag), ResponseWriter = WriteReadinessAsync });
        endpoints.MapGrpcHealthChecksService();
        endpoints.MapGet(MetricsPath, ServerMetricsAsync);
        endpoints.MapGet(NetworkMetricsPath, NetworkMetricsAsync);
        return endpoints;
    }

    private static bool IsPlumbing(PathString path) =>
        path.StartsWithSegments("/metrics") || path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz") || path.StartsWithSegments("/grpc.health.v1.Health");

    private static async Task ServerMetricsAsync(HttpContext http, MeshMetrics metrics, IOptions<ObservabilityOptions> options)
    {
        var token = options.Value.MetricsToken;
        if (token.Length > 0 && !BearerEquals(http.Request.Headers.Authorization.ToString(), token))
        {
            http.Response.StatusCode = StatusCodes.Status401Unauthorized;
            http.Response.Headers.WWWAuthenticate = "Bearer";
            await http.Response.WriteAsync("this server's /metrics needs its scrape token (Authorization: Bearer …)\n", http.RequestAborted);
            return;
        }

        await ExportAsync(http, metrics.Server);
    }

    // A network's own series: its admins only, with a session or an API key carrying "metrics:read" (the per-network scrape
    // token). Non-members get 404, as everywhere: a network's existence is never revealed.
    private static async Task NetworkMetricsAsync(HttpContext http, string network_id, SessionAuthenticator authenticator, CallAuthorizer authorizer, MeshMetrics metrics)
    {
        const string rule = "GET " + NetworkMetricsPath;
        try
        {
            var caller = await authenticator.RequireAsync(http.Request.Headers.Authorization.ToString() is { Length: > 0 } header ? header : null, http.RequestAborted);
            await authorizer.AuthorizeAsync(RpcRules.HttpTable[rule], rule, caller, network_id, http.RequestAborted);
        }
        catch (RpcException ex)
        {
            var error = GatewayErrors.FromRpc(ex);
            http.Response.StatusCode = error.Status;
            await http.Response.WriteAsync(error.Message + "\n", http.RequestAborted);
            return;
        }

        await ExportAsync(http, await metrics.NetworkAsync(network_id, http.RequestAborted));
    }

    private static async Task ExportAsync(HttpContext http, CollectorRegistry registry)
    {
        http.Response.ContentType = PrometheusContentType;
        await registry.CollectAndExportAsTextAsync(http.Response.Body, http.RequestAborted);
    }

    private static bool BearerEquals(string header, string token)
    {
        const string scheme = "Bearer ";
        return header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) &&
               CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[scheme.Length..].Trim()), Encoding.UTF8.GetBytes(token));
    }

    private static Task WriteReadinessAsync(HttpContext http, HealthReport report)
    {
        http.Response.ContentType = "application/json";
        var body = new System.Text.Json.Nodes.JsonObject
        {
            ["status"] = report.Status.ToString(),
            ["checks"] = new System.Text.Json.Nodes.JsonObject(report.Entries.Select(e => KeyValuePair.Create<string, System.Text.Json.Nodes.JsonNode?>(e.Key, new System.Text.Json.Nodes.JsonObject
            {
                ["status"] = e.Value.Status.ToString(),
                ["description"] = e.Value.Description ?? e.Value.Exception?.Message,
            }))),
        };
        return http.Response.WriteAsync(body.ToJsonString(), http.RequestAborted);
    }
}

/// <summary>Readiness of the store: a trivial query answers within the check's time.</summary>
public sealed class StoreHealthCheck(Database database) : IHealthCheck
{
    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        try
        {
            await database.RunAsync(async c => await Dapper.SqlMapper.ExecuteScalarAsync<long>(c, Database.Command("SELECT 1", null, timeout.Token)), timeout.Token);
            return HealthCheckResult.Healthy($"{database.Dialect.GetType().Name.Replace("Dialect", "", StringComparison.Ordinal).ToLowerInvariant()} store answers");
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException or OperationCanceledException or InvalidOperationException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy("the store does not answer: " + ex.Message);
        }
    }
}

/// <summary>Readiness of the bus (in-process or Redis): a counter increment makes the round trip.</summary>
public sealed class BusHealthCheck(IMeshBus bus, BusNames names) : IHealthCheck
{
    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        try
        {
            await bus.IncrementAsync(names.Rate("readiness-probe"), TimeSpan.FromSeconds(30), timeout.Token);
            return HealthCheckResult.Healthy(bus.GetType().Name + " answers");
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or InvalidOperationException or IOException ||
                                   ex.GetType().Namespace?.StartsWith("StackExchange.Redis", StringComparison.Ordinal) == true)
        {
            return HealthCheckResult.Unhealthy("the bus does not answer: " + ex.Message);
        }
    }
}

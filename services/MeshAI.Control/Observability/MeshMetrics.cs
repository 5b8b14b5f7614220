using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using MeshAI.Common.Observability;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Prometheus;

namespace MeshAI.Control.Observability;

/// <summary>
/// The Prometheus side of observability (docs/observability.md). Two kinds of registry:
/// <list type="bullet">
/// <item>the server registry behind the open <c>/metrics</c>: the spec's series as server-wide aggregates with no network label
/// (a network's id, activity and credits are its members' business), plus gRPC server and process metrics;</item>
/// <item>one registry per network behind <c>/metrics/networks/{id}</c> (admins only): the same spec series for that network,
/// labelled <c>network_id</c>.</item>
/// </list>
/// Measurements arrive through <see cref="MeshTelemetry.Meter"/> (relay, job plane, gateway record there and know nothing of
/// Prometheus); the store-derived gauges are refreshed just before a scrape.
/// </summary>
public sealed partial class MeshMetrics : IDisposable
{
    /// <summary>job_latency_ms buckets, in milliseconds (5 ms … 10 min).</summary>
    public static readonly double[] LatencyBucketsMs = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000];

    private readonly ConcurrentDictionary<string, SpecSeries> _networks = new(StringComparer.Ordinal);
    private readonly MeterListener _listener;
    private readonly StoreGauges _gauges;
    private readonly ObservabilityOptions _options;
    private readonly ILogger<MeshMetrics> _logger;
    private int _overflowLogged;

    /// <summary>Creates the registries and starts listening to <see cref="MeshTelemetry.Meter"/>.</summary>
    public MeshMetrics(StoreGauges gauges, IOptions<ObservabilityOptions> options, ILogger<MeshMetrics> logger)
    {
        _gauges = gauges;
        _options = options.Value;
        _logger = logger;
        Server = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Server);
        ServerSeries = new SpecSeries(factory);
        GatewayRequests = factory.CreateCounter("gateway_requests_total", "Requests answered by the OpenAI-compatible gateway", ["endpoint", "status"]);
        GrpcHandled = factory.CreateCounter("grpc_server_handled_total", "gRPC calls completed by the server, by status code", ["grpc_service", "grpc_method", "grpc_code"]);
        GrpcHandling = factory.CreateHistogram("grpc_server_handling_seconds", "Time the server took to complete gRPC calls", ["grpc_service", "grpc_method"],
            new HistogramConfiguration { Buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
        SettlementBatchSize = factory.CreateHistogram("settlement_batch_size", "Settlements committed in one group-commit transaction (docs/job-plane.md \"Settlement group commit\")",
            new HistogramConfiguration { Buckets = [1, 2, 4, 8, 16, 32, 64] });
        SettlementBatchFallbacks = factory.CreateCounter("settlement_batch_fallbacks_total", "Group-commit batches that failed and were settled member by member");
        DotNetStats.Register(Server); // process_cpu_seconds_total, process_working_set_bytes, dotnet_collection_count_total, …
        Server.AddBeforeCollectCallback(async ct => ServerSeries.SetGauges(await _gauges.TotalAsync(ct)));

        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == MeshTelemetry.Name)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => OnMeasurement(instrument.Name, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => OnMeasurement(instrument.Name, value, tags));
        _listener.Start();
    }

    /// <summary>The registry of the open /metrics endpoint.</summary>
    public CollectorRegistry Server { get; }

    /// <summary>The spec's series, server-wide.</summary>
    internal SpecSeries ServerSeries { get; }

    /// <summary>gateway_requests_total{endpoint,status}.</summary>
    public Counter GatewayRequests { get; }

    /// <summary>grpc_server_handled_total{grpc_service,grpc_method,grpc_code}.</summary>
    public Counter GrpcHandled { get; }

    /// <summary>grpc_server_handling_seconds{grpc_service,grpc_method}.</summary>
    public Histogram GrpcHandling { get; }

    /// <summary>settlement_batch_size: settlements per group-commit transaction (server-wide; a batch spans networks).</summary>
    public Histogram SettlementBatchSize { get; }

    /// <summary>settlement_batch_fallbacks_total: batches settled again member by member.</summary>
    public Counter SettlementBatchFallbacks { get; }

    /// <summary>The registry of one network's series, after refreshing its store-derived gauges.</summary>
    public async Task<CollectorRegistry> NetworkAsync(string networkId, CancellationToken ct)
    {
        var series = Network(networkId) ?? throw new InvalidOperationException("too many networks with their own series");
        var gauges = await _gauges.GetAsync(ct);
        series.SetGauges(gauges.GetValueOrDefault(networkId) ?? NetworkGauges.Empty);
        return series.Registry!;
    }

    /// <inheritdoc />
    public void Dispose() => _listener.Dispose();

    private SpecSeries? Network(string networkId)
    {
        if (_networks.TryGetValue(networkId, out var existing))
        {
            return existing;
        }

        if (_networks.Count >= _options.MaxNetworkSeries)
        {
            if (Interlocked.Exchange(ref _overflowLogged, 1) == 0)
            {
                LogTooManyNetworks(_options.MaxNetworkSeries);
            }

            return null;
        }

        return _networks.GetOrAdd(networkId, id =>
        {
            var registry = Metrics.NewCustomRegistry();
            registry.SetStaticLabels(new Dictionary<string, string>(StringComparer.Ordinal) { [MeshTelemetry.NetworkTag] = id });
            return new SpecSeries(Metrics.WithCustomRegistry(registry)) { Registry = registry };
        });
    }

    private void OnMeasurement(string instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        string network = "", direction = "", workload = "", outcome = "", endpoint = "", status = "";
        foreach (var (key, tagValue) in tags)
        {
            var text = tagValue as string ?? "";
            switch (key)
            {
                case MeshTelemetry.NetworkTag: network = text; break;
                case "direction": direction = text; break;
                case "workload": workload = text; break;
                case "outcome": outcome = text; break;
                case "endpoint": endpoint = text; break;
                case "status": status = text; break;
            }
        }

        var perNetwork = network.Length > 0 ? Network(network) : null;
        switch (instrument)
        {
            case "relay_bandwidth_bytes":
                ServerSeries.RelayBytes.WithLabels(direction).Inc(value);
                perNetwork?.RelayBytes.WithLabels(direction).Inc(value);
                break;
            case "job_latency_ms":
                ServerSeries.Latency.WithLabels(workload, outcome).Observe(value);
                perNetwork?.Latency.WithLabels(workload, outcome).Observe(value);
                break;
            case "settlement_batch_size":
                SettlementBatchSize.Observe(value);
                break;
            case "settlement_batch_fallbacks":
                SettlementBatchFallbacks.Inc(value);
                break;
            case "gateway_requests":
                GatewayRequests.WithLabels(endpoint, status).Inc(value);
                break;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "More than {Max} networks have their own metric series; further networks are counted server-wide only")]
    private partial void LogTooManyNetworks(int max);

    /// <summary>The spec's six series in one registry.</summary>
    internal sealed class SpecSeries(IMetricFactory factory)
    {
        public CollectorRegistry? Registry { get; init; }

        public Histogram Latency { get; } = factory.CreateHistogram("job_latency_ms", "Submit-to-end latency of finished jobs, in milliseconds", ["workload", "outcome"],
            new HistogramConfiguration { Buckets = LatencyBucketsMs });

        public Gauge SuccessRate { get; } = factory.CreateGauge("job_success_rate",
            "Completed / (completed + failed) of the jobs created in the success window (Control:Observability:SuccessWindowMinutes, default 60) that have ended; 1 when none");

        public Counter RelayBytes { get; } = factory.CreateCounter("relay_bandwidth_bytes", "Bytes of job frames the relay carried, by direction (to_device, from_device)", ["direction"]);

        public Gauge OnlineRate { get; } = factory.CreateGauge("device_online_rate", "Online devices / registered (not revoked) devices");

        public Gauge Minted { get; } = factory.CreateGauge("credits_minted_per_day", "Credits minted to devices over the last 24 hours (1 credit = 1,000,000 micro-credits)");

        public Gauge Burned { get; } = factory.CreateGauge("credits_burned_per_day", "Credits burned by jobs over the last 24 hours (1 credit = 1,000,000 micro-credits)");

        public void SetGauges(NetworkGauges g)
        {
            SuccessRate.Set(g.SuccessRate);
            OnlineRate.Set(g.OnlineRate);
            Minted.Set(g.MintedMicro / 1_000_000d);
            Burned.Set(g.BurnedMicro / 1_000_000d);
        }
    }
}

using System.ComponentModel.DataAnnotations;

namespace MeshAI.Control.Observability;

/// <summary>Metrics, tracing and health switches (section <c>Control:Observability</c>; docs/observability.md).</summary>
public sealed class ObservabilityOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Control:Observability";

    /// <summary>
    /// When set, the server-wide <c>/metrics</c> needs <c>Authorization: Bearer &lt;this token&gt;</c> (an operator's scrape
    /// secret). Empty: open, which is safe because it carries no network ids (aggregates, process and gRPC metrics only).
    /// </summary>
    public string MetricsToken { get; set; } = "";

    /// <summary>How long the gauges computed from the store (success rate, online rate, credits per day) are reused.</summary>
    [Range(0, 3600)]
    public int StoreGaugeSeconds { get; set; } = 10;

    /// <summary>Window of job_success_rate: jobs created this many minutes ago or later that have ended.</summary>
    [Range(1, 7 * 24 * 60)]
    public int SuccessWindowMinutes { get; set; } = 60;

    /// <summary>Most networks with their own series in memory (the per-network scrape endpoint); more are counted server-wide only.</summary>
    [Range(1, 1_000_000)]
    public int MaxNetworkSeries { get; set; } = 10_000;

    /// <summary>OTLP endpoint for traces (e.g. http://collector:4317); empty: the standard OTEL_EXPORTER_OTLP_ENDPOINT variable, else no export.</summary>
    public string OtlpEndpoint { get; set; } = "";

    /// <summary>OTLP protocol: grpc or http/protobuf (empty: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc).</summary>
    public string OtlpProtocol { get; set; } = "";
}

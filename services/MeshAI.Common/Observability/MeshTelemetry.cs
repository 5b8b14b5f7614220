using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace MeshAI.Common.Observability;

/// <summary>
/// The one place for MeshAI's tracing and metric instruments and for W3C trace-context propagation (docs/observability.md).
/// Every process (server, relay, agent, sandbox worker) records spans on <see cref="Source"/> and measurements on
/// <see cref="Meter"/>; the host decides where they go (OTLP, Prometheus, nowhere). A job's spans share one trace: its id
/// is the envelope's <c>trace_id</c>, and each hop carries the parent span as a <c>traceparent</c> string (gRPC metadata,
/// <c>JobOffer.traceparent</c>, <c>ConnectRequest.traceparent</c>, <c>JobReport.traceparent</c>, <c>WorkerJob.traceparent</c>).
/// </summary>
public static class MeshTelemetry
{
    /// <summary>Name of the ActivitySource and the Meter.</summary>
    public const string Name = "MeshAI";

    /// <summary>Span attribute / log scope key of the job id.</summary>
    public const string JobIdKey = "meshai.job_id";

    /// <summary>Span attribute of the network id (never a metric label on the open /metrics endpoint).</summary>
    public const string NetworkIdKey = "meshai.network_id";

    /// <summary>Span attribute of the device id.</summary>
    public const string DeviceIdKey = "meshai.device_id";

    /// <summary>Span attribute of the attempt number.</summary>
    public const string AttemptKey = "meshai.attempt";

    /// <summary>Measurement tag of the network a measurement belongs to (routed to that network's scrape endpoint only).</summary>
    public const string NetworkTag = "network_id";

    /// <summary>Spans of every MeshAI process.</summary>
    public static readonly ActivitySource Source = new(Name, typeof(MeshTelemetry).Assembly.GetName().Version?.ToString());

    /// <summary>Measurements of every MeshAI process.</summary>
    public static readonly Meter Meter = new(Name, typeof(MeshTelemetry).Assembly.GetName().Version?.ToString());

    /// <summary>Bytes of job frames the relay carried (spec name), tagged network_id and direction (to_device, from_device).</summary>
    public static readonly Counter<long> RelayBandwidthBytes = Meter.CreateCounter<long>("relay_bandwidth_bytes", "By", "Bytes of job frames carried by the relay");

    /// <summary>Submit-to-end latency of finished jobs in milliseconds (spec name), tagged network_id, workload and outcome.</summary>
    public static readonly Histogram<double> JobLatencyMs = Meter.CreateHistogram<double>("job_latency_ms", "ms", "Submit-to-end latency of finished jobs");

    /// <summary>Requests the OpenAI-compatible gateway answered, tagged network_id, endpoint and status (HTTP code).</summary>
    public static readonly Counter<long> GatewayRequests = Meter.CreateCounter<long>("gateway_requests", "{request}", "Requests answered by the OpenAI-compatible gateway");

    /// <summary>Settlements committed per group-commit transaction (docs/job-plane.md "Settlement group commit"); server-wide, no tags.</summary>
    public static readonly Histogram<long> SettlementBatchSize = Meter.CreateHistogram<long>("settlement_batch_size", "{settlement}", "Settlements committed in one group-commit transaction");

    /// <summary>Group-commit batches that failed and were settled member by member; server-wide, no tags.</summary>
    public static readonly Counter<long> SettlementBatchFallbacks = Meter.CreateCounter<long>("settlement_batch_fallbacks", "{batch}", "Group-commit batches settled again member by member after a failure");

    /// <summary>Records a finished job: its latency (by outcome) for job_latency_ms and job outcome counts.</summary>
    public static void RecordJobEnded(string networkId, string workload, string outcome, long latencyMs)
    {
        if (JobLatencyMs.Enabled)
        {
            JobLatencyMs.Record(Math.Max(0, latencyMs), new(NetworkTag, networkId), new("workload", workload), new("outcome", outcome));
        }
    }

    /// <summary>Counts job-frame bytes through the relay for <paramref name="networkId"/>.</summary>
    public static void CountRelayBytes(string networkId, string direction, long bytes)
    {
        if (bytes > 0 && RelayBandwidthBytes.Enabled)
        {
            RelayBandwidthBytes.Add(bytes, new(NetworkTag, networkId), new("direction", direction));
        }
    }

    /// <summary>
    /// Starts a span of a job. Its parent is <paramref name="traceParent"/> when that is a valid W3C traceparent; otherwise the
    /// current span when it belongs to the job's trace (<paramref name="traceId"/>); otherwise a remote parent in the job's
    /// trace (so a job resumed by another instance, or a client that sent no context, still lands in the job's trace).
    /// Null when nobody listens (tracing off).
    /// </summary>
    public static Activity? StartJobSpan(string name, ActivityKind kind, string jobId, string? traceParent = null, string? traceId = null)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var parent = ParentFor(traceParent, traceId);
        // A caller's span in another trace (a client that chose its own trace_id) is linked, not lost.
        ActivityLink[]? links = Activity.Current is { IdFormat: ActivityIdFormat.W3C } current && parent != default && current.TraceId != parent.TraceId
            ? [new ActivityLink(current.Context)]
            : null;
        var activity = Source.StartActivity(name, kind, parent, links: links);
        if (activity is not null && !string.IsNullOrEmpty(jobId))
        {
            activity.SetTag(JobIdKey, jobId);
            activity.SetBaggage(JobIdKey, jobId); // log scopes (ActivityTrackingOptions.Baggage) and child spans carry the job id
        }

        return activity;
    }

    /// <summary>
    /// The span of one job report (accept, decline, result, failure) handled by the job's runner: <c>meshai.job.report</c>,
    /// tagged with the frame and the device, whether the report came over the bus or straight from a relay in the same
    /// process (#17, #11). Null when nobody listens.
    /// </summary>
    public static Activity? StartJobReportSpan(string jobId, string frame, string deviceId, string? traceParent) =>
        StartJobSpan("meshai.job.report", ActivityKind.Consumer, jobId, traceParent)?.SetTag("meshai.frame", frame).SetTag(DeviceIdKey, deviceId);

    /// <summary>The W3C traceparent of <paramref name="activity"/> ("00-{trace}-{span}-{flags}"), or "" without one.</summary>
    public static string TraceParent(Activity? activity) =>
        activity is null || activity.IdFormat != ActivityIdFormat.W3C ? "" : $"00-{activity.TraceId.ToHexString()}-{activity.SpanId.ToHexString()}-{(activity.Recorded ? "01" : "00")}";

    /// <summary>The traceparent of the current span (""), for frames sent from inside a job span.</summary>
    public static string CurrentTraceParent() => TraceParent(Activity.Current);

    /// <summary>True for a W3C trace id: 32 lower-case hex digits, not all zero.</summary>
    public static bool IsTraceId(string? value) =>
        value is { Length: 32 } && value.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f') && value.Any(c => c != '0');

    /// <summary>The trace id of the current span when there is one, else a new random one (what a job gets when its client sent none).</summary>
    public static string CurrentOrNewTraceId() =>
        Activity.Current is { IdFormat: ActivityIdFormat.W3C } current ? current.TraceId.ToHexString() : ActivityTraceId.CreateRandom().ToHexString();

    /// <summary>The parent context for a job span (see <see cref="StartJobSpan"/>); default when none can be made.</summary>
    public static ActivityContext ParentFor(string? traceParent, string? traceId)
    {
        if (!string.IsNullOrEmpty(traceParent) && ActivityContext.TryParse(traceParent, null, isRemote: true, out var parsed))
        {
            return parsed;
        }

        if (Activity.Current is { IdFormat: ActivityIdFormat.W3C } current && (traceId is null || current.TraceId.ToHexString() == traceId))
        {
            return current.Context;
        }

        return IsTraceId(traceId)
            ? new ActivityContext(ActivityTraceId.CreateFromString(traceId), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded, isRemote: true)
            : default;
    }
}

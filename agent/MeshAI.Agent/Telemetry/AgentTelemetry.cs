using MeshAI.Common.Observability;
using OpenTelemetry;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace MeshAI.Agent.Telemetry;

/// <summary>
/// The agent's (and its sandbox workers') tracing: spans of <see cref="MeshTelemetry.Source"/> are always recorded, so logs
/// carry the job's trace id; they leave the process only when the standard OpenTelemetry variable
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set (with <c>OTEL_EXPORTER_OTLP_PROTOCOL</c> grpc or http/protobuf). Workers inherit
/// the agent's environment, so one setting covers both (docs/observability.md).
/// </summary>
public static class AgentTelemetry
{
    /// <summary>Environment variable that switches the OTLP exporter on.</summary>
    public const string EndpointVariable = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <summary>Starts tracing for this process (dispose at exit: it flushes what is buffered).</summary>
    public static TracerProvider Start(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var service = args.FirstOrDefault() == "worker" ? "meshai-agent-worker" : "meshai-agent";
        var builder = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(ResourceBuilder.CreateDefault().AddService(service, serviceVersion: typeof(AgentTelemetry).Assembly.GetName().Version?.ToString()))
            .AddSource(MeshTelemetry.Name);
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(EndpointVariable)))
        {
            builder.AddOtlpExporter();
        }

        return builder.Build()!;
    }
}

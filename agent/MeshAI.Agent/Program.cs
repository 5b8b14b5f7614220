using MeshAI.Agent.Commands;
using Microsoft.Extensions.Logging;

// Spans (job trace ids in logs; exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set).
using var tracing = MeshAI.Agent.Telemetry.AgentTelemetry.Start(args);

// Logs go to stderr so stdout carries only the machine-readable MESHAI_* lines and command output. MESHAI_AGENT_LOG_FORMAT=json
// writes one JSON object per line whose scopes carry the trace id, span id and job id of the job being run.
var jsonLogs = string.Equals(Environment.GetEnvironmentVariable("MESHAI_AGENT_LOG_FORMAT"), "json", StringComparison.OrdinalIgnoreCase);
using var loggers = LoggerFactory.Create(builder =>
{
    builder
        .SetMinimumLevel(Environment.GetEnvironmentVariable("MESHAI_AGENT_LOG_LEVEL") is { } level && Enum.TryParse<LogLevel>(level, true, out var parsed) ? parsed : LogLevel.Information)
        .Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId | ActivityTrackingOptions.Baggage)
        .AddFilter("Microsoft", LogLevel.Warning)
        .AddFilter("Grpc", LogLevel.Warning);
    if (jsonLogs)
    {
        builder.AddJsonConsole(o =>
        {
            o.IncludeScopes = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            o.UseUtcTimestamp = true;
        });
    }
    else
    {
        builder.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
    }

    builder.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
});

// Ctrl+C and SIGTERM (systemd stop) end the run loop cleanly. Not disposed: ProcessExit may fire after Main returns.
var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.Cancel();
});

var commands = new AgentCommands(Console.Out, Console.Error, loggers);
return await commands.RunAsync(args, stop.Token);

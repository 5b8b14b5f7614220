using MeshAI.Agent.Commands;
using Microsoft.Extensions.Logging;

// Logs go to stderr so stdout carries only the machine-readable MESHAI_* lines and command output.
using var loggers = LoggerFactory.Create(builder => builder
    .SetMinimumLevel(Environment.GetEnvironmentVariable("MESHAI_AGENT_LOG_LEVEL") is { } level && Enum.TryParse<LogLevel>(level, true, out var parsed) ? parsed : LogLevel.Information)
    .AddSimpleConsole(o =>
    {
        o.SingleLine = true;
        o.TimestampFormat = "HH:mm:ss ";
    })
    .AddFilter("Microsoft", LogLevel.Warning)
    .AddFilter("Grpc", LogLevel.Warning)
    .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));

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

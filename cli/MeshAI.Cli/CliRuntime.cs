using System.CommandLine;

namespace MeshAI.Cli;

/// <summary>Shared state of one CLI run: writers, environment and the global options every command sees.</summary>
public sealed class CliRuntime
{
    /// <summary>Creates the runtime.</summary>
    public CliRuntime(TextWriter output, TextWriter error, CliEnvironment environment)
    {
        Out = output;
        Error = error;
        Environment = environment;
    }

    /// <summary>stdout.</summary>
    public TextWriter Out { get; }

    /// <summary>stderr.</summary>
    public TextWriter Error { get; }

    /// <summary>The outside world.</summary>
    public CliEnvironment Environment { get; }

    /// <summary>--json on every command.</summary>
    public Option<bool> JsonOption { get; } = new("--json") { Description = "Print machine-readable JSON instead of tables", Recursive = true };

    /// <summary>--config on every command.</summary>
    public Option<string> ConfigOption { get; } = new("--config")
    {
        Description = "Config file (default: $MESHAI_CLI_CONFIG, else $MESHAI_HOME/cli.json, i.e. ~/.meshai/cli.json)",
        HelpName = "PATH",
        Recursive = true,
    };

    /// <summary>Runs <paramref name="body"/> as <paramref name="command"/>'s action, reporting any failure as one line.</summary>
    public void Bind(Command command, Func<CliContext, Task<int>> body)
    {
        ArgumentNullException.ThrowIfNull(command);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var context = new CliContext(parseResult, this, cancellationToken);
            try
            {
                return await body(context);
            }
            catch (Exception ex)
            {
                return ErrorReporter.Report(ex, context.Target, Error, context.FieldLabel);
            }
        });
    }

    /// <summary>A new --network option (one instance per command).</summary>
    public static Option<string> NetworkOption() =>
        new("--network", "-n") { Description = "Network id (default: the one set by 'meshnet net use')", HelpName = "ID" };
}

using System.CommandLine;
using System.CommandLine.Invocation;
using MeshAI.Cli.Commands;

namespace MeshAI.Cli;

/// <summary>The `meshnet` command line: parse, run one command, map every failure to one line and an exit code.</summary>
public static class CliApp
{
    /// <summary>Runs `meshnet <paramref name="args"/>` against the real environment.</summary>
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr) =>
        RunAsync(args, stdout, stderr, new CliEnvironment(), CancellationToken.None);

    /// <summary>Runs `meshnet <paramref name="args"/>` with an explicit environment (tests).</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CliEnvironment environment, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stderr);
        var runtime = new CliRuntime(stdout, stderr, environment);
        var root = BuildRootCommand(runtime);
        var parseResult = root.Parse(args);
        if (parseResult.Errors.Count > 0 && parseResult.Action is ParseErrorAction)
        {
            foreach (var error in parseResult.Errors)
            {
                await stderr.WriteLineAsync("error: " + error.Message);
            }

            var path = string.Join(' ', CommandPath(parseResult.CommandResult.Command, root));
            await stderr.WriteLineAsync($"Run '{path} --help' for usage.");
            return ExitCodes.Usage;
        }

        var invocation = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        try
        {
            return await parseResult.InvokeAsync(invocation, cancellationToken);
        }
        catch (Exception ex)
        {
            return ErrorReporter.Report(ex, null, stderr);
        }
    }

    /// <summary>The whole command tree.</summary>
    public static RootCommand BuildRootCommand(CliRuntime runtime)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        var root = new RootCommand("meshnet: manage MeshAI networks, devices, jobs and credits from the terminal.")
        {
            runtime.JsonOption,
            runtime.ConfigOption,
            AuthCommands.Build(runtime),
            NetCommands.Build(runtime),
            MembersCommands.Build(runtime),
            AuditCommands.Build(runtime),
            DeviceCommands.BuildDevice(runtime),
            DeviceCommands.BuildDevices(runtime),
            RunCommands.Build(runtime),
            JobsCommands.Build(runtime),
            LedgerCommands.Build(runtime),
            PolicyCommands.Build(runtime),
            ModelsCommands.Build(runtime),
            ApiKeysCommands.Build(runtime),
        };
        return root;
    }

    private static IEnumerable<string> CommandPath(Command command, RootCommand root)
    {
        var names = new List<string>();
        var current = FindPath(root, command, names) ? names : [];
        return current.Prepend("meshnet");
    }

    private static bool FindPath(Command parent, Command target, List<string> path)
    {
        if (ReferenceEquals(parent, target))
        {
            return true;
        }

        foreach (var child in parent.Subcommands)
        {
            path.Add(child.Name);
            if (FindPath(child, target, path))
            {
                return true;
            }

            path.RemoveAt(path.Count - 1);
        }

        return false;
    }
}

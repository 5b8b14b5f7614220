using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
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
            var path = string.Join(' ', CommandPath(parseResult.CommandResult.Command, root));
            await stderr.WriteLineAsync("error: " + UsageError(parseResult, path));
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

    /// <summary>
    /// One line for a command line that does not parse: an unknown command or option with the closest known one
    /// ("did you mean"), a command group without its command (listing them), else the parser's messages joined.
    /// </summary>
    public static string UsageError(ParseResult parseResult, string path)
    {
        ArgumentNullException.ThrowIfNull(parseResult);
        var command = parseResult.CommandResult.Command;
        var unmatched = parseResult.UnmatchedTokens;
        if (unmatched.Count > 0)
        {
            var word = unmatched[0];
            if (word.StartsWith('-'))
            {
                var options = command.Options.Concat(AncestorOptions(parseResult)).Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name));
                var option = MeshAI.Common.Text.Suggestions.Closest(word.Split('=')[0], options);
                return $"unknown option '{word}' for '{path}'." + (option is null ? "" : $" Did you mean '{option}'?");
            }

            if (command.Subcommands.Count > 0)
            {
                var names = command.Subcommands.Where(c => !c.Hidden).SelectMany(c => c.Aliases.Prepend(c.Name));
                var closest = MeshAI.Common.Text.Suggestions.Closest(word, names);
                return $"unknown command '{word}' for '{path}'." + (closest is null
                    ? $" Commands: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}."
                    : $" Did you mean '{path} {closest}'?");
            }

            return $"unexpected argument '{word}' for '{path}'.";
        }

        if (command.Subcommands.Count > 0 && command.Action is null)
        {
            return $"'{path}' needs a command: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}.";
        }

        return string.Join(" ", parseResult.Errors.Select(e => e.Message.Trim()).Distinct());
    }

    private static IEnumerable<Option> AncestorOptions(ParseResult parseResult)
    {
        for (var result = parseResult.CommandResult.Parent as CommandResult; result is not null; result = result.Parent as CommandResult)
        {
            foreach (var option in result.Command.Options.Where(o => o.Recursive))
            {
                yield return option;
            }
        }
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

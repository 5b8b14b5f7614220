namespace MeshAI.Agent.Commands;

/// <summary>Plain argument parsing: positional words plus <c>--name value</c> / <c>--flag</c> options.</summary>
public sealed class CommandLine
{
    private readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);

    /// <summary>Parses <paramref name="args"/>; <paramref name="flags"/> are options that take no value.</summary>
    public CommandLine(IReadOnlyList<string> args, params string[] flags)
    {
        ArgumentNullException.ThrowIfNull(args);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg.StartsWith("--", StringComparison.Ordinal) && arg.Length > 2)
            {
                var name = arg[2..];
                var eq = name.IndexOf('=', StringComparison.Ordinal);
                if (eq >= 0)
                {
                    _options[name[..eq]] = name[(eq + 1)..];
                }
                else if (flags.Contains(name) || i + 1 >= args.Count)
                {
                    _options[name] = null;
                }
                else
                {
                    _options[name] = args[++i];
                }
            }
            else
            {
                Positional.Add(arg);
            }
        }
    }

    /// <summary>Words that are not options, in order.</summary>
    public List<string> Positional { get; } = [];

    /// <summary>The option's value, or null.</summary>
    public string? Get(string name) => _options.TryGetValue(name, out var value) ? value : null;

    /// <summary>True when the option was given (with or without a value).</summary>
    public bool Has(string name) => _options.ContainsKey(name);
}

/// <summary>Process exit codes of meshai-agent.</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;

    /// <summary>Unexpected error.</summary>
    public const int Error = 1;

    /// <summary>Bad usage, malformed link, or not joined yet.</summary>
    public const int Usage = 2;

    /// <summary>The device was revoked; the agent stops.</summary>
    public const int Revoked = 3;

    /// <summary>Server unreachable or its TLS fingerprint did not match.</summary>
    public const int Unreachable = 4;

    /// <summary>The server refused the request (NOT_FOUND, FAILED_PRECONDITION, …).</summary>
    public const int Refused = 5;
}

using System.Reflection;

namespace MeshAI.Agent.Sandbox;

/// <summary>Limits and locations of the per-class worker processes (every limit is a named option with a default).</summary>
public sealed record SandboxOptions
{
    /// <summary>Default address-space cap per worker (RLIMIT_AS through prlimit).</summary>
    public const long DefaultMemoryLimitMb = 8192;

    /// <summary>Folder holding each class's restricted working directories (the agent's state dir + "sandbox").</summary>
    public required string Root { get; init; }

    /// <summary>Address-space cap per worker in MB; 0 = no cap. Applied with prlimit(1) where it exists.</summary>
    public long MemoryLimitMb { get; init; } = DefaultMemoryLimitMb;

    /// <summary>Workers per workload class (jobs of one class beyond this wait for a free worker).</summary>
    public int MaxWorkersPerClass { get; init; } = 2;

    /// <summary>How long a new worker may take to load its handler and say it is ready.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Arguments the worker needs to build its handler (model dirs, runtime choices).</summary>
    public IReadOnlyList<string> WorkerArguments { get; init; } = [];

    /// <summary>
    /// How to start a worker (the meshai-agent executable and the arguments before <c>worker</c>); null = this same
    /// executable (<see cref="SelfCommand"/>). Set by a host that runs the agent's code in another executable (the
    /// worker-hop benchmark).
    /// </summary>
    public (string FileName, IReadOnlyList<string> Prefix)? Command { get; init; }

    /// <summary>Called with one machine-readable line per worker start (the agent prints it on stdout).</summary>
    public Action<string>? Announce { get; init; }

    /// <summary>
    /// How to start this same executable again: the apphost directly, or <c>dotnet meshai-agent.dll</c> when the
    /// agent itself runs under the dotnet host.
    /// </summary>
    public static (string FileName, IReadOnlyList<string> Prefix) SelfCommand()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find this executable's path");
        var name = Path.GetFileNameWithoutExtension(process);
        if (string.Equals(name, "dotnet", StringComparison.OrdinalIgnoreCase))
        {
            var dll = Assembly.GetEntryAssembly()?.Location;
            if (string.IsNullOrEmpty(dll))
            {
                throw new InvalidOperationException("running under dotnet but the entry assembly has no path");
            }

            return (process, [dll]);
        }

        return (process, []);
    }
}

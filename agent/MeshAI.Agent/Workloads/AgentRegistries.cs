namespace MeshAI.Agent.Workloads;

/// <summary>
/// What the running agent advertises and runs (the discovered registry, and its sandboxed wrapper unless
/// <c>--no-sandbox</c>), rebuilt when the device's models change mid-run (a model fetched after a pushed NetworkUpdate).
/// A replaced set is kept until no job may still run on it (<see cref="DisposeRetired"/>), then disposed.
/// </summary>
public sealed class AgentRegistries : IDisposable
{
    private readonly Func<IReadOnlyList<WorkloadRegistry>> _build;
    private readonly List<WorkloadRegistry> _retired = [];
    private List<WorkloadRegistry> _current;

    /// <summary>Builds the first set; <paramref name="build"/> returns the registries in creation order, the one to use last.</summary>
    public AgentRegistries(Func<IReadOnlyList<WorkloadRegistry>> build)
    {
        ArgumentNullException.ThrowIfNull(build);
        _build = build;
        _current = [.. build()];
    }

    /// <summary>The registry sessions advertise and run jobs with.</summary>
    public WorkloadRegistry Current => _current[^1];

    /// <summary>Discovers again (new models are verified and advertised); the previous set is retired.</summary>
    public void Rebuild()
    {
        var next = _build();
        _retired.AddRange(_current);
        _current = [.. next];
    }

    /// <summary>Disposes retired sets (call when no job is running).</summary>
    public void DisposeRetired()
    {
        DisposeAll(_retired);
        _retired.Clear();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        DisposeRetired();
        DisposeAll(_current);
    }

    private static void DisposeAll(List<WorkloadRegistry> registries)
    {
        for (var i = registries.Count - 1; i >= 0; i--)
        {
            registries[i].Dispose();
        }
    }
}

namespace MeshAI.Agent.Models;

/// <summary>
/// A running agent's answer to <c>NetworkUpdate.models_changed_unix_ms</c> (docs/models.md "Models pushed to running
/// agents"): the same fetch as at start (<c>auto_install</c> manifests this device lacks, every file verified against the
/// signed manifest before it is installed), run off the relay stream's read loop, one at a time, and once more when another
/// change arrived meanwhile. When a fetch installed a model, <see cref="Installed"/> is called (the agent ends its stream to
/// re-announce) and <see cref="TakeChanged"/> tells the agent to rebuild what it advertises before the next stream.
/// </summary>
public sealed class PushedModelSync(Func<CancellationToken, Task<bool>> sync, CancellationToken stopping)
{
    private readonly Lock _gate = new();
    private bool _pending;
    private bool _active;
    private int _changed;
    private Task _running = Task.CompletedTask;

    /// <summary>Called after a fetch installed at least one model.</summary>
    public Action? Installed { get; set; }

    /// <summary>Called with what stopped one fetch (it never stops the agent; the next change or start fetches again).</summary>
    public Action<Exception>? Failed { get; set; }

    /// <summary>True while a fetch installed a model that <see cref="TakeChanged"/> has not taken yet.</summary>
    public bool ChangePending => Volatile.Read(ref _changed) == 1;

    /// <summary>Asks for a fetch (coalesced with one already running: that one runs again when it ends).</summary>
    public void Request()
    {
        lock (_gate)
        {
            _pending = true;
            if (_active)
            {
                return;
            }

            _active = true;
            _running = Task.Run(LoopAsync, CancellationToken.None);
        }
    }

    /// <summary>True once after a fetch installed a model.</summary>
    public bool TakeChanged() => Interlocked.Exchange(ref _changed, 0) == 1;

    /// <summary>Waits for a fetch in progress to end (it stops with the agent's token).</summary>
    public async Task StopAsync()
    {
        try
        {
            await _running;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopped with the agent.
        }
    }

    private async Task LoopAsync()
    {
        while (true)
        {
            lock (_gate)
            {
                if (!_pending || stopping.IsCancellationRequested)
                {
                    _active = false;
                    return;
                }

                _pending = false;
            }

            var installed = false;
            try
            {
                installed = await sync(stopping);
            }
            catch (Exception ex)
            {
                if (stopping.IsCancellationRequested)
                {
                    lock (_gate)
                    {
                        _active = false;
                    }

                    return;
                }

                Failed?.Invoke(ex);
            }

            if (installed)
            {
                Interlocked.Exchange(ref _changed, 1);
                Installed?.Invoke();
            }
        }
    }
}

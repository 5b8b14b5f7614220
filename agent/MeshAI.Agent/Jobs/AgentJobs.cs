using System.Collections.Concurrent;
using System.Threading.Channels;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Agent.Jobs;

/// <summary>
/// The agent's jobs across relay streams (relay protocol 2): attempts still running, and terminal frames (accept, decline,
/// result, failure) numbered and kept until the relay acknowledges them — across reconnects, to whichever relay the agent
/// reaches next. Stream frames (tokens, progress, logs) go to the current stream with back-pressure, or nowhere between
/// streams; terminal frames are never dropped.
/// </summary>
public sealed class AgentJobs : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, RunningJob> _running = new(StringComparer.Ordinal);
    private readonly SortedDictionary<long, ConnectRequest> _unacked = [];
    private readonly Lock _gate = new();
    private readonly ConcurrentDictionary<Task, byte> _tasks = new();
    private readonly CancellationTokenSource _lifetime = new();
    private Func<ConnectRequest, CancellationToken, ValueTask>? _send;
    private long _sequence;

    /// <summary>An attempt running on this device.</summary>
    public sealed record RunningJob(string JobId, int Attempt, string ChunkId, CancellationTokenSource Cancel);

    /// <summary>Running attempts by "job/attempt".</summary>
    public ConcurrentDictionary<string, RunningJob> Running => _running;

    /// <summary>Cancelled when the agent stops: jobs outlive streams, not the agent.</summary>
    public CancellationToken Lifetime => _lifetime.Token;

    /// <summary>Terminal frames sent but not yet acknowledged.</summary>
    public int UnackedCount
    {
        get
        {
            lock (_gate)
            {
                return _unacked.Count;
            }
        }
    }

    /// <summary>The key of an attempt.</summary>
    public static string Key(string jobId, int attempt) => jobId + "/" + attempt;

    /// <summary>What the agent holds (running or unacknowledged), announced in the hello of its next stream.</summary>
    public IReadOnlyList<HeldAttempt> Held()
    {
        var held = _running.Values.Select(r => new HeldAttempt { JobId = r.JobId, Attempt = r.Attempt, ChunkId = r.ChunkId }).ToList();
        lock (_gate)
        {
            foreach (var frame in _unacked.Values)
            {
                var (jobId, attempt, chunkId) = Attempt(frame);
                if (!held.Any(h => h.JobId == jobId && h.Attempt == attempt && h.ChunkId == chunkId))
                {
                    held.Add(new HeldAttempt { JobId = jobId, Attempt = attempt, ChunkId = chunkId });
                }
            }
        }

        return held;
    }

    /// <summary>Routes frames to a stream's writer from now on (a new stream replaces the previous one).</summary>
    public void Attach(Func<ConnectRequest, CancellationToken, ValueTask> send) => Volatile.Write(ref _send, send);

    /// <summary>Stops routing frames to <paramref name="send"/> (its stream ended).</summary>
    public void Detach(Func<ConnectRequest, CancellationToken, ValueTask> send) => Interlocked.CompareExchange(ref _send, null, send);

    /// <summary>The unacknowledged terminal frames in sequence order (re-sent at the start of each stream).</summary>
    public IReadOnlyList<ConnectRequest> Unacked()
    {
        lock (_gate)
        {
            return [.. _unacked.Values];
        }
    }

    /// <summary>The relay acknowledged a terminal frame: control has it.</summary>
    public void Ack(long sequence)
    {
        lock (_gate)
        {
            _unacked.Remove(sequence);
        }
    }

    /// <summary>Numbers a terminal frame, keeps it until acknowledged and sends it on the current stream (waiting for room).</summary>
    public async ValueTask SendTerminalAsync(ConnectRequest frame, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(frame);
        lock (_gate)
        {
            frame.Sequence = ++_sequence;
            _unacked[frame.Sequence] = frame;
        }

        await SendStreamAsync(frame, cancellationToken);
    }

    /// <summary>Sends a frame on the current stream with back-pressure; between streams (or when the stream closes meanwhile) it is not sent.</summary>
    public async ValueTask SendStreamAsync(ConnectRequest frame, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _send) is not { } send)
        {
            return;
        }

        try
        {
            await send(frame, cancellationToken);
        }
        catch (ChannelClosedException)
        {
            // The stream ended; a terminal frame stays in the outbox for the next one.
        }
    }

    /// <summary>Tracks a job's task so stopping the agent awaits it.</summary>
    public void Track(Task task)
    {
        _tasks[task] = 0;
        _ = task.ContinueWith(t => _tasks.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Cancels every running job and awaits them.</summary>
    public async ValueTask DisposeAsync()
    {
        await _lifetime.CancelAsync();
        foreach (var job in _running.Values)
        {
            await job.Cancel.CancelAsync();
        }

        try
        {
            await Task.WhenAll(_tasks.Keys);
        }
        catch (OperationCanceledException)
        {
            // jobs end with the cancellation
        }

        _lifetime.Dispose();
    }

    private static (string JobId, int Attempt, string ChunkId) Attempt(ConnectRequest frame) => frame.FrameCase switch
    {
        ConnectRequest.FrameOneofCase.JobAccept => (frame.JobAccept.JobId, frame.JobAccept.Attempt, frame.JobAccept.ChunkId),
        ConnectRequest.FrameOneofCase.JobDecline => (frame.JobDecline.JobId, frame.JobDecline.Attempt, frame.JobDecline.ChunkId),
        ConnectRequest.FrameOneofCase.JobResult => (frame.JobResult.JobId, frame.JobResult.Attempt, frame.JobResult.ChunkId),
        ConnectRequest.FrameOneofCase.JobFailure => (frame.JobFailure.JobId, frame.JobFailure.Attempt, frame.JobFailure.ChunkId),
        _ => ("", 0, ""),
    };
}

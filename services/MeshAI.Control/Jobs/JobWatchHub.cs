using System.Collections.Concurrent;
using System.Threading.Channels;
using Google.Protobuf;
using MeshAI.Common.Bus;
using MeshAI.Contracts.Bus.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Control.Jobs;

/// <summary>
/// Per-job broadcast of watch frames to every WatchJob stream. While a job runs, its token, progress and log frames are
/// also kept (bounded) and replayed to watchers that subscribe late, so a client that submits and then watches never
/// misses the first tokens. Across instances (scale-out: a watcher's call may land on another control instance than the
/// job's owner) every frame is also published on the bus channel of the job; an instance with local watchers of a job it
/// does not run subscribes to that channel while they watch.
/// </summary>
public sealed class JobWatchHub
{
    private const int SubscriberBuffer = 4096;
    private const int ReplayFrames = 4096;
    private readonly ConcurrentDictionary<string, JobFrames> _jobs = new(StringComparer.Ordinal);
    private readonly IMeshBus? _bus;
    private readonly BusNames? _names;
    private readonly string _origin = "";

    /// <summary>A hub for this process only (unit tests).</summary>
    public JobWatchHub()
    {
    }

    /// <summary>
    /// A hub whose frames also reach watchers on other instances through the bus. On a bus no other instance can be on (the
    /// embedded server's <see cref="InProcessMeshBus"/>) it is a hub for this process only: every watcher is local, so a frame
    /// is not serialised onto the bus and parsed back by this very hub, a watched job costs no bus subscription, and a status
    /// nobody watches is not read (issue #11, docs/job-plane.md "Reports and offers in one process").
    /// </summary>
    public JobWatchHub(IMeshBus bus, BusNames names, ControlInstance instance)
    {
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(instance);
        _origin = instance.Id;
        if (!bus.ReachesOtherProcesses)
        {
            return;
        }

        _bus = bus;
        _names = names;
        _ = bus.SubscribeAsync(names.WatchReplay(instance.Id), OnReplayRequest, CancellationToken.None);
    }

    /// <summary>How long a late watcher waits for the owner's replay before it carries on with live frames only.</summary>
    public static TimeSpan ReplayTimeout { get; } = TimeSpan.FromSeconds(3);

    /// <summary>A subscription; dispose to stop receiving.</summary>
    public sealed class Subscription(JobWatchHub hub, string jobId, Channel<WatchJobResponse> channel, Task ready) : IDisposable
    {
        /// <summary>Frames published so far for the running job (replayed), then every frame published after subscribing.</summary>
        public ChannelReader<WatchJobResponse> Frames => channel.Reader;

        /// <summary>Completes once frames published on other instances reach this subscription too.</summary>
        public Task Ready => ready;

        /// <inheritdoc />
        public void Dispose() => hub.Unsubscribe(jobId, channel);
    }

    /// <summary>Starts receiving the job's frames. Slow readers lose their oldest frames, never the newest (terminal) one.</summary>
    public Subscription Subscribe(string jobId)
    {
        var channel = Channel.CreateBounded<WatchJobResponse>(new BoundedChannelOptions(SubscriberBuffer)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
        });
        var frames = _jobs.GetOrAdd(jobId, _ => new JobFrames());
        Task ready;
        lock (frames)
        {
            foreach (var frame in frames.History)
            {
                channel.Writer.TryWrite(frame);
            }

            frames.Subscribers.Add(channel);
            if (_bus is not null && frames.Remote is null)
            {
                frames.Remote = _bus.SubscribeAsync(_names!.Watch(jobId), OnRemoteFrame, CancellationToken.None);
            }

            ready = frames.Remote ?? Task.CompletedTask;
        }

        return new Subscription(this, jobId, channel, ready);
    }

    /// <summary>
    /// True when a frame for the job could reach a watcher: one is subscribed here, or a bus carries frames to other
    /// instances. A non-terminal status nobody watches need not be built (WatchJob subscribes before it reads the store).
    /// </summary>
    public bool HasWatchers(string jobId)
    {
        if (_bus is not null)
        {
            return true;
        }

        if (!_jobs.TryGetValue(jobId, out var frames))
        {
            return false;
        }

        lock (frames)
        {
            return frames.Subscribers.Count > 0;
        }
    }

    /// <summary>Sends a frame to every watcher of the job on every instance (and keeps stream frames of a running job for late watchers).</summary>
    public void Publish(string jobId, WatchJobResponse frame)
    {
        Deliver(jobId, frame, owned: true);
        if (IsTerminal(frame) && (frame.Result?.Job ?? frame.Status?.Job) is { } ended)
        {
            Observability.JobOutcomes.Record(ended); // metrics hook (#17): job_latency_ms, counted once, by the job's owner
        }

        _bus?.Post(_names!.Watch(jobId), new WatchFrame { JobId = jobId, OriginInstance = _origin, Frame = frame }.ToByteArray());
    }

    /// <summary>
    /// The stream frames the owner <paramref name="ownerInstance"/> kept for a running job, asked over the bus (a late
    /// watcher on this instance). Null when this instance is the owner (its own buffer replays on subscribe), there is no
    /// bus or owner, the owner does not run the job, or it did not answer within <see cref="ReplayTimeout"/>.
    /// </summary>
    public async Task<IReadOnlyList<WatchJobResponse>?> RequestReplayAsync(string jobId, string? ownerInstance, CancellationToken ct)
    {
        if (_bus is null || string.IsNullOrEmpty(ownerInstance) || ownerInstance == _origin)
        {
            return null;
        }

        var reply = _names!.WatchReplay(_origin) + ":" + Guid.NewGuid().ToString("N");
        var answered = new TaskCompletionSource<WatchReplay>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var subscription = await _bus.SubscribeAsync(reply, m =>
        {
            answered.TrySetResult(WatchReplay.Parser.ParseFrom(m));
            return Task.CompletedTask;
        }, ct);
        await _bus.PublishAsync(_names.WatchReplay(ownerInstance), new WatchReplayRequest { JobId = jobId, ReplyChannel = reply }.ToByteArray(), ct);
        try
        {
            var replay = await answered.Task.WaitAsync(ReplayTimeout, ct);
            return replay.Owned ? replay.Frames : null;
        }
        catch (TimeoutException)
        {
            return null; // the owner died or is slow: the watcher gets the stored state and live frames, as without replay
        }
    }

    private Task OnReplayRequest(byte[] message)
    {
        var request = WatchReplayRequest.Parser.ParseFrom(message);
        var replay = new WatchReplay { JobId = request.JobId };
        if (_jobs.TryGetValue(request.JobId, out var frames))
        {
            lock (frames)
            {
                replay.Owned = frames.Owned;
                if (frames.Owned)
                {
                    replay.Frames.AddRange(frames.History);
                }
            }
        }

        if (request.ReplyChannel.StartsWith(_names!.Prefix, StringComparison.Ordinal))
        {
            _bus!.Post(request.ReplyChannel, replay.ToByteArray());
        }

        return Task.CompletedTask;
    }

    private Task OnRemoteFrame(byte[] message)
    {
        var remote = WatchFrame.Parser.ParseFrom(message);
        if (remote.OriginInstance != _origin && remote.Frame is not null && _jobs.ContainsKey(remote.JobId))
        {
            Deliver(remote.JobId, remote.Frame, owned: false);
        }

        return Task.CompletedTask;
    }

    private void Deliver(string jobId, WatchJobResponse frame, bool owned)
    {
        ArgumentNullException.ThrowIfNull(frame);
        var terminal = IsTerminal(frame);
        var frames = terminal ? _jobs.GetValueOrDefault(jobId) : _jobs.GetOrAdd(jobId, _ => new JobFrames());
        if (frames is null)
        {
            return;
        }

        lock (frames)
        {
            frames.Owned |= owned;
            if (frame.FrameCase is WatchJobResponse.FrameOneofCase.Token or WatchJobResponse.FrameOneofCase.Progress or WatchJobResponse.FrameOneofCase.Log)
            {
                if (frames.History.Count == ReplayFrames)
                {
                    frames.History.Dequeue();
                }

                frames.History.Enqueue(frame);
            }

            foreach (var channel in frames.Subscribers)
            {
                channel.Writer.TryWrite(frame);
            }

            if (terminal)
            {
                // The store has the final state from here on; WatchJob replays it to later watchers.
                frames.History.Clear();
                if (frames.Subscribers.Count == 0)
                {
                    _jobs.TryRemove(new KeyValuePair<string, JobFrames>(jobId, frames));
                }
            }
        }
    }

    private static bool IsTerminal(WatchJobResponse frame) =>
        frame.FrameCase == WatchJobResponse.FrameOneofCase.Result ||
        (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status &&
         frame.Status.Job?.State is JobState.Completed or JobState.Failed or JobState.Cancelled);

    private void Unsubscribe(string jobId, Channel<WatchJobResponse> channel)
    {
        channel.Writer.TryComplete();
        if (_jobs.TryGetValue(jobId, out var frames))
        {
            lock (frames)
            {
                frames.Subscribers.Remove(channel);
                if (frames.Subscribers.Count == 0 && frames.Remote is { } remote)
                {
                    frames.Remote = null;
                    _ = CloseRemoteAsync(remote);
                }

                if (frames.Subscribers.Count == 0 && frames.History.Count == 0)
                {
                    _jobs.TryRemove(new KeyValuePair<string, JobFrames>(jobId, frames));
                }
            }
        }
    }

    private static async Task CloseRemoteAsync(Task<IAsyncDisposable> remote)
    {
        try
        {
            await (await remote).DisposeAsync();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The bus is down or the subscription never opened; nothing is left to close.
        }
    }

    private sealed class JobFrames
    {
        public Task<IAsyncDisposable>? Remote { get; set; }

        public Queue<WatchJobResponse> History { get; } = new();

        /// <summary>True when this instance published the frames (it runs the job): only then is its history a replay.</summary>
        public bool Owned { get; set; }

        public List<Channel<WatchJobResponse>> Subscribers { get; } = [];
    }
}

using System.Collections.Concurrent;
using System.Threading.Channels;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Control.Jobs;

/// <summary>
/// In-memory per-job broadcast of watch frames to every WatchJob stream of this process. While a job runs, its
/// token, progress and log frames are also kept (bounded) and replayed to watchers that subscribe late, so a
/// client that submits and then watches never misses the first tokens.
/// </summary>
public sealed class JobWatchHub
{
    private const int SubscriberBuffer = 4096;
    private const int ReplayFrames = 4096;
    private readonly ConcurrentDictionary<string, JobFrames> _jobs = new(StringComparer.Ordinal);

    /// <summary>A subscription; dispose to stop receiving.</summary>
    public sealed class Subscription(JobWatchHub hub, string jobId, Channel<WatchJobResponse> channel) : IDisposable
    {
        /// <summary>Frames published so far for the running job (replayed), then every frame published after subscribing.</summary>
        public ChannelReader<WatchJobResponse> Frames => channel.Reader;

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
        lock (frames)
        {
            foreach (var frame in frames.History)
            {
                channel.Writer.TryWrite(frame);
            }

            frames.Subscribers.Add(channel);
        }

        return new Subscription(this, jobId, channel);
    }

    /// <summary>Sends a frame to every watcher of the job (and keeps stream frames of a running job for late watchers).</summary>
    public void Publish(string jobId, WatchJobResponse frame)
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
                if (frames.Subscribers.Count == 0 && frames.History.Count == 0)
                {
                    _jobs.TryRemove(new KeyValuePair<string, JobFrames>(jobId, frames));
                }
            }
        }
    }

    private sealed class JobFrames
    {
        public Queue<WatchJobResponse> History { get; } = new();

        public List<Channel<WatchJobResponse>> Subscribers { get; } = [];
    }
}

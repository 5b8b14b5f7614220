using System.Collections.Concurrent;
using System.Threading.Channels;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Control.Jobs;

/// <summary>In-memory per-job broadcast of watch frames to every WatchJob stream of this process.</summary>
public sealed class JobWatchHub
{
    private const int SubscriberBuffer = 4096;
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<Channel<WatchJobResponse>, byte>> _subscribers = new(StringComparer.Ordinal);

    /// <summary>A subscription; dispose to stop receiving.</summary>
    public sealed class Subscription(JobWatchHub hub, string jobId, Channel<WatchJobResponse> channel) : IDisposable
    {
        /// <summary>Frames published after subscribing.</summary>
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
        _subscribers.GetOrAdd(jobId, _ => new ConcurrentDictionary<Channel<WatchJobResponse>, byte>())[channel] = 0;
        return new Subscription(this, jobId, channel);
    }

    /// <summary>Sends a frame to every watcher of the job.</summary>
    public void Publish(string jobId, WatchJobResponse frame)
    {
        if (_subscribers.TryGetValue(jobId, out var set))
        {
            foreach (var channel in set.Keys)
            {
                channel.Writer.TryWrite(frame);
            }
        }
    }

    private void Unsubscribe(string jobId, Channel<WatchJobResponse> channel)
    {
        channel.Writer.TryComplete();
        if (_subscribers.TryGetValue(jobId, out var set))
        {
            set.TryRemove(channel, out _);
            if (set.IsEmpty)
            {
                _subscribers.TryRemove(new KeyValuePair<string, ConcurrentDictionary<Channel<WatchJobResponse>, byte>>(jobId, set));
            }
        }
    }
}

using System.Collections.Concurrent;
using System.Threading.Channels;

namespace MeshAI.Common.Bus;

/// <summary>
/// What instances share besides the store (DESIGN.md §3): pub/sub channels (frames and job events between relay and
/// control instances, watch fan-out), short-lived keys with a TTL (presence) and counters (rate limits). Redis in
/// scale-out; <see cref="InProcessMeshBus"/> in the embedded default — the same code path either way, except that a job's
/// reports, offers and watch frames skip the bus when the relay and the job's runner are in one process (issue #11,
/// docs/job-plane.md "Reports and offers in one process").
/// Messages on one channel are delivered to each subscriber in publish order.
/// </summary>
public interface IMeshBus
{
    /// <summary>Publishes without waiting (fire and forget: soft frames, presence).</summary>
    void Post(string channel, byte[] message);

    /// <summary>Publishes and waits until the bus took the message.</summary>
    Task PublishAsync(string channel, byte[] message, CancellationToken cancellationToken);

    /// <summary>Delivers every message published on <paramref name="channel"/> from now on to <paramref name="handler"/>, in order, until disposed.</summary>
    Task<IAsyncDisposable> SubscribeAsync(string channel, Func<byte[], Task> handler, CancellationToken cancellationToken);

    /// <summary>Sets a key that expires after <paramref name="ttl"/> (fire and forget).</summary>
    void SetWithTtl(string key, byte[] value, TimeSpan ttl);

    /// <summary>Deletes a key (fire and forget).</summary>
    void Delete(string key);

    /// <summary>Every live key starting with <paramref name="prefix"/> and its value.</summary>
    Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ScanAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>Increments a counter that expires <paramref name="ttl"/> after its first increment; returns the new value.</summary>
    Task<long> IncrementAsync(string key, TimeSpan ttl, CancellationToken cancellationToken);

    /// <summary>
    /// True when other processes (other control or relay instances) may be on this bus (Redis). False for the embedded bus,
    /// whose only subscribers are the one host that made it: a publisher whose messages only matter to other instances
    /// (watch frames for watchers elsewhere) can skip them (issue #11).
    /// </summary>
    bool ReachesOtherProcesses => true;
}

/// <summary>
/// The embedded default's bus: the same semantics as Redis inside one process (ordered per subscriber, TTL keys). One host
/// makes one (a DI singleton), so nothing on it is another instance (<see cref="ReachesOtherProcesses"/> is false).
/// </summary>
public sealed class InProcessMeshBus(TimeProvider clock) : IMeshBus, IAsyncDisposable
{
    /// <inheritdoc />
    public bool ReachesOtherProcesses => false;

    private readonly ConcurrentDictionary<string, ConcurrentDictionary<Subscription, byte>> _channels = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (byte[] Value, DateTimeOffset Expires)> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (long Count, DateTimeOffset Expires)> _counters = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public void Post(string channel, byte[] message)
    {
        if (_channels.TryGetValue(channel, out var subscribers))
        {
            foreach (var subscription in subscribers.Keys)
            {
                subscription.Deliver(message);
            }
        }
    }

    /// <inheritdoc />
    public Task PublishAsync(string channel, byte[] message, CancellationToken cancellationToken)
    {
        Post(channel, message);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<IAsyncDisposable> SubscribeAsync(string channel, Func<byte[], Task> handler, CancellationToken cancellationToken)
    {
        var subscription = new Subscription(this, channel, handler);
        _channels.GetOrAdd(channel, _ => new ConcurrentDictionary<Subscription, byte>())[subscription] = 0;
        return Task.FromResult<IAsyncDisposable>(subscription);
    }

    /// <inheritdoc />
    public void SetWithTtl(string key, byte[] value, TimeSpan ttl) => _keys[key] = (value, clock.GetUtcNow() + ttl);

    /// <inheritdoc />
    public void Delete(string key) => _keys.TryRemove(key, out _);

    /// <inheritdoc />
    public Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ScanAsync(string prefix, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        IReadOnlyList<KeyValuePair<string, byte[]>> live = _keys.Where(k => k.Key.StartsWith(prefix, StringComparison.Ordinal) && k.Value.Expires > now)
            .Select(k => new KeyValuePair<string, byte[]>(k.Key, k.Value.Value)).ToList();
        return Task.FromResult(live);
    }

    /// <inheritdoc />
    public Task<long> IncrementAsync(string key, TimeSpan ttl, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var updated = _counters.AddOrUpdate(key, _ => (1, now + ttl), (_, c) => c.Expires <= now ? (1, now + ttl) : (c.Count + 1, c.Expires));
        if (_counters.Count > 100_000)
        {
            foreach (var stale in _counters.Where(c => c.Value.Expires <= now).Select(c => c.Key).ToList())
            {
                _counters.TryRemove(stale, out _);
            }
        }

        return Task.FromResult(updated.Count);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var subscription in _channels.Values.SelectMany(s => s.Keys).ToList())
        {
            await subscription.DisposeAsync();
        }
    }

    /// <summary>One subscriber: its own ordered queue drained by one loop (like a Redis subscription's message queue).</summary>
    private sealed class Subscription : IAsyncDisposable
    {
        private readonly InProcessMeshBus _bus;
        private readonly string _channel;
        private readonly Channel<byte[]> _queue = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
        private readonly Task _loop;

        public Subscription(InProcessMeshBus bus, string channel, Func<byte[], Task> handler)
        {
            _bus = bus;
            _channel = channel;
            _loop = RunAsync(handler);
        }

        public void Deliver(byte[] message) => _queue.Writer.TryWrite(message);

        public async ValueTask DisposeAsync()
        {
            if (_bus._channels.TryGetValue(_channel, out var subscribers))
            {
                subscribers.TryRemove(this, out _);
            }

            _queue.Writer.TryComplete();
            await _loop;
        }

        private async Task RunAsync(Func<byte[], Task> handler)
        {
            await foreach (var message in _queue.Reader.ReadAllAsync())
            {
                try
                {
                    await handler(message);
                }
#pragma warning disable CA1031 // a subscriber's failure must not end its subscription (Redis behaves the same)
                catch (Exception)
#pragma warning restore CA1031
                {
                }
            }
        }
    }
}

/// <summary>The bus channel and key names, under one prefix per deployment.</summary>
public sealed class BusNames(string prefix)
{
    /// <summary>The prefix every name starts with.</summary>
    public string Prefix { get; } = prefix;

    /// <summary>A control instance's own channel (reports for jobs it owns).</summary>
    public string Control(string instanceId) => $"{Prefix}ctl:{instanceId}";

    /// <summary>Every control instance (reports whose owner is unknown, device events).</summary>
    public string AllControl => $"{Prefix}ctl";

    /// <summary>Replies to one instance.</summary>
    public string Reply(string instanceId) => $"{Prefix}reply:{instanceId}";

    /// <summary>One relay's commands.</summary>
    public string Relay(string relayId) => $"{Prefix}relay:{relayId}";

    /// <summary>Every relay (cuts).</summary>
    public string AllRelays => $"{Prefix}relay";

    /// <summary>Presence updates.</summary>
    public string Presence => $"{Prefix}presence";

    /// <summary>A device's presence key.</summary>
    public string PresenceKey(string deviceId) => $"{Prefix}presence:{deviceId}";

    /// <summary>The prefix of every presence key.</summary>
    public string PresenceKeys => $"{Prefix}presence:";

    /// <summary>A job's watch frames.</summary>
    public string Watch(string jobId) => $"{Prefix}watch:{jobId}";

    /// <summary>Where an instance answers requests for the watch replay of the jobs it runs.</summary>
    public string WatchReplay(string instanceId) => $"{Prefix}watch-replay:{instanceId}";

    /// <summary>A rate-limit counter.</summary>
    public string Rate(string key) => $"{Prefix}rate:{key}";

    /// <summary>Every control instance: clear your authorisation cache (AccessInvalidation).</summary>
    public string AccessInvalidations => $"{Prefix}access";
}

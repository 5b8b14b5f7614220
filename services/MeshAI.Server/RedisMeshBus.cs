using MeshAI.Common.Bus;
using StackExchange.Redis;

namespace MeshAI.Server;

/// <summary>
/// The scale-out bus on Redis (<c>--bus redis://host:port</c>): pub/sub channels (each subscription an ordered message
/// queue), keys with a TTL, counters. StackExchange.Redis reconnects and re-subscribes by itself after a Redis restart;
/// while Redis is down, posts are lost (soft state), awaited publishes throw and their callers retry.
/// </summary>
public sealed partial class RedisMeshBus : IMeshBus, IAsyncDisposable
{
    private readonly ConnectionMultiplexer _redis;
    private readonly ILogger<RedisMeshBus> _logger;

    private RedisMeshBus(ConnectionMultiplexer redis, ILogger<RedisMeshBus> logger)
    {
        _redis = redis;
        _logger = logger;
    }

    /// <summary>Connects to redis://host:port (retrying in the background while Redis is not up yet).</summary>
    public static RedisMeshBus Connect(string url, ILogger<RedisMeshBus> logger)
    {
        var uri = new Uri(url);
        var options = ConfigurationOptions.Parse($"{uri.Host}:{(uri.Port > 0 ? uri.Port : 6379)}");
        options.AbortOnConnectFail = false;
        options.ConnectRetry = 10;
        options.ReconnectRetryPolicy = new LinearRetry(250);
        options.ClientName = "meshai-server";
        return new RedisMeshBus(ConnectionMultiplexer.Connect(options), logger);
    }

    private static RedisChannel Channel(string name) => RedisChannel.Literal(name);

    /// <inheritdoc />
    public void Post(string channel, byte[] message)
    {
        try
        {
            _redis.GetSubscriber().Publish(Channel(channel), message, CommandFlags.FireAndForget);
        }
        catch (RedisException ex)
        {
            LogLost(channel, ex.Message);
        }
    }

    /// <inheritdoc />
    public async Task PublishAsync(string channel, byte[] message, CancellationToken cancellationToken) =>
        await _redis.GetSubscriber().PublishAsync(Channel(channel), message).WaitAsync(cancellationToken);

    /// <inheritdoc />
    public async Task<IAsyncDisposable> SubscribeAsync(string channel, Func<byte[], Task> handler, CancellationToken cancellationToken)
    {
        var queue = await _redis.GetSubscriber().SubscribeAsync(Channel(channel)).WaitAsync(cancellationToken);
        queue.OnMessage(async message =>
        {
            try
            {
                await handler((byte[])message.Message!);
            }
#pragma warning disable CA1031 // one bad message must not end the subscription
            catch (Exception ex)
#pragma warning restore CA1031
            {
                LogHandlerFailed(ex, channel);
            }
        });
        return new Unsubscribe(queue);
    }

    /// <inheritdoc />
    public void SetWithTtl(string key, byte[] value, TimeSpan ttl)
    {
        try
        {
            _redis.GetDatabase().StringSet(key, value, ttl, flags: CommandFlags.FireAndForget);
        }
        catch (RedisException ex)
        {
            LogLost(key, ex.Message);
        }
    }

    /// <inheritdoc />
    public void Delete(string key)
    {
        try
        {
            _redis.GetDatabase().KeyDelete(key, CommandFlags.FireAndForget);
        }
        catch (RedisException ex)
        {
            LogLost(key, ex.Message);
        }
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ScanAsync(string prefix, CancellationToken cancellationToken)
    {
        var result = new List<KeyValuePair<string, byte[]>>();
        var database = _redis.GetDatabase();
        foreach (var endpoint in _redis.GetEndPoints())
        {
            var server = _redis.GetServer(endpoint);
            if (!server.IsConnected)
            {
                continue;
            }

            await foreach (var key in server.KeysAsync(pattern: prefix + "*").WithCancellation(cancellationToken))
            {
                if (await database.StringGetAsync(key) is { HasValue: true } value)
                {
                    result.Add(new KeyValuePair<string, byte[]>(key!, (byte[])value!));
                }
            }
        }

        return result;
    }

    /// <inheritdoc />
    public async Task<long> IncrementAsync(string key, TimeSpan ttl, CancellationToken cancellationToken)
    {
        var database = _redis.GetDatabase();
        var value = await database.StringIncrementAsync(key).WaitAsync(cancellationToken);
        if (value == 1)
        {
            await database.KeyExpireAsync(key, ttl).WaitAsync(cancellationToken);
        }

        return value;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await _redis.DisposeAsync();

    private sealed class Unsubscribe(ChannelMessageQueue queue) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await queue.UnsubscribeAsync();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Bus write to {Name} lost: {Error}")]
    private partial void LogLost(string name, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Bus handler on {Channel} failed")]
    private partial void LogHandlerFailed(Exception exception, string channel);
}

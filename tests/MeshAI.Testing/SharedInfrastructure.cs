namespace MeshAI.Testing;

/// <summary>
/// Real PostgreSQL and Redis started lazily, at most once per test assembly (each test assembly runs in its own
/// process), shared by all its tests. Call <see cref="StopAllAsync"/> from the assembly's [SetUpFixture] [OneTimeTearDown].
/// </summary>
/// <example>
/// <code>
/// var pg = await SharedInfrastructure.Postgres;                         // PostgresServer
/// var cs = await pg.CreateUniqueDatabaseAsync("ledger");                // isolated database for this suite
/// var redis = await SharedInfrastructure.Redis;                         // RedisServer, redis.ConnectionString
/// </code>
/// </example>
public static class SharedInfrastructure
{
    private static readonly object Gate = new();
    private static Lazy<Task<PostgresServer>> _postgres = NewPostgres();
    private static Lazy<Task<RedisServer>> _redis = NewRedis();

    static SharedInfrastructure()
    {
        // Safety net when a runner exits without calling StopAllAsync.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => StopAllAsync().GetAwaiter().GetResult();
    }

    /// <summary>The assembly's PostgreSQL cluster, started on first use; a failed start is cached and rethrown to every caller.</summary>
    public static Task<PostgresServer> Postgres
    {
        get
        {
            lock (Gate)
            {
                return _postgres.Value;
            }
        }
    }

    /// <summary>The assembly's redis-server, started on first use; a failed start is cached and rethrown to every caller.</summary>
    public static Task<RedisServer> Redis
    {
        get
        {
            lock (Gate)
            {
                return _redis.Value;
            }
        }
    }

    /// <summary>Creates an isolated database (prefix_random) in the shared cluster and returns its connection string.</summary>
    public static async Task<string> CreatePostgresDatabaseAsync(string prefix = "test", CancellationToken cancellationToken = default)
    {
        var server = await Postgres.ConfigureAwait(false);
        return await server.CreateUniqueDatabaseAsync(prefix, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops whatever was started (safe to call when nothing was, and more than once); later use starts fresh servers.</summary>
    public static async Task StopAllAsync()
    {
        Lazy<Task<PostgresServer>> postgres;
        Lazy<Task<RedisServer>> redis;
        lock (Gate)
        {
            postgres = _postgres;
            redis = _redis;
            _postgres = NewPostgres();
            _redis = NewRedis();
        }

        await DisposeStartedAsync(postgres).ConfigureAwait(false);
        await DisposeStartedAsync(redis).ConfigureAwait(false);
    }

    private static Lazy<Task<PostgresServer>> NewPostgres() =>
        new(() => Task.Run(() => PostgresServer.StartAsync()), LazyThreadSafetyMode.ExecutionAndPublication);

    private static Lazy<Task<RedisServer>> NewRedis() =>
        new(() => Task.Run(() => RedisServer.StartAsync()), LazyThreadSafetyMode.ExecutionAndPublication);

    private static async Task DisposeStartedAsync<T>(Lazy<Task<T>> lazy)
        where T : IAsyncDisposable
    {
        if (!lazy.IsValueCreated)
        {
            return;
        }

        try
        {
            var server = await lazy.Value.ConfigureAwait(false);
            await server.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // It never started; the start error was already reported to the tests that used it.
        }
    }
}

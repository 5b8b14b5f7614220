using Dapper;
using MeshAI.Testing;
using Npgsql;
using NUnit.Framework;
using StackExchange.Redis;

namespace MeshAI.Integration.Tests;

/// <summary>Proves the real PostgreSQL and Redis started by the shared fixture are reachable through the client libraries.</summary>
[TestFixture]
[Category("Integration")]
public sealed class InfrastructureSmokeTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Test]
    public async Task Postgres_round_trips_rows_through_Dapper_in_an_isolated_database()
    {
        var connectionString = await SharedInfrastructure.CreatePostgresDatabaseAsync("smoke");
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();

        await connection.ExecuteAsync("CREATE TABLE widgets (id integer PRIMARY KEY, name text NOT NULL, weight numeric NOT NULL)");
        var inserted = await connection.ExecuteAsync(
            "INSERT INTO widgets (id, name, weight) VALUES (@Id, @Name, @Weight)",
            new[] { new Widget(1, "sprocket", 1.5m), new Widget(2, "gear", 2.25m) });
        var rows = (await connection.QueryAsync<Widget>("SELECT id, name, weight FROM widgets ORDER BY id")).ToList();

        Assert.That(inserted, Is.EqualTo(2));
        Assert.That(rows, Is.EqualTo(new[] { new Widget(1, "sprocket", 1.5m), new Widget(2, "gear", 2.25m) }));
        Assert.That(await connection.ExecuteScalarAsync<string>("SELECT current_setting('server_version_num')"), Does.StartWith("15"));
    }

    [Test]
    public async Task Each_created_database_starts_empty()
    {
        var server = await SharedInfrastructure.Postgres;
        var first = await server.CreateDatabaseAsync("smoke_isolation");
        await using (var connection = new NpgsqlConnection(first))
        {
            await connection.ExecuteAsync("CREATE TABLE leftover (id int)");
        }

        var again = await server.CreateDatabaseAsync("smoke_isolation");
        await using var fresh = new NpgsqlConnection(again);
        var tables = await fresh.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");

        Assert.That(tables, Is.Zero);
    }

    [Test]
    public async Task Redis_sets_and_gets_a_value()
    {
        var redis = await SharedInfrastructure.Redis;
        await using var mux = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = mux.GetDatabase();
        var key = new RedisKey($"smoke:{Guid.NewGuid():N}");

        Assert.That(await db.StringSetAsync(key, "hello", TimeSpan.FromMinutes(1)), Is.True);
        Assert.That((string?)await db.StringGetAsync(key), Is.EqualTo("hello"));
    }

    [Test]
    public async Task Redis_delivers_a_published_message_to_a_subscriber()
    {
        var redis = await SharedInfrastructure.Redis;
        await using var publisherMux = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        await using var subscriberMux = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var channel = RedisChannel.Literal($"smoke:{Guid.NewGuid():N}");
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);

        await subscriberMux.GetSubscriber().SubscribeAsync(channel, (_, message) => received.TrySetResult(message.ToString()));
        var receivers = await publisherMux.GetSubscriber().PublishAsync(channel, "ping");

        Assert.That(receivers, Is.EqualTo(1));
        Assert.That(await received.Task.WaitAsync(Timeout), Is.EqualTo("ping"));
    }

    [Test]
    public async Task ProcessRunner_captures_output_and_waits_for_a_matching_line()
    {
        await using var runner = ProcessRunner.Start(new ProcessRunnerOptions
        {
            FileName = "/bin/sh",
            Arguments = ["-c", "echo starting; echo oops >&2; echo \"ready on $MESHAI_SMOKE\"; sleep 30"],
            Environment = new Dictionary<string, string?> { ["MESHAI_SMOKE"] = "42" },
            Name = "sh",
        });

        var line = await runner.WaitForLineAsync(l => l.StartsWith("ready on", StringComparison.Ordinal), Timeout);
        await runner.WaitForLineAsync("oops", Timeout);

        Assert.That(line.Text, Is.EqualTo("ready on 42"));
        Assert.That(runner.StandardErrorText, Is.EqualTo("oops"));
        Assert.That(runner.HasExited, Is.False);

        runner.Kill();
        await runner.WaitForExitAsync(Timeout);
        Assert.That(runner.HasExited, Is.True);
    }

    [Test]
    public async Task ProcessRunner_reports_an_exit_before_the_expected_line()
    {
        await using var runner = ProcessRunner.Start("/bin/sh", "-c", "echo bye; exit 3");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => runner.WaitForLineAsync("never", Timeout));

        Assert.That(error!.Message, Does.Contain("exited with code 3").And.Contain("bye"));
    }

    private sealed record Widget(int Id, string Name, decimal Weight);
}

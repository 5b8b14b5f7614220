using Dapper;
using MeshAI.Control.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>
/// The embedded store's pooled connections and their prepared statements (#11; docs/job-plane.md "Prepared statements on the
/// embedded store"), against a real SQLite file through <see cref="Database"/> and Dapper as the repositories use them.
/// </summary>
[Category("Integration")]
public sealed class SqliteStatementCacheTests
{
    private static readonly string[] FirstAndSecond = ["first", "second"];
    private static readonly long[] OnlyTheCommitted = [8L];
    private string _path = null!;
    private Database _database = null!;

    // The store owns the dialect (the host disposes it); the test reads its counters.
    private SqliteDialect _dialect => (SqliteDialect)_database.Dialect;

    [SetUp]
    public async Task OpenStore()
    {
        _path = Path.Combine(Path.GetTempPath(), "meshai-stmt-" + Guid.NewGuid().ToString("N")[..10] + ".db");
        _database = new Database(new SqliteDialect(_path));
        await new Migrator(_database, NullLogger<Migrator>.Instance).MigrateAsync(CancellationToken.None);
        await _database.RunAsync(c => c.ExecuteAsync("CREATE TABLE stmt_test (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"), CancellationToken.None);
    }

    [TearDown]
    public void CloseStore()
    {
        _dialect.Dispose();
        foreach (var file in new[] { _path, _path + "-wal", _path + "-shm" })
        {
            File.Delete(file);
        }
    }

    [Test]
    public async Task Repeated_calls_reuse_one_connection_and_prepare_their_sql_once()
    {
        var jobs = new JobRepository(_database);
        await jobs.GetJobByIdAsync("job-0", CancellationToken.None);
        var opened = _dialect.ConnectionsOpened;
        var created = _dialect.StatementsCreated;

        for (var i = 1; i <= 20; i++)
        {
            Assert.That(await jobs.GetJobByIdAsync("job-" + i, CancellationToken.None), Is.Null);
        }

        Assert.That(_dialect.ConnectionsOpened, Is.EqualTo(opened), "sequential calls reuse the pooled connection");
        Assert.That(_dialect.StatementsCreated, Is.EqualTo(created), "the same SQL runs on its prepared statement");
    }

    [Test]
    public async Task Parameters_are_rebound_on_every_run_of_a_reused_statement()
    {
        for (var i = 0; i < 5; i++)
        {
            await Insert(i, "v" + i);
        }

        for (var i = 0; i < 5; i++)
        {
            var v = await _database.RunAsync(c => c.QuerySingleAsync<string>("SELECT v FROM stmt_test WHERE id = @i", new { i }), CancellationToken.None);
            Assert.That(v, Is.EqualTo("v" + i));
        }
    }

    [Test]
    public async Task A_statement_that_failed_is_not_reused_and_the_next_run_succeeds()
    {
        await Insert(1, "first");
        var created = _dialect.StatementsCreated;

        var failure = await Failure(() => Insert(1, "duplicate"));
        Assert.That(failure.SqliteErrorCode, Is.EqualTo(19), "SQLITE_CONSTRAINT");
        await Insert(2, "second");

        Assert.That(_dialect.StatementsCreated, Is.EqualTo(created + 1), "the failed statement was finalised and the next run prepared a new one");
        var rows = await _database.RunAsync(c => c.QueryAsync<string>("SELECT v FROM stmt_test ORDER BY id"), CancellationToken.None);
        Assert.That(rows, Is.EqualTo(FirstAndSecond));
    }

    [Test]
    public async Task A_transaction_that_threw_is_rolled_back_before_its_connection_is_reused()
    {
        var thrown = false;
        try
        {
            await _database.InTransactionAsync<int>(async (c, tx) =>
            {
                await c.ExecuteAsync(Database.Command("INSERT INTO stmt_test (id, v) VALUES (@id, @v)", new { id = 7, v = "lost" }, CancellationToken.None, tx));
                throw new InvalidOperationException("the unit of work failed");
            }, CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
            thrown = true;
        }

        Assert.That(thrown, Is.True);

        // The same pooled connection (and its cached INSERT) serves the next transaction, which commits on its own.
        await _database.InTransactionAsync(async (c, tx) =>
            await c.ExecuteAsync(Database.Command("INSERT INTO stmt_test (id, v) VALUES (@id, @v)", new { id = 8, v = "kept" }, CancellationToken.None, tx)),
            CancellationToken.None);

        var rows = await _database.RunAsync(c => c.QueryAsync<long>("SELECT id FROM stmt_test ORDER BY id"), CancellationToken.None);
        Assert.That(rows, Is.EqualTo(OnlyTheCommitted));
    }

    [Test]
    public async Task Dapper_list_expansion_rewrites_the_sql_after_its_parameters_are_bound()
    {
        for (var i = 0; i < 6; i++)
        {
            await Insert(i, "v" + i);
        }

        foreach (var ids in new[] { new long[] { 1 }, [1, 2, 3], [0, 5], [1, 2, 3] })
        {
            var found = await _database.RunAsync(c => c.QueryAsync<long>("SELECT id FROM stmt_test WHERE id IN @ids ORDER BY id", new { ids }), CancellationToken.None);
            Assert.That(found, Is.EqualTo(ids.Order()));
        }
    }

    [Test]
    public async Task A_full_statement_cache_is_emptied_and_keeps_working()
    {
        for (var i = 0; i <= SqliteDialect.MaxStatementsPerConnection; i++)
        {
            Assert.That(await _database.RunAsync(c => c.QuerySingleAsync<long>($"SELECT {i} + @one", new { one = 1 }), CancellationToken.None), Is.EqualTo(i + 1));
        }

        var created = _dialect.StatementsCreated;
        Assert.That(await _database.RunAsync(c => c.QuerySingleAsync<long>("SELECT 0 + @one", new { one = 1 }), CancellationToken.None), Is.EqualTo(1));
        Assert.That(_dialect.StatementsCreated, Is.EqualTo(created + 1), "the cache was emptied when it reached its bound");
    }

    [Test]
    public async Task Concurrent_units_of_work_each_get_their_own_connection()
    {
        await Task.WhenAll(Enumerable.Range(0, 48).Select(i => Task.Run(() => _database.InTransactionAsync(async (c, tx) =>
        {
            await c.ExecuteAsync(Database.Command("INSERT INTO stmt_test (id, v) VALUES (@id, @v)", new { id = i, v = "c" + i }, CancellationToken.None, tx));
            return await c.QuerySingleAsync<string>(Database.Command("SELECT v FROM stmt_test WHERE id = @id", new { id = i }, CancellationToken.None, tx));
        }, CancellationToken.None))));

        var count = await _database.RunAsync(c => c.QuerySingleAsync<long>("SELECT count(*) FROM stmt_test"), CancellationToken.None);
        Assert.That(count, Is.EqualTo(48));
    }

    private static async Task<SqliteException> Failure(Func<Task> work)
    {
        try
        {
            await work();
        }
        catch (SqliteException e)
        {
            return e;
        }

        throw new AssertionException("expected a SqliteException");
    }

    private Task<int> Insert(int id, string v) =>
        _database.RunAsync(c => c.ExecuteAsync("INSERT INTO stmt_test (id, v) VALUES (@id, @v)", new { id, v }), CancellationToken.None);
}

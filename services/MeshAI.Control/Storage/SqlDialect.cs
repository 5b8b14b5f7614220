using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace MeshAI.Control.Storage;

/// <summary>Everything that differs between the two supported databases; the SQL in the repositories is shared.</summary>
public interface ISqlDialect
{
    /// <summary>Folder name of this dialect's migrations ("sqlite" or "postgres").</summary>
    string Name { get; }

    /// <summary>Creates an unopened connection.</summary>
    DbConnection CreateConnection();

    /// <summary>Runs per-connection set-up after opening (pragmas).</summary>
    Task PrepareConnectionAsync(DbConnection connection, CancellationToken cancellationToken);

    /// <summary>Takes the store-wide lock that serialises concurrent migrators, inside <paramref name="transaction"/>.</summary>
    Task LockForMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken);

    /// <summary>Appended to a claiming SELECT so concurrent claimers skip each other's rows ("" where the store has one writer).</summary>
    string SkipLockedClause { get; }

    /// <summary>True when only one process can own the store (embedded SQLite): it claims every unfinished job at start.</summary>
    bool SingleOwner { get; }

    /// <summary>
    /// True when the store binds array parameters and expands them with <c>unnest</c> (PostgreSQL): a settlement batch is then
    /// written by one statement for all its members (<see cref="SettlementArrays"/>) instead of a few per member. False on
    /// SQLite, where every statement is in-process and prepared once per connection, so per-member statements cost no round trip.
    /// </summary>
    bool ArrayParameters { get; }
}

/// <summary>
/// Embedded SQLite: one file, WAL journal, foreign keys on, a busy timeout for concurrent writers. Connections come from its own
/// pool of open connections that keep their prepared statements (<see cref="SqliteConnectionPool"/>; #11).
/// </summary>
public sealed class SqliteDialect(string databasePath) : ISqlDialect, IDisposable
{
    // Pooling is off in Microsoft.Data.Sqlite: SqliteConnectionPool keeps the connections open itself, because closing one
    // (even into Microsoft.Data.Sqlite's pool) finalises every statement it prepared.
    private readonly SqliteConnectionPool _pool = new(new SqliteConnectionStringBuilder
    {
        DataSource = databasePath,
        Mode = SqliteOpenMode.ReadWriteCreate,
        Cache = SqliteCacheMode.Private,
        ForeignKeys = true,
        DefaultTimeout = 30,
        Pooling = false,
    }.ToString());

    /// <summary>Open connections the pool keeps idle at most; more are closed when handed back.</summary>
    public const int MaxIdleConnections = 32;

    /// <summary>Prepared statements kept per connection at most; a full cache is emptied (SQLite keeps them in the connection's memory).</summary>
    public const int MaxStatementsPerConnection = 64;

    /// <summary>Longer SQL (migration scripts) is run and finalised, not kept.</summary>
    public const int MaxCachedSqlLength = 4096;

    /// <inheritdoc />
    public string Name => "sqlite";

    /// <summary>Physical connections opened so far (tests read it to see that connections are reused).</summary>
    public int ConnectionsOpened => _pool.Opened;

    /// <summary>Commands created for SQL text the leased connection had no prepared statement for (tests read it to see reuse).</summary>
    public int StatementsCreated => _pool.Prepared;

    /// <inheritdoc />
    public DbConnection CreateConnection() => new SqliteLeasedConnection(_pool);

    /// <inheritdoc />
    public Task PrepareConnectionAsync(DbConnection connection, CancellationToken cancellationToken) =>
        Task.CompletedTask; // the pool applies the pragmas once per physical connection when it opens it

    /// <inheritdoc />
    public Task LockForMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken) =>
        Task.CompletedTask; // BEGIN IMMEDIATE already holds the database write lock.

    /// <inheritdoc />
    public string SkipLockedClause => "";

    /// <inheritdoc />
    public bool SingleOwner => true;

    /// <inheritdoc />
    public bool ArrayParameters => false;

    /// <summary>Closes the idle pooled connections (the host disposes the dialect at shutdown).</summary>
    public void Dispose() => _pool.Dispose();
}

/// <summary>PostgreSQL through Npgsql (scale-out mode).</summary>
public sealed class PostgresDialect(string connectionString) : ISqlDialect
{
    private readonly NpgsqlDataSource _dataSource = NpgsqlDataSource.Create(Tune(connectionString));

    /// <summary>
    /// The connection string with the pool settings the store relies on, unless the operator set them (docs/scale-out.md
    /// "Npgsql settings"): every statement is a fixed SQL text run thousands of times, so Npgsql prepares the most used ones
    /// on each physical connection (<c>Max Auto Prepare</c>, kept across pooled opens); and the store never changes session
    /// state (no SET, LISTEN, temporary tables or session advisory locks), so a connection handed back to the pool is not
    /// reset with DISCARD ALL before its next use (<c>No Reset On Close</c>), which would also drop those prepared statements.
    /// </summary>
    public static string Tune(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        if (!Given(given, "Max Auto Prepare", "MaxAutoPrepare"))
        {
            builder.MaxAutoPrepare = 256;
        }

        if (!Given(given, "No Reset On Close", "NoResetOnClose"))
        {
            builder.NoResetOnClose = true;
        }

        return builder.ConnectionString;
    }

    private static bool Given(DbConnectionStringBuilder given, params string[] keys) => keys.Any(given.ContainsKey);

    /// <inheritdoc />
    public string Name => "postgres";

    /// <inheritdoc />
    public DbConnection CreateConnection() => _dataSource.CreateConnection();

    /// <inheritdoc />
    public Task PrepareConnectionAsync(DbConnection connection, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public string SkipLockedClause => " FOR UPDATE SKIP LOCKED";

    /// <inheritdoc />
    public bool SingleOwner => false;

    /// <inheritdoc />
    public bool ArrayParameters => true;

    /// <inheritdoc />
    public async Task LockForMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT pg_advisory_xact_lock(7461207)";
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

using System.Collections.Concurrent;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Data.Sqlite;

namespace MeshAI.Control.Storage;

/// <summary>
/// The embedded store's connections (#11): a pool of open SQLite connections, each keeping the prepared statements of the SQL
/// it ran. Microsoft.Data.Sqlite prepares every new command anew and finalises a connection's statements when it is closed
/// (dotnet/efcore#14044), and Dapper creates a command per call, so every store round trip parsed and compiled its SQL again
/// (5.5 % of the server's CPU under `bench load`). A connection handed out here is a thin <see cref="DbConnection"/> over a
/// pooled physical connection; its commands take the prepared <see cref="SqliteCommand"/> for their SQL text from that
/// connection's cache and give it back, parameters cleared, when disposed. Bounds and rules: docs/job-plane.md
/// "Prepared statements on the embedded store".
/// </summary>
internal sealed class SqliteConnectionPool(string connectionString) : IDisposable
{
    private readonly ConcurrentStack<PooledSqliteConnection> _idle = new();
    private int _idleCount;
    private volatile bool _disposed;

    private int _opened;
    private int _prepared;

    /// <summary>Physical connections opened so far (tests read it to see reuse).</summary>
    public int Opened => Volatile.Read(ref _opened);

    /// <summary>Statements prepared so far on all connections (tests read it to see reuse).</summary>
    public int Prepared => Volatile.Read(ref _prepared);

    /// <summary>Counts a statement prepared by one of the pool's connections.</summary>
    internal void CountPrepared() => Interlocked.Increment(ref _prepared);

    /// <summary>An open physical connection: an idle one, or a new one with the per-connection pragmas applied.</summary>
    public PooledSqliteConnection Rent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_idle.TryPop(out var pooled))
        {
            Interlocked.Decrement(ref _idleCount);
            return pooled;
        }

        var connection = new SqliteConnection(connectionString);
        try
        {
            connection.Open();
            using (var pragmas = connection.CreateCommand())
            {
                pragmas.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000; PRAGMA foreign_keys=ON;";
                pragmas.ExecuteNonQuery();
            }

            Interlocked.Increment(ref _opened);
            return new PooledSqliteConnection(connection, this);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>Takes a connection back: kept idle (with its statements) when healthy and there is room, closed otherwise.</summary>
    public void Return(PooledSqliteConnection pooled)
    {
        if (_disposed || !pooled.Healthy || Interlocked.Increment(ref _idleCount) > SqliteDialect.MaxIdleConnections)
        {
            if (!_disposed && pooled.Healthy)
            {
                Interlocked.Decrement(ref _idleCount);
            }

            pooled.Dispose();
            return;
        }

        _idle.Push(pooled);
        if (_disposed)
        {
            Drain();
        }
    }

    /// <summary>Closes every idle connection; connections in use are closed when handed back.</summary>
    public void Dispose()
    {
        _disposed = true;
        Drain();
    }

    private void Drain()
    {
        while (_idle.TryPop(out var pooled))
        {
            pooled.Dispose();
        }
    }
}

/// <summary>One open SQLite connection and its prepared statements, keyed by SQL text; used by one lease at a time.</summary>
internal sealed class PooledSqliteConnection(SqliteConnection connection, SqliteConnectionPool pool) : IDisposable
{
    private readonly Dictionary<string, SqliteCommand> _statements = new(StringComparer.Ordinal);
    private bool _disposed;

    /// <summary>The physical connection.</summary>
    public SqliteConnection Connection { get; } = connection;

    /// <summary>Open and not discarded.</summary>
    public bool Healthy => !_disposed && Connection.State == ConnectionState.Open;

    /// <summary>The cached command for <paramref name="sql"/>, or a new one.</summary>
    public SqliteCommand Take(string sql)
    {
        if (_statements.Remove(sql, out var command))
        {
            command.Parameters.Clear();
            return command;
        }

        pool.CountPrepared();
        command = Connection.CreateCommand();
        command.CommandText = sql;
        return command;
    }

    /// <summary>Gives a command back: kept (parameters cleared) when it ran cleanly, disposed otherwise.</summary>
    public void Give(SqliteCommand command, bool reusable)
    {
        if (!reusable || _disposed || command.CommandText.Length > SqliteDialect.MaxCachedSqlLength || _statements.ContainsKey(command.CommandText))
        {
            command.Dispose();
            return;
        }

        command.Parameters.Clear();
        command.Transaction = null;
        if (_statements.Count >= SqliteDialect.MaxStatementsPerConnection)
        {
            DisposeStatements();
        }

        _statements.Add(command.CommandText, command);
    }

    /// <summary>Finalises the statements and closes the connection.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        DisposeStatements();
        Connection.Dispose();
    }

    private void DisposeStatements()
    {
        foreach (var command in _statements.Values)
        {
            command.Dispose();
        }

        _statements.Clear();
    }
}

/// <summary>What <see cref="SqliteDialect.CreateConnection"/> returns: a lease of a pooled connection from Open to Close.</summary>
internal sealed class SqliteLeasedConnection(SqliteConnectionPool pool) : DbConnection
{
    private PooledSqliteConnection? _pooled;
    private SqliteTransaction? _transaction;
    private int _outstanding;

    private PooledSqliteConnection Pooled => _pooled ?? throw new InvalidOperationException("The connection is not open.");

    /// <inheritdoc />
    [AllowNull]
    public override string ConnectionString
    {
        get => "";
        set => throw new NotSupportedException("The embedded store's connections are configured by SqliteDialect.");
    }

    /// <inheritdoc />
    public override string Database => "main";

    /// <inheritdoc />
    public override string DataSource => _pooled?.Connection.DataSource ?? "";

    /// <inheritdoc />
    public override string ServerVersion => _pooled?.Connection.ServerVersion ?? "";

    /// <inheritdoc />
    public override ConnectionState State => _pooled is null ? ConnectionState.Closed : ConnectionState.Open;

    /// <inheritdoc />
    public override void ChangeDatabase(string databaseName) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void Open()
    {
        if (_pooled is not null)
        {
            throw new InvalidOperationException("The connection is already open.");
        }

        _pooled = pool.Rent();
    }

    /// <inheritdoc />
    public override Task OpenAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Open();
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public override void Close()
    {
        var pooled = _pooled;
        if (pooled is null)
        {
            return;
        }

        _pooled = null;
        _transaction?.Dispose(); // rolls back a transaction left open; nothing when it was committed or rolled back
        _transaction = null;
        if (_outstanding > 0)
        {
            // A command outlived its connection: its statement cannot go back to a connection another lease may own next.
            pooled.Dispose();
            return;
        }

        pool.Return(pooled);
    }

    /// <inheritdoc />
    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel)
    {
        var transaction = Pooled.Connection.BeginTransaction(isolationLevel);
        _transaction = transaction;
        return transaction;
    }

    /// <inheritdoc />
    protected override DbCommand CreateDbCommand() => new SqliteLeasedCommand(this);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Close();
        }

        base.Dispose(disposing);
    }

    /// <summary>The pooled command for <paramref name="sql"/> on the leased connection.</summary>
    internal (SqliteCommand Command, PooledSqliteConnection Owner) Take(string sql)
    {
        var pooled = Pooled;
        var command = pooled.Take(sql);
        _outstanding++;
        return (command, pooled);
    }

    /// <summary>Gives a command back to the connection it came from.</summary>
    internal void Give(PooledSqliteConnection owner, SqliteCommand command, bool reusable)
    {
        _outstanding--;
        owner.Give(command, reusable && ReferenceEquals(owner, _pooled));
    }
}

/// <summary>A command of a <see cref="SqliteLeasedConnection"/>: settings are kept here and applied to the pooled command it takes.</summary>
internal sealed class SqliteLeasedCommand(SqliteLeasedConnection connection) : DbCommand
{
    private string _text = "";
    private SqliteCommand? _inner;
    private PooledSqliteConnection? _owner;
    private SqliteDataReader? _reader;
    private SqliteTransaction? _transaction;
    private int _timeout = 30;
    private CommandType _type = CommandType.Text;
    private bool _reusable = true;

    /// <inheritdoc />
    [AllowNull]
    public override string CommandText
    {
        get => _text;
        set
        {
            value ??= "";
            if (value == _text)
            {
                return;
            }

            _text = value;
            if (_inner is null)
            {
                return;
            }

            // Rewritten after parameters were added (Dapper expands `IN @list` this way): move them to the new text's command.
            var parameters = _inner.Parameters.Cast<SqliteParameter>().ToList();
            _inner.Parameters.Clear();
            Release();
            Inner.Parameters.AddRange(parameters);
        }
    }

    /// <inheritdoc />
    public override int CommandTimeout
    {
        get => _timeout;
        set
        {
            _timeout = value;
            _inner?.CommandTimeout = value;
        }
    }

    /// <inheritdoc />
    public override CommandType CommandType
    {
        get => _type;
        set
        {
            _type = value;
            _inner?.CommandType = value;
        }
    }

    /// <inheritdoc />
    public override UpdateRowSource UpdatedRowSource { get; set; }

    /// <inheritdoc />
    public override bool DesignTimeVisible { get; set; }

    /// <inheritdoc />
    protected override DbConnection? DbConnection
    {
        get => connection;
        set
        {
            if (!ReferenceEquals(value, connection))
            {
                throw new NotSupportedException("A command of the embedded store stays on the connection that created it.");
            }
        }
    }

    /// <inheritdoc />
    protected override DbTransaction? DbTransaction
    {
        get => _transaction;
        set
        {
            _transaction = (SqliteTransaction?)value;
            _inner?.Transaction = _transaction;
        }
    }

    /// <inheritdoc />
    protected override DbParameterCollection DbParameterCollection => Inner.Parameters;

    private SqliteCommand Inner
    {
        get
        {
            if (_inner is null)
            {
                var (command, owner) = connection.Take(_text);
                command.Transaction = _transaction;
                command.CommandTimeout = _timeout;
                command.CommandType = _type;
                _inner = command;
                _owner = owner;
            }

            return _inner;
        }
    }

    /// <inheritdoc />
    public override void Cancel() => _inner?.Cancel();

    /// <inheritdoc />
    public override void Prepare() => Inner.Prepare();

    /// <inheritdoc />
    protected override DbParameter CreateDbParameter() => new SqliteParameter();

    /// <inheritdoc />
    public override int ExecuteNonQuery() => Run(c => c.ExecuteNonQuery());

    /// <inheritdoc />
    public override object? ExecuteScalar() => Run(c => c.ExecuteScalar());

    /// <inheritdoc />
    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior) => _reader = Run(c => c.ExecuteReader(Keep(behavior)));

    /// <inheritdoc />
    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken) => RunAsync(c => c.ExecuteNonQueryAsync(cancellationToken));

    /// <inheritdoc />
    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken) => RunAsync(c => c.ExecuteScalarAsync(cancellationToken));

    /// <inheritdoc />
    protected override async Task<DbDataReader> ExecuteDbDataReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken) =>
        _reader = await RunAsync(c => c.ExecuteReaderAsync(Keep(behavior), cancellationToken));

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Release();
        }

        base.Dispose(disposing);
    }

    // The physical connection outlives the lease: a reader must never close it (the store always opens before it runs).
    private static CommandBehavior Keep(CommandBehavior behavior) =>
        (behavior & CommandBehavior.CloseConnection) != 0
            ? throw new NotSupportedException("Open the embedded store's connection before running a command on it.")
            : behavior;

    private T Run<T>(Func<SqliteCommand, T> execute)
    {
        try
        {
            return execute(Inner);
        }
        catch
        {
            _reusable = false; // a statement that failed (constraint, interrupt, busy) is finalised, not reused
            throw;
        }
    }

    private async Task<T> RunAsync<T>(Func<SqliteCommand, Task<T>> execute)
    {
        try
        {
            return await execute(Inner);
        }
        catch
        {
            _reusable = false;
            throw;
        }
    }

    private void Release()
    {
        if (_inner is null || _owner is null)
        {
            return;
        }

        var reusable = _reusable && (_reader is null || _reader.IsClosed);
        connection.Give(_owner, _inner, reusable);
        _inner = null;
        _owner = null;
        _reader = null;
        _reusable = true;
    }
}

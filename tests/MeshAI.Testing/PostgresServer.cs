using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace MeshAI.Testing;

/// <summary>
/// A throwaway PostgreSQL 15 cluster on a free loopback port (trust auth, data and unix socket in a temp dir),
/// stopped and deleted on dispose. Each test process gets its own cluster; use <see cref="CreateDatabaseAsync"/>
/// to give each suite an isolated database. Prefer <see cref="SharedInfrastructure.Postgres"/> over starting one per test.
/// </summary>
public sealed partial class PostgresServer : IDisposable, IAsyncDisposable
{
    /// <summary>Where Debian's postgresql-15 package puts initdb/pg_ctl; override with env MESHAI_PG_BIN.</summary>
    public const string DefaultBinDirectory = "/usr/lib/postgresql/15/bin";

    /// <summary>Superuser of the throwaway cluster (trust auth, no password).</summary>
    public const string Superuser = "postgres";

    private const string Prefix = "meshai-pg";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(90);

    private readonly string _binDirectory;
    private int _disposed;

    private PostgresServer(string binDirectory, string rootDirectory, int port)
    {
        _binDirectory = binDirectory;
        RootDirectory = rootDirectory;
        Port = port;
        ConnectionString = BuildConnectionString("postgres");
    }

    /// <summary>Loopback TCP port the cluster listens on.</summary>
    public int Port { get; private set; }

    /// <summary>Connection string for the default "postgres" database as the superuser.</summary>
    public string ConnectionString { get; private set; }

    /// <summary>Temp directory holding data/, the socket directory and postgres.log.</summary>
    public string RootDirectory { get; }

    /// <summary>The cluster's data directory.</summary>
    public string DataDirectory => Path.Combine(RootDirectory, "data");

    /// <summary>Directory holding the cluster's unix socket.</summary>
    public string SocketDirectory => Path.Combine(RootDirectory, "sock");

    /// <summary>The server log file (its tail is included in startup errors).</summary>
    public string LogFile => Path.Combine(RootDirectory, "postgres.log");

    /// <summary>Creates, configures and starts a new cluster; throws with a clear message when PostgreSQL 15 is not installed.</summary>
    public static async Task<PostgresServer> StartAsync(CancellationToken cancellationToken = default)
    {
        var bin = Environment.GetEnvironmentVariable("MESHAI_PG_BIN") is { Length: > 0 } fromEnv ? fromEnv : DefaultBinDirectory;
        foreach (var tool in new[] { "initdb", "pg_ctl", "postgres" })
        {
            if (!File.Exists(Path.Combine(bin, tool)))
            {
                throw new InvalidOperationException(
                    $"PostgreSQL 15 server binaries not found ({Path.Combine(bin, tool)} is missing). " +
                    "Run ./test.sh from the repository root once: it installs the postgresql apt package " +
                    "(or apt-get install postgresql-15, or point MESHAI_PG_BIN at a PostgreSQL 15 bin directory).");
            }
        }

        if (ScratchDirectory.IsRoot && !File.Exists(RunUserPath()))
        {
            throw new InvalidOperationException("Running as root but runuser was not found; PostgreSQL refuses to run as root.");
        }

        ScratchDirectory.ReapStale(Prefix, dir => StopLeftover(bin, dir));

        var root = ScratchDirectory.Create(Prefix);
        var server = new PostgresServer(bin, root, FreePort.Next());
        try
        {
            await server.InitializeAsync(cancellationToken).ConfigureAwait(false);
            await server.StartWithPortRetriesAsync(cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Creates a fresh, empty database (dropping any previous one of that name) and returns its connection string.</summary>
    /// <param name="name">Letters, digits, '_' or '-', at most 63 characters.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public async Task<string> CreateDatabaseAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!DatabaseName().IsMatch(name))
        {
            throw new ArgumentException("Database names must be 1-63 letters, digits, '_' or '-'.", nameof(name));
        }

        var quoted = "\"" + name + "\"";
        var connection = new NpgsqlConnection(ConnectionString);
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, $"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)", cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, $"CREATE DATABASE {quoted}", cancellationToken).ConfigureAwait(false);
        }

        // Connections pooled for a previous database of this name were terminated by the drop.
        var result = BuildConnectionString(name);
        using (var pooled = new NpgsqlConnection(result))
        {
            NpgsqlConnection.ClearPool(pooled);
        }

        return result;
    }

    /// <summary>Creates a fresh database named prefix_randomsuffix and returns its connection string.</summary>
    public Task<string> CreateUniqueDatabaseAsync(string prefix = "test", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var cleanPrefix = prefix.Length > 40 ? prefix[..40] : prefix;
        return CreateDatabaseAsync($"{cleanPrefix}_{Guid.NewGuid():N}"[..(cleanPrefix.Length + 13)], cancellationToken);
    }

    /// <summary>Stops the cluster (fast shutdown: open connections are dropped), keeping its data; <see cref="StartAgainAsync"/> brings it back.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        using var stop = await ProcessRunner.RunAsync(PgCtl("stop", "-D", DataDirectory, "-m", "fast", "-w", "-t", "30"), CommandTimeout, cancellationToken).ConfigureAwait(false);
        if (stop.ExitCode != 0)
        {
            throw new InvalidOperationException($"pg_ctl stop failed with exit code {stop.ExitCode}.{Environment.NewLine}{stop.OutputTail()}");
        }
    }

    /// <summary>Starts a stopped cluster again on the same port (connection strings handed out stay valid).</summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        using var start = await ProcessRunner.RunAsync(
            PgCtl("start", "-D", DataDirectory, "-l", LogFile, "-w", "-t", "60", "-o", $"-p {Port.ToString(CultureInfo.InvariantCulture)}"),
            CommandTimeout,
            cancellationToken).ConfigureAwait(false);
        if (start.ExitCode != 0)
        {
            throw new InvalidOperationException($"PostgreSQL did not start again on port {Port}.{Environment.NewLine}{start.OutputTail()}");
        }

        await WaitUntilQueryableAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the cluster and deletes its directory.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Stops the cluster (fast shutdown, then immediate, then SIGKILL) and deletes its directory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        NpgsqlConnection.ClearAllPools();
        if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
        {
            using var fast = await TryRunAsync(PgCtl("stop", "-D", DataDirectory, "-m", "fast", "-w", "-t", "30")).ConfigureAwait(false);
            if (fast is null || fast.ExitCode != 0)
            {
                using var immediate = await TryRunAsync(PgCtl("stop", "-D", DataDirectory, "-m", "immediate", "-w", "-t", "15")).ConfigureAwait(false);
            }

            KillPostmaster(DataDirectory);
        }

        ScratchDirectory.TryDelete(RootDirectory);
    }

    /// <inheritdoc />
    public override string ToString() => $"PostgreSQL on 127.0.0.1:{Port} ({RootDirectory})";

    [GeneratedRegex("^[A-Za-z0-9_-]{1,63}$")]
    private static partial Regex DatabaseName();

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
#pragma warning disable CA2100 // Names are validated against a strict pattern above.
        var command = new NpgsqlCommand(sql, connection);
#pragma warning restore CA2100
        await using (command.ConfigureAwait(false))
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static string RunUserPath() => File.Exists("/usr/sbin/runuser") ? "/usr/sbin/runuser" : "/sbin/runuser";

    private static ProcessRunnerOptions AsClusterOwner(string bin, string tool, string workingDirectory, params string[] args)
    {
        var exe = Path.Combine(bin, tool);
        return ScratchDirectory.IsRoot
            ? new ProcessRunnerOptions
            {
                FileName = RunUserPath(),
                Arguments = ["-u", Superuser, "--", exe, .. args],
                WorkingDirectory = workingDirectory,
                Environment = new Dictionary<string, string?> { ["LC_ALL"] = "C", ["HOME"] = workingDirectory },
                Name = tool,
            }
            : new ProcessRunnerOptions
            {
                FileName = exe,
                Arguments = args,
                WorkingDirectory = workingDirectory,
                Environment = new Dictionary<string, string?> { ["LC_ALL"] = "C" },
                Name = tool,
            };
    }

    private static void StopLeftover(string bin, string dir)
    {
        var data = Path.Combine(dir, "data");
        if (File.Exists(Path.Combine(data, "postmaster.pid")))
        {
            using var runner = ProcessRunner.Start(AsClusterOwner(bin, "pg_ctl", "/", "stop", "-D", data, "-m", "immediate", "-w", "-t", "10"));
            _ = runner.WaitForExitAsync(TimeSpan.FromSeconds(20)).Wait(TimeSpan.FromSeconds(25));
            KillPostmaster(data);
        }
    }

    private static void KillPostmaster(string dataDirectory)
    {
        var pid = ScratchDirectory.ReadPid(Path.Combine(dataDirectory, "postmaster.pid"));
        if (pid is null || !ScratchDirectory.ProcessAlive(pid.Value))
        {
            return;
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid.Value);
            if (process.ProcessName.Contains("postgres", StringComparison.Ordinal))
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (ArgumentException)
        {
        }
        catch (InvalidOperationException)
        {
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
    }

    private static async Task<ProcessRunner?> TryRunAsync(ProcessRunnerOptions options)
    {
        try
        {
            return await ProcessRunner.RunAsync(options, CommandTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    private ProcessRunnerOptions PgCtl(params string[] args) => AsClusterOwner(_binDirectory, "pg_ctl", RootDirectory, args);

    private string BuildConnectionString(string database) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = Superuser,
        Database = database,
        Pooling = true,
        Timeout = 30,
        IncludeErrorDetail = true,
    }.ConnectionString;

    private async Task InitializeAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(SocketDirectory);
        if (ScratchDirectory.IsRoot)
        {
            using var chown = await ProcessRunner.RunAsync(
                new ProcessRunnerOptions { FileName = "chown", Arguments = ["-R", $"{Superuser}:", RootDirectory] },
                CommandTimeout,
                cancellationToken).ConfigureAwait(false);
            if (chown.ExitCode != 0)
            {
                throw new InvalidOperationException(
                    $"Could not hand {RootDirectory} to the '{Superuser}' user (is the postgresql package installed?).{Environment.NewLine}{chown.OutputTail()}");
            }
        }

        using var initdb = await ProcessRunner.RunAsync(
            AsClusterOwner(
                _binDirectory,
                "initdb",
                RootDirectory,
                "-D", DataDirectory, "--username", Superuser, "--auth", "trust", "--encoding", "UTF8", "--locale", "C",
                "--no-sync", "--no-instructions"),
            CommandTimeout,
            cancellationToken).ConfigureAwait(false);
        if (initdb.ExitCode != 0)
        {
            throw new InvalidOperationException($"initdb failed with exit code {initdb.ExitCode}.{Environment.NewLine}{initdb.OutputTail()}");
        }

        // Tuned for throwaway test data: durability off, room for several servers' connection pools.
        var settings = new StringBuilder()
            .AppendLine()
            .AppendLine("# MeshAI test cluster")
            .AppendLine("listen_addresses = '127.0.0.1'")
            .AppendLine(CultureInfo.InvariantCulture, $"unix_socket_directories = '{SocketDirectory}'")
            .AppendLine("max_connections = 300")
            .AppendLine("shared_buffers = 64MB")
            .AppendLine("fsync = off")
            .AppendLine("synchronous_commit = off")
            .AppendLine("full_page_writes = off")
            .AppendLine("logging_collector = off")
            .AppendLine("log_min_messages = warning")
            .AppendLine("timezone = 'UTC'")
            .ToString();
        await File.AppendAllTextAsync(Path.Combine(DataDirectory, "postgresql.conf"), settings, cancellationToken).ConfigureAwait(false);
    }

    private async Task StartWithPortRetriesAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var logOffset = File.Exists(LogFile) ? new FileInfo(LogFile).Length : 0;
            using var start = await ProcessRunner.RunAsync(
                PgCtl("start", "-D", DataDirectory, "-l", LogFile, "-w", "-t", "60", "-o", $"-p {Port.ToString(CultureInfo.InvariantCulture)}"),
                CommandTimeout,
                cancellationToken).ConfigureAwait(false);
            if (start.ExitCode == 0)
            {
                await WaitUntilQueryableAsync(cancellationToken).ConfigureAwait(false);
                return;
            }

            var log = ReadLog(logOffset);
            var portTaken = log.Contains("could not bind", StringComparison.OrdinalIgnoreCase)
                || log.Contains("already in use", StringComparison.OrdinalIgnoreCase);
            if (!portTaken || attempt >= 5)
            {
                throw new InvalidOperationException(
                    $"PostgreSQL did not start on port {Port} (pg_ctl exit code {start.ExitCode}).{Environment.NewLine}" +
                    $"{start.OutputTail()}{Environment.NewLine}--- {LogFile} ---{Environment.NewLine}{log}");
            }

            KillPostmaster(DataDirectory);
            Port = FreePort.Next();
            ConnectionString = BuildConnectionString("postgres");
        }
    }

    private async Task WaitUntilQueryableAsync(CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                var connection = new NpgsqlConnection(ConnectionString);
                await using (connection.ConfigureAwait(false))
                {
                    await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                    await ExecuteAsync(connection, "SELECT 1", cancellationToken).ConfigureAwait(false);
                    return;
                }
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private string ReadLog(long fromOffset)
    {
        try
        {
            using var stream = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            stream.Seek(Math.Min(fromOffset, stream.Length), SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            var text = reader.ReadToEnd();
            return text.Length > 8000 ? text[^8000..] : text;
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }
}

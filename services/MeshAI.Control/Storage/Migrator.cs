using System.Reflection;
using Dapper;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Storage;

/// <summary>Applies the embedded, numbered SQL migrations of the dialect once each, recorded in schema_migrations.</summary>
public sealed class Migrator(Database database, ILogger<Migrator> logger)
{
    /// <summary>One embedded migration script.</summary>
    public sealed record Migration(int Version, string Name, string Sql);

    /// <summary>The dialect's migrations in version order.</summary>
    public IReadOnlyList<Migration> Migrations()
    {
        var assembly = typeof(Migrator).Assembly;
        var prefix = $"MeshAI.Control.Storage.Migrations.{database.Dialect.Name}.";
        var list = new List<Migration>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal)))
        {
            var name = resource[prefix.Length..^4];
            var underscore = name.IndexOf('_', StringComparison.Ordinal);
            var version = int.Parse(underscore > 0 ? name[..underscore] : name, System.Globalization.CultureInfo.InvariantCulture);
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            list.Add(new Migration(version, name, reader.ReadToEnd()));
        }

        return list.OrderBy(m => m.Version).ToList();
    }

    /// <summary>Applies pending migrations; returns how many ran. Safe to call repeatedly and concurrently.</summary>
    public async Task<int> MigrateAsync(CancellationToken cancellationToken)
    {
        var applied = 0;
        await using var connection = await database.OpenAsync(cancellationToken);
        await connection.ExecuteAsync(Database.Command(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_time_ms BIGINT NOT NULL)",
            null, cancellationToken));
        foreach (var migration in Migrations())
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await database.Dialect.LockForMigrationAsync(connection, transaction, cancellationToken);
            var exists = await connection.ExecuteScalarAsync<long>(Database.Command(
                "SELECT COUNT(*) FROM schema_migrations WHERE version = @Version", new { migration.Version }, cancellationToken, transaction));
            if (exists > 0)
            {
                await transaction.RollbackAsync(cancellationToken);
                continue;
            }

            await connection.ExecuteAsync(Database.Command(migration.Sql, null, cancellationToken, transaction));
            await connection.ExecuteAsync(Database.Command(
                "INSERT INTO schema_migrations (version, name, applied_time_ms) VALUES (@Version, @Name, @Now)",
                new { migration.Version, migration.Name, Now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }, cancellationToken, transaction));
            await transaction.CommitAsync(cancellationToken);
            logger.LogInformation("Applied migration {Version} {Name} ({Dialect})", migration.Version, migration.Name, database.Dialect.Name);
            applied++;
        }

        return applied;
    }
}

using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace MeshAI.Control.Storage;

/// <summary>What a database exception means for the caller, the same on SQLite and PostgreSQL.</summary>
public enum StoreFailure
{
    /// <summary>Not a store failure this class knows: a bug (INTERNAL).</summary>
    Other,

    /// <summary>A unique or primary-key constraint refused a concurrent insert of the same thing (ABORTED, or return the winner).</summary>
    UniqueViolation,

    /// <summary>A serialisation failure or deadlock: the transaction may be retried (ABORTED).</summary>
    Conflict,

    /// <summary>The store is busy, locked or unreachable (UNAVAILABLE).</summary>
    Unavailable,
}

/// <summary>Classifies provider exceptions (SQLite error codes, PostgreSQL SQLSTATEs) in one place.</summary>
public static class StoreErrors
{
    private const int SqliteBusy = 5;
    private const int SqliteLocked = 6;
    private const int SqliteConstraint = 19;
    private const int SqliteConstraintUnique = 2067;
    private const int SqliteConstraintPrimaryKey = 1555;

    /// <summary>The failure kind of <paramref name="exception"/> (or of a store exception inside it).</summary>
    public static StoreFailure Classify(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case SqliteException s when s.SqliteErrorCode == SqliteConstraint && s.SqliteExtendedErrorCode is SqliteConstraintUnique or SqliteConstraintPrimaryKey:
                    return StoreFailure.UniqueViolation;
                case SqliteException s when s.SqliteErrorCode is SqliteBusy or SqliteLocked:
                    return StoreFailure.Unavailable;
                case PostgresException p when p.SqlState == PostgresErrorCodes.UniqueViolation:
                    return StoreFailure.UniqueViolation;
                case PostgresException p when p.SqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected:
                    return StoreFailure.Conflict;
                case PostgresException p when p.SqlState.StartsWith("08", StringComparison.Ordinal) || p.SqlState.StartsWith("53", StringComparison.Ordinal) ||
                                              p.SqlState.StartsWith("57P", StringComparison.Ordinal):
                    return StoreFailure.Unavailable; // connection exception, insufficient resources, admin shutdown
                case NpgsqlException n when n is not PostgresException && n.IsTransient:
                    return StoreFailure.Unavailable;
                case DbException:
                    return StoreFailure.Other;
            }
        }

        return StoreFailure.Other;
    }

    /// <summary>True when <paramref name="exception"/> is a unique-constraint violation.</summary>
    public static bool IsUniqueViolation(Exception? exception) => Classify(exception) == StoreFailure.UniqueViolation;
}

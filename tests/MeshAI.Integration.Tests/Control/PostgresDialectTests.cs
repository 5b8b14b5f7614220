using Dapper;
using MeshAI.Control.Storage;
using MeshAI.Testing;
using Npgsql;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>The Npgsql settings <see cref="PostgresDialect"/> adds to an operator's connection string (docs/scale-out.md "Npgsql settings", #11).</summary>
[TestFixture]
[Category("Integration")]
public sealed class PostgresDialectTests
{
    [Test]
    public void Statements_are_auto_prepared_and_pooled_connections_not_reset_unless_the_operator_says_otherwise()
    {
        var tuned = new NpgsqlConnectionStringBuilder(PostgresDialect.Tune("Host=db;Database=meshai;Username=u"));
        Assert.That(tuned.MaxAutoPrepare, Is.EqualTo(256));
        Assert.That(tuned.NoResetOnClose, Is.True);
        Assert.That((tuned.Host, tuned.Database, tuned.Username), Is.EqualTo(("db", "meshai", "u")));

        var operatorSet = new NpgsqlConnectionStringBuilder(PostgresDialect.Tune("Host=db;Max Auto Prepare=0;No Reset On Close=false"));
        Assert.That(operatorSet.MaxAutoPrepare, Is.Zero);
        Assert.That(operatorSet.NoResetOnClose, Is.False);
    }

    [Test]
    public async Task A_statement_run_repeatedly_through_the_store_is_prepared_once_on_its_pooled_connection()
    {
        var ct = CancellationToken.None;
        var database = new Database(new PostgresDialect(await SharedInfrastructure.CreatePostgresDatabaseAsync("dialect")));
        const string Sql = "SELECT @x::bigint + 41";
        for (var i = 0; i < 8; i++)
        {
            Assert.That(await database.RunAsync(c => c.ExecuteScalarAsync<long>(Database.Command(Sql, new { x = (long)i }, ct)), ct), Is.EqualTo(i + 41));
        }

        // One caller at a time reuses one physical connection: the statement is prepared on it (Npgsql prepares after 5
        // uses), and handing the connection back to the pool did not discard it (no DISCARD ALL).
        var prepared = await database.RunAsync(c => c.ExecuteScalarAsync<long>(Database.Command(
            "SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE '%::bigint + 41%'", null, ct)), ct);
        Assert.That(prepared, Is.EqualTo(1));
    }
}

using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Scale-out with real processes (issue 10, docs/scale-out.md): PostgreSQL, Redis, nginx in front of two control instances,
/// two relay instances and four agents. Jobs are submitted through the front door (any control instance answers) and
/// served by agents on either relay; control A is killed mid-run (control B claims its leases and completes its jobs) and
/// relay B is killed (its agents move to relay A and re-send their unacknowledged results, accepted once). Every job
/// completes, none is billed twice, the ledger reconciles. scripts/scale-out.sh runs the same scenario with 200 jobs.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class ScaleOutEndToEndTests
{
    [Test]
    public async Task Jobs_through_nginx_complete_once_each_while_a_control_and_a_relay_instance_are_killed()
    {
        var postgres = await SharedInfrastructure.Postgres;
        var redis = await SharedInfrastructure.Redis;
        await using var mesh = await ScaleOutMesh.StartAsync(postgres, redis);
        var outcome = await ScaleOutRun.RunAsync(mesh, jobs: 16, agents: 4, line => TestContext.Out.WriteLine(line));
        TestContext.Out.WriteLine(outcome.Line);
        Assert.That(outcome.Problems, Is.Empty);
        Assert.That(outcome.Line, Is.EqualTo("scale-out: 16/16 jobs completed, 0 lost, 0 double-billed, ledger balanced"));
        Assert.That(mesh.Controls["ctl-a"].HasExited && mesh.Relays[ScaleOutRun.KilledRelay].HasExited, Is.True, "both instances were really killed");

        // The front door spread the calls over both control instances, and after control A died nginx sent every call to B:
        // the last calls of the run all reach B (directly, or logged as "A, B" when nginx moved a call off A's dead port).
        var lines = (await File.ReadAllLinesAsync(mesh.NginxAccessLog)).Where(l => l.Contains("/meshai.", StringComparison.Ordinal)).ToList();
        var a = mesh.ControlAddresses["ctl-a"];
        var b = mesh.ControlAddresses["ctl-b"];
        TestContext.Out.WriteLine($"nginx: {lines.Count} calls, {lines.Count(l => l.Contains(a, StringComparison.Ordinal))} reached {a}, {lines.Count(l => l.Contains(b, StringComparison.Ordinal))} reached {b}");
        Assert.That(lines.Count(l => l.Contains(a, StringComparison.Ordinal) && !l.Contains(b, StringComparison.Ordinal)), Is.GreaterThan(0), "control A answered calls before it was killed");
        Assert.That(lines.Count(l => l.Contains(b, StringComparison.Ordinal)), Is.GreaterThan(0), "control B answered calls");
        Assert.That(lines.TakeLast(5), Has.All.Contains(b), "after A died the front door routes every call to B");
    }
}

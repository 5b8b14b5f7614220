using MeshAI.Contracts.Common.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Hardening;

/// <summary>Issue 15 defect 6: an int64-max max_cost_credits overflowed the cost-cap timer (Task.Delay threw, the timer was silently not set).</summary>
[TestFixture]
[Category("Unit")]
public sealed class CostCapTimerTests
{
    [Test]
    public void A_cap_no_job_can_reach_needs_no_timer_and_a_reachable_one_still_gets_its_exact_runtime()
    {
        var credits = NetworkDefaults.Create(0).Credits;
        Assert.That(JobBudget.CapRuntimeMs(long.MaxValue, Tier._2, credits), Is.Null, "int64-max cap: unreachable, no timer");
        Assert.That(JobBudget.CapRuntimeMs(1_000_000_000L * 1_000_000, Tier._0, credits), Is.Null, "a billion credits at tier 0: unreachable");

        // Tier 2 burns 6 credits per minute: a cap of one credit is reached after 10 s (whole billing seconds).
        var capMs = JobBudget.CapRuntimeMs(1_000_000, Tier._2, credits);
        Assert.That(capMs, Is.EqualTo(10_000));
        Assert.That(JobBudget.MaxCapTimerMs + 1, Is.LessThan(uint.MaxValue - 1), "the longest timer ever set (cap + 1 ms) is one Task.Delay accepts");
    }
}

using MeshAI.Common.Domain;
using MeshAI.Contracts.Common.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Ledger;

[TestFixture]
[Category("Unit")]
public sealed class CreditCalculatorTests
{
    [TestCase(0, 1000, 0)]
    [TestCase(1, 1000, 1000)]
    [TestCase(999, 1000, 1000)]
    [TestCase(1000, 1000, 1000)]
    [TestCase(1001, 1000, 2000)]
    [TestCase(1234, 1, 1234)]
    [TestCase(1234, 0, 1234)]
    public void Runtime_is_rounded_up_to_the_billing_granularity(long runtime, long granularity, long expected) =>
        Assert.That(CreditCalculator.BilledMs(runtime, granularity), Is.EqualTo(expected));

    [Test]
    public void One_minute_at_tier2_burns_six_credits_and_mints_four()
    {
        var credits = NetworkDefaults.Create(0).Credits;
        var charge = CreditCalculator.Charge(60_000, Tier._2, credits);
        Assert.Multiple(() =>
        {
            Assert.That(charge.BilledRuntimeMs, Is.EqualTo(60_000));
            Assert.That(charge.BurnMicro, Is.EqualTo(6 * Tiers.MicroPerCredit));
            Assert.That(charge.MintMicro, Is.EqualTo(4 * Tiers.MicroPerCredit));
        });
    }

    [Test]
    public void Burn_rounds_up_and_mint_rounds_down()
    {
        // 1 ms at 1 micro/min: 1/60000 of a micro-credit.
        Assert.Multiple(() =>
        {
            Assert.That(CreditCalculator.Burn(1, 1, 10_000), Is.EqualTo(1));
            Assert.That(CreditCalculator.Mint(1, 1, 10_000), Is.EqualTo(0));
            Assert.That(CreditCalculator.Burn(60_000, 1, 10_000), Is.EqualTo(1));
            Assert.That(CreditCalculator.Mint(60_000, 1, 10_000), Is.EqualTo(1));
        });
    }

    [Test]
    public void A_sub_second_job_is_billed_one_granularity()
    {
        var credits = NetworkDefaults.Create(0).Credits;
        var charge = CreditCalculator.Charge(1, Tier._2, credits);
        Assert.Multiple(() =>
        {
            Assert.That(charge.BilledRuntimeMs, Is.EqualTo(1000));
            Assert.That(charge.BurnMicro, Is.EqualTo(100_000)); // 6 credits/min × 1 s
            Assert.That(charge.MintMicro, Is.EqualTo(66_666)); // 4 credits/min × 1 s, floored
        });
    }

    [Test]
    public void A_zero_runtime_report_is_still_charged_as_one_millisecond() =>
        Assert.That(CreditCalculator.Charge(0, Tier._0, NetworkDefaults.Create(0).Credits).BilledRuntimeMs, Is.EqualTo(1000));

    [Test]
    public void Multiplier_scales_both_directions()
    {
        var credits = NetworkDefaults.Create(0).Credits;
        credits.MultiplierBps = 15_000; // 1.5x
        var charge = CreditCalculator.Charge(60_000, Tier._4, credits);
        Assert.Multiple(() =>
        {
            Assert.That(charge.BurnMicro, Is.EqualTo(42 * Tiers.MicroPerCredit));
            Assert.That(charge.MintMicro, Is.EqualTo(30 * Tiers.MicroPerCredit));
        });
    }

    [Test]
    public void Large_values_do_not_overflow()
    {
        var burn = CreditCalculator.Burn(600_000, 28 * Tiers.MicroPerCredit, 1_000_000);
        Assert.That(burn, Is.EqualTo(28L * Tiers.MicroPerCredit * 10 * 100));
    }

    [Test]
    public void Missing_tier_rate_falls_back_to_the_spec_default()
    {
        var credits = NetworkDefaults.Create(0).Credits;
        credits.TierRates.Clear();
        Assert.That(CreditCalculator.RateFor(credits, Tier._3).BurnMicroPerMin, Is.EqualTo(14 * Tiers.MicroPerCredit));
    }

    [Test]
    public void Burn_is_capped_by_max_cost_when_set()
    {
        Assert.Multiple(() =>
        {
            Assert.That(JobSettlement.CappedBurn(500, 0), Is.EqualTo(500));
            Assert.That(JobSettlement.CappedBurn(500, 200), Is.EqualTo(200));
            Assert.That(JobSettlement.CappedBurn(100, 200), Is.EqualTo(100));
        });
    }
}

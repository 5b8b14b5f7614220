using System.Numerics;
using System.Text.Json;
using Grpc.Core;
using MeshAI.Cli.Commands;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.VisualBasic.FileIO;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Ledger;

/// <summary>The integer money arithmetic of the ledger: surcharges, caps, pricing, mint rules, rates and export encoding.</summary>
[TestFixture]
[Category("Unit")]
public sealed class LedgerMoneyTests
{
    private static readonly LedgerOptions Rules = new();

    [TestCase(0, 1_000_000, 0)]
    [TestCase(1, 1_000_000, 1)]
    [TestCase(1_048_576, 1_000_000, 1_000_000)]
    [TestCase(1_048_577, 1_000_000, 1_000_001)]
    [TestCase(5_000_000, 0, 0)]
    public void Relay_surcharge_is_bytes_times_the_per_mib_rate_rounded_up(long bytes, long perMib, long expected) =>
        Assert.That(CreditCalculator.RelaySurcharge(bytes, perMib), Is.EqualTo(expected));

    [TestCase(133_333, 5_000, 66_666)]
    [TestCase(133_333, 10_000, 133_333)]
    [TestCase(133_333, 0, 0)]
    public void Mint_cap_in_basis_points_rounds_down(long mint, long capBps, long expected) =>
        Assert.That(CreditCalculator.CapMint(mint, capBps), Is.EqualTo(expected));

    [Test]
    public void Runtime_at_cap_is_the_longest_billed_runtime_within_the_cap_for_random_inputs()
    {
        var random = new Random(7);
        for (var i = 0; i < 2_000; i++)
        {
            var cap = random.NextInt64(1, 50_000_000);
            var rate = random.NextInt64(1, 50_000_000);
            var multiplier = random.NextInt64(1, 50_000);
            var granularity = random.Next(1, 3) == 1 ? 1 : random.NextInt64(1, 10_000);
            var at = CreditCalculator.RuntimeAtCap(cap, rate, multiplier, granularity)!.Value;
            Assert.That(at % Math.Max(1, granularity), Is.Zero);
            Assert.That(CreditCalculator.Burn(at, rate, multiplier), Is.LessThanOrEqualTo(cap), $"cap {cap} rate {rate} x{multiplier} g{granularity}");
            Assert.That(CreditCalculator.Burn(at + Math.Max(1, granularity), rate, multiplier), Is.GreaterThan(cap), $"cap {cap} rate {rate} x{multiplier} g{granularity}");
        }

        Assert.That(CreditCalculator.RuntimeAtCap(100, 0, 10_000, 1000), Is.Null, "a free tier never reaches a cap");
    }

    [Test]
    public void An_attempt_stopped_one_millisecond_past_the_cap_runtime_burns_exactly_the_cap_and_mints_nothing()
    {
        var random = new Random(13);
        for (var i = 0; i < 1_000; i++)
        {
            var cap = random.NextInt64(1, 50_000_000);
            var m = Metering(0);
            m.BillingGranularityMs = random.Next(1, 3) == 1 ? 1 : random.NextInt64(1, 10_000);
            m.MaxCostMicro = cap;
            var at = CreditCalculator.RuntimeAtCap(cap, m.BurnMicroPerMin, m.MultiplierBps, m.BillingGranularityMs)!.Value;
            m.RuntimeMs = at + 1 + random.NextInt64(0, 50); // the timer fires at at + 1; the cancel lands a little later
            m.MintWithheldReason = LedgerWriter.CostCapWithheldReason;
            var priced = LedgerPricing.Price(m);
            Assert.That(priced.BurnMicro, Is.EqualTo(cap), $"cap {cap} g{m.BillingGranularityMs} runtime {m.RuntimeMs}");
            Assert.That(priced.MintMicro, Is.Zero);
        }

        var events = LedgerWriter.Events(Metering(2_001), 0, LedgerEventType.JobFailed);
        Assert.That(events.Select(e => (LedgerEventType)e.EventType), Is.EqualTo(new[] { LedgerEventType.JobStarted, LedgerEventType.JobFailed, LedgerEventType.CreditsBurned, LedgerEventType.CreditsMinted }));
        Assert.That(events.Select(e => e.IdempotencyKey), Is.Unique);
    }

    [Test]
    public void Burn_and_mint_match_exact_rational_arithmetic_for_random_inputs()
    {
        var random = new Random(11);
        for (var i = 0; i < 5_000; i++)
        {
            var billed = random.NextInt64(0, 1_000_000_000);
            var rate = random.NextInt64(0, 1_000_000_000_000);
            var multiplier = random.NextInt64(1, 1_000_000);
            var numerator = new BigInteger(billed) * rate * multiplier;
            var denominator = new BigInteger(60_000L * 10_000);
            var floor = BigInteger.Divide(numerator, denominator);
            var ceiling = numerator % denominator == 0 ? floor : floor + 1;
            Assert.That(CreditCalculator.Burn(billed, rate, multiplier), Is.EqualTo((long)ceiling));
            Assert.That(CreditCalculator.Mint(billed, rate, multiplier), Is.EqualTo((long)floor));
        }
    }

    [Test]
    public void Pricing_burns_runtime_plus_surcharge_within_what_is_left_of_the_cap()
    {
        var m = Metering(runtimeMs: 1500);
        m.RelayBytes = 2 * 1024 * 1024;
        m.RelaySurchargeMicroPerMib = 10_000;
        var priced = LedgerPricing.Price(m);
        Assert.Multiple(() =>
        {
            Assert.That(priced.BilledMs, Is.EqualTo(2000));
            Assert.That(priced.SurchargeMicro, Is.EqualTo(20_000));
            Assert.That(priced.BurnMicro, Is.EqualTo(200_000 + 20_000));
            Assert.That(priced.MintMicro, Is.EqualTo(133_333));
        });

        m.MaxCostMicro = 150_000;
        m.PriorBurnMicro = 100_000;
        Assert.That(LedgerPricing.Price(m).BurnMicro, Is.EqualTo(50_000), "the cap covers the whole job");
        m.PriorBurnMicro = 200_000;
        Assert.That(LedgerPricing.Price(m).BurnMicro, Is.Zero);
        m.MintWithheldReason = "rooted";
        Assert.That(LedgerPricing.Price(m).MintMicro, Is.Zero);
    }

    [Test]
    public void Minting_needs_an_unbroken_heartbeat()
    {
        var laptop = new CapabilityReport();
        Assert.Multiple(() =>
        {
            Assert.That(MintPolicy.RequiredHeartbeats(4_999, Rules), Is.Zero);
            Assert.That(MintPolicy.RequiredHeartbeats(60_000, Rules), Is.EqualTo(11));
            Assert.That(MintPolicy.Decide(laptop, 60_000, 11, false, 0, Rules).WithheldReason, Is.Empty);
            Assert.That(MintPolicy.Decide(laptop, 60_000, 5, false, 0, Rules).WithheldReason, Does.Contain("heartbeat"));
            Assert.That(MintPolicy.Decide(laptop, 2_000, 0, false, 0, Rules).CapBps, Is.EqualTo(10_000));
        });
    }

    [Test]
    public void Rooted_flagged_and_rate_limited_devices_mint_nothing()
    {
        Assert.Multiple(() =>
        {
            Assert.That(MintPolicy.Decide(new CapabilityReport { RootedSignal = true }, 1000, 0, false, 0, Rules).WithheldReason, Does.Contain("rooted"));
            Assert.That(MintPolicy.Decide(new CapabilityReport(), 1000, 0, true, 0, Rules).WithheldReason, Does.Contain("spot-check"));
            Assert.That(MintPolicy.Decide(new CapabilityReport(), 1000, 0, false, Rules.MaxMintingSettlementsPerDevicePerHour, Rules).WithheldReason, Does.Contain("rate limit"));
        });
    }

    [Test]
    public void Mobile_on_battery_or_hot_mints_at_the_documented_cap()
    {
        var onBattery = new CapabilityReport { IsMobile = true, BatteryStateOptional = new BatteryState { Percent = 80, PluggedIn = false } };
        var charging = new CapabilityReport { IsMobile = true, BatteryStateOptional = new BatteryState { Percent = 80, PluggedIn = true }, ThermalStateOptional = ThermalState.Nominal };
        var hot = new CapabilityReport { IsMobile = true, BatteryStateOptional = new BatteryState { PluggedIn = true }, ThermalStateOptional = ThermalState.Serious };
        Assert.Multiple(() =>
        {
            Assert.That(MintPolicy.Decide(onBattery, 1000, 0, false, 0, Rules).CapBps, Is.EqualTo(5_000));
            Assert.That(MintPolicy.Decide(hot, 1000, 0, false, 0, Rules).CapBps, Is.EqualTo(5_000));
            Assert.That(MintPolicy.Decide(charging, 1000, 0, false, 0, Rules).CapBps, Is.EqualTo(10_000));
        });
    }

    [Test]
    public void Rate_updates_override_one_tier_and_keep_the_rest()
    {
        var credits = NetworkDefaults.Create(0).Credits;
        var next = CreditRates.Apply(credits, new UpdateCreditRatesRequest
        {
            TierRates = { new TierRate { Tier = Tier._2, EarnMicroPerMin = 5_000_000, BurnMicroPerMin = 7_500_000 } },
            MultiplierBps = 15_000,
        });
        Assert.Multiple(() =>
        {
            Assert.That(next.TierRates, Has.Count.EqualTo(5));
            Assert.That(CreditCalculator.RateFor(next, Tier._2).BurnMicroPerMin, Is.EqualTo(7_500_000));
            Assert.That(CreditCalculator.RateFor(next, Tier._4).BurnMicroPerMin, Is.EqualTo(28_000_000));
            Assert.That(next.MultiplierBps, Is.EqualTo(15_000));
            Assert.That(next.BillingGranularityMs, Is.EqualTo(1000));
        });
        Assert.Throws<RpcException>(() => CreditRates.Apply(credits, new UpdateCreditRatesRequest { MultiplierBps = -1 }));
        Assert.Throws<RpcException>(() => CreditRates.Apply(credits, new UpdateCreditRatesRequest { TierRates = { new TierRate { Tier = Tier.Unspecified } } }));
        Assert.Throws<RpcException>(() => CreditRates.Apply(credits, new UpdateCreditRatesRequest { TierRates = { new TierRate { Tier = Tier._1, BurnMicroPerMin = -5 } } }));
    }

    [Test]
    public void Median_takes_the_upper_middle()
    {
        Assert.That(JobBudget.Median([5, 1, 3]), Is.EqualTo(3));
        Assert.That(JobBudget.Median([4, 1, 3, 2]), Is.EqualTo(3));
        Assert.That(JobBudget.Median([]), Is.Zero);
    }

    [Test]
    public void Export_lines_parse_back_with_a_csv_reader_and_a_json_parser()
    {
        var e = new LedgerEventRow
        {
            Sequence = 42, EventId = "lev_1", NetworkId = "net_1", EventType = (int)LedgerEventType.CreditsBurned, JobId = "job_\"x\",y", UserId = "usr_1",
            AccountKind = (int)AccountKind.Pool, AmountMicro = -200_000, RuntimeMs = 1500, BilledRuntimeMs = 2000, Tier = (int)Tier._2,
            IdempotencyKey = "job_x::CreditsBurned", CreateTimeMs = 1_700_000_000_123,
        };
        using var parser = new TextFieldParser(new StringReader(LedgerExport.CsvHeader() + LedgerExport.CsvLine(e))) { TextFieldType = FieldType.Delimited, HasFieldsEnclosedInQuotes = true };
        parser.SetDelimiters(",");
        var header = parser.ReadFields()!;
        var fields = parser.ReadFields()!;
        var row = header.Zip(fields).ToDictionary(p => p.First, p => p.Second);
        Assert.Multiple(() =>
        {
            Assert.That(header, Is.EqualTo(LedgerExport.Columns));
            Assert.That(row["job_id"], Is.EqualTo("job_\"x\",y"));
            Assert.That(row["event_type"], Is.EqualTo("credits_burned"));
            Assert.That(row["amount_micro"], Is.EqualTo("-200000"));
            Assert.That(row["tier"], Is.EqualTo("tier2"));
            Assert.That(row["create_time"], Is.EqualTo("2023-11-14T22:13:20.123Z"));
        });

        using var json = JsonDocument.Parse(LedgerExport.JsonLine(e));
        Assert.Multiple(() =>
        {
            Assert.That(json.RootElement.GetProperty("amount_micro").GetInt64(), Is.EqualTo(-200_000));
            Assert.That(json.RootElement.GetProperty("job_id").GetString(), Is.EqualTo("job_\"x\",y"));
            Assert.That(json.RootElement.GetProperty("account").GetString(), Is.EqualTo("pool"));
        });
    }

    [Test]
    public void Cli_parses_multipliers_tiers_and_since()
    {
        Assert.Multiple(() =>
        {
            Assert.That(LedgerCommands.TryParseMultiplier("1.5", out var bps) && bps == 15_000, Is.True);
            Assert.That(LedgerCommands.TryParseMultiplier("0", out _), Is.False);
            Assert.That(LedgerCommands.TryParseMultiplier("1.00001", out _), Is.False);
            Assert.That(LedgerCommands.TryParseTier("tier2", out var tier) && tier == Tier._2, Is.True);
            Assert.That(LedgerCommands.TryParseTier("tier9", out _), Is.False);
            var now = new DateTimeOffset(2025, 3, 10, 12, 0, 0, TimeSpan.Zero);
            Assert.That(LedgerCommands.TryParseSince("24h", now, out var since) && since == now.AddDays(-1), Is.True);
            Assert.That(LedgerCommands.TryParseSince("2025-03-01", now, out since) && since == new DateTimeOffset(2025, 3, 1, 0, 0, 0, TimeSpan.Zero), Is.True);
            Assert.That(LedgerCommands.TryParseSince("yesterday", now, out _), Is.False);
        });
    }

    private static JobMeteringRow Metering(long runtimeMs) => new()
    {
        NetworkId = "net_1", JobId = "job_1", DeviceId = "dev_1", Tier = (int)Tier._2, RuntimeMs = runtimeMs,
        BurnMicroPerMin = 6_000_000, EarnMicroPerMin = 4_000_000, MultiplierBps = 10_000, BillingGranularityMs = 1000, MintCapBps = 10_000,
    };
}

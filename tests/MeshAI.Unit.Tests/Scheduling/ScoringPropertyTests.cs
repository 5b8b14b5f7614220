using MeshAI.Common.Domain;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Scheduling;
using NUnit.Framework;
using static MeshAI.Unit.Tests.Scheduling.SchedulingFixtures;

namespace MeshAI.Unit.Tests.Scheduling;

/// <summary>Property-style checks over seeded random devices and weights (fixed seeds: failures reproduce).</summary>
[TestFixture]
[Category("Unit")]
public sealed class ScoringPropertyTests
{
    private static readonly (long[] Burn, long Cheapest) Rates = LinearScorer.Rates(null);

    private static CapabilityReport RandomDevice(Random r)
    {
        var caps = new CapabilityReport
        {
            CpuCores = r.Next(1, 64), RamMb = r.Next(1_000, 128_000), GpuPresent = r.Next(3) == 0, IsMobile = r.Next(4) == 0, IdleScore = r.NextDouble(),
            NetworkType = NetworkType.Wifi, ThermalStateOptional = (ThermalState)r.Next(0, 5), ThermalMillicelsius = r.Next(0, 100_000),
            Workloads = { WorkloadClass.Embeddings },
        };
        caps.GpuVramMb = caps.GpuPresent ? r.Next(2_000, 48_000) : 0;
        if (r.Next(2) == 0)
        {
            caps.BatteryStateOptional = new BatteryState { Percent = r.Next(0, 101), Charging = r.Next(2) == 0 };
        }

        return caps;
    }

    private static ScoringWeights RandomWeights(Random r) => new()
    {
        RttMs = -r.NextDouble(), IsPluggedIn = r.NextDouble(), ThermalHeadroom = r.NextDouble(), IdleScore = r.NextDouble(), CreditRateEfficiency = r.NextDouble(),
    };

    private static double Score(CapabilityReport caps, int rtt, ScoringWeights w) =>
        LinearScorer.Total(LinearScorer.Features(caps, rtt, Tiers.Classify(caps), Rates.Burn, Rates.Cheapest), w);

    [Test]
    public void Every_normalised_feature_is_in_0_1([Values(1, 2, 3)] int seed)
    {
        var r = new Random(seed);
        for (var i = 0; i < 2_000; i++)
        {
            var caps = RandomDevice(r);
            var f = LinearScorer.Features(caps, r.Next(-5, 5_000), Tiers.Classify(caps), Rates.Burn, Rates.Cheapest);
            foreach (var v in new[] { f.Rtt, f.PluggedIn, f.ThermalHeadroom, f.Idle, f.CreditEfficiency })
            {
                Assert.That(v, Is.InRange(0.0, 1.0));
            }
        }
    }

    [Test]
    public void Placement_is_deterministic_whatever_the_candidate_order([Values(11, 12, 13)] int seed)
    {
        var r = new Random(seed);
        var candidates = Enumerable.Range(0, 200).Select(i => Candidate($"dev_{i:D4}", RandomDevice(r), r.Next(1, 900))).ToList();
        var settings = Settings();
        settings.MobileSafety.MobileContributionPolicy = MobileContributionPolicy.Always;
        settings.ScoringWeights = RandomWeights(r);
        var first = Place(Envelope(), candidates, settings);
        for (var shuffle = 0; shuffle < 5; shuffle++)
        {
            var shuffled = candidates.OrderBy(_ => r.Next()).ToList();
            var again = Place(Envelope(), shuffled, settings);
            Assert.That(again.Selected?.Device.DeviceId, Is.EqualTo(first.Selected?.Device.DeviceId));
            Assert.That(again.Ranked.Select(c => (c.DeviceId, c.Total)), Is.EqualTo(first.Ranked.Select(c => (c.DeviceId, c.Total))));
            Assert.That(again.Eligibility.Select(e => (e.DeviceId, e.FailingFilter)), Is.EqualTo(first.Eligibility.Select(e => (e.DeviceId, e.FailingFilter))));
        }
    }

    [Test]
    public void Scores_are_monotonic_in_each_feature_in_the_direction_of_its_weight([Values(21, 22, 23)] int seed)
    {
        var r = new Random(seed);
        for (var i = 0; i < 500; i++)
        {
            var w = RandomWeights(r);
            var caps = RandomDevice(r);
            var rtt = r.Next(0, 2_000);

            // rtt has a negative weight: more round-trip never scores higher.
            Assert.That(Score(caps, rtt + r.Next(0, 500), w), Is.LessThanOrEqualTo(Score(caps, rtt, w) + 1e-12));

            var idler = caps.Clone();
            idler.IdleScore = Math.Min(1, caps.IdleScore + r.NextDouble());
            Assert.That(Score(idler, rtt, w), Is.GreaterThanOrEqualTo(Score(caps, rtt, w) - 1e-12));

            var plugged = caps.Clone();
            plugged.BatteryStateOptional = new BatteryState { Percent = 50, Charging = true };
            var unplugged = caps.Clone();
            unplugged.BatteryStateOptional = new BatteryState { Percent = 50, Charging = false };
            Assert.That(Score(plugged, rtt, w), Is.GreaterThanOrEqualTo(Score(unplugged, rtt, w)));

            var cooler = caps.Clone();
            var hotter = caps.Clone();
            var level = r.Next(1, 4);
            cooler.ThermalStateOptional = (ThermalState)level;
            hotter.ThermalStateOptional = (ThermalState)(level + 1);
            Assert.That(Score(cooler, rtt, w), Is.GreaterThanOrEqualTo(Score(hotter, rtt, w)));
        }
    }

    [Test]
    public void Raising_a_weight_never_lowers_the_rank_of_the_device_strongest_in_that_feature([Values(31, 32)] int seed)
    {
        var r = new Random(seed);
        for (var round = 0; round < 100; round++)
        {
            var a = RandomDevice(r);
            var b = RandomDevice(r);
            a.IdleScore = 0.9;
            b.IdleScore = 0.1;
            var w = RandomWeights(r);
            var before = Score(a, 50, w) - Score(b, 50, w);
            w.IdleScore += r.NextDouble();
            var after = Score(a, 50, w) - Score(b, 50, w);
            Assert.That(after, Is.GreaterThanOrEqualTo(before - 1e-12), "more idle weight favours the idler device");

            var wr = RandomWeights(r);
            var beforeRtt = Score(a, 20, wr) - Score(a, 700, wr);
            wr.RttMs -= r.NextDouble();
            Assert.That(Score(a, 20, wr) - Score(a, 700, wr), Is.GreaterThanOrEqualTo(beforeRtt - 1e-12), "a more negative rtt weight favours the nearer device");
        }
    }

    [Test]
    public void The_fast_filter_pass_agrees_with_the_explained_one([Values(41, 42)] int seed)
    {
        var r = new Random(seed);
        foreach (var role in new[] { Role.Admin, Role.Member, Role.Guest })
        {
            foreach (var tag in new[] { DataSensitivityTag.Public, DataSensitivityTag.Private, DataSensitivityTag.Sensitive })
            {
                var candidates = Enumerable.Range(0, 100).Select(i => Candidate($"dev_{i:D3}", RandomDevice(r), r.Next(1, 900), contribution: r.Next(10) != 0, trust: r.Next(3))).ToList();
                var envelope = Envelope(tag: tag, resources: new MeshAI.Contracts.Job.V1.ResourceRequest { MinRamMb = 8_000, RequiresPinnedDeviceIdsOptional = { r.Next(2) == 0 ? [] : candidates.Take(50).Select(c => c.Device.DeviceId) } });
                var settings = Settings();
                settings.MinDeviceTrustLevel = 1;
                var context = new EligibilityContext(new PlacementRequest(envelope, candidates, new HashSet<string> { "dev_001" }, settings) { SubmitterRole = role });
                foreach (var c in candidates)
                {
                    var (filter, reason) = EligibilityFilters.Check(c, context);
                    Assert.That(EligibilityFilters.FirstFailing(c, context), Is.EqualTo(filter), c.Device.DeviceId);
                    Assert.That(reason is null, Is.EqualTo(filter == MeshAI.Contracts.Job.V1.EligibilityFilter.Unspecified));
                }
            }
        }
    }

    [Test]
    public void Default_weights_are_the_spec_weights()
    {
        var w = LinearScorer.DefaultWeights();
        Assert.That((w.RttMs, w.IsPluggedIn, w.ThermalHeadroom, w.IdleScore, w.CreditRateEfficiency), Is.EqualTo((-0.3, 0.2, 0.2, 0.15, 0.15)));
        Assert.That(MeshAI.Control.Networks.NetworkDefaults.Create(0).ScoringWeights, Is.EqualTo(w));
    }
}

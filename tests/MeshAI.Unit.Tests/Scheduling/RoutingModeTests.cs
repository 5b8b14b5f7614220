#pragma warning disable CA1861 // expected values read best inline
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Scheduling;
using NUnit.Framework;
using static MeshAI.Unit.Tests.Scheduling.SchedulingFixtures;

namespace MeshAI.Unit.Tests.Scheduling;

[TestFixture]
[Category("Unit")]
public sealed class RoutingModeTests
{
    [Test]
    public void Auto_picks_the_best_score()
    {
        var decision = Place(Envelope(), [Candidate("dev_slow", Laptop(rttMs: 800)), Candidate("dev_fast", Laptop(rttMs: 5))]);
        Assert.That(decision.Selected!.Device.DeviceId, Is.EqualTo("dev_fast"));
        Assert.That(decision.Reason, Does.StartWith("auto: highest linear score"));
        Assert.That(decision.Ranked.Select(r => r.DeviceId), Is.EqualTo(new[] { "dev_fast", "dev_slow" }));
        Assert.That(decision.Ranked[0].Features.Select(f => f.Name), Is.EqualTo(LinearScorer.FeatureNames));
    }

    [Test]
    public void Pinned_device_runs_only_on_the_named_device_even_when_another_scores_higher()
    {
        var envelope = Envelope(mode: RoutingMode.PinnedDevice, resources: new ResourceRequest { RequiresPinnedDeviceIdsOptional = { "dev_slow" } });
        var decision = Place(envelope, [Candidate("dev_slow", Laptop(rttMs: 800)), Candidate("dev_fast", Laptop(rttMs: 5))]);
        Assert.That(decision.Selected!.Device.DeviceId, Is.EqualTo("dev_slow"));
        Assert.That(decision.Reason, Does.StartWith("pinned_device:"));
    }

    [Test]
    public void Pinned_tier_runs_only_on_that_exact_tier()
    {
        var envelope = Envelope(mode: RoutingMode.PinnedTier, resources: new ResourceRequest { PinnedTier = Tier._2 });
        var decision = Place(envelope, [Candidate("dev_gpu", GpuBox()), Candidate("dev_laptop", Laptop(rttMs: 900))]);
        Assert.That(decision.Selected!.Device.DeviceId, Is.EqualTo("dev_laptop"));
        Assert.That(decision.Of("dev_gpu").FailingFilter, Is.EqualTo(EligibilityFilter.DeviceMeets));
        Assert.That(decision.Reason, Does.StartWith("pinned_tier tier2:"));
        Assert.That(Place(Envelope(mode: RoutingMode.PinnedTier), [Candidate("dev_laptop", Laptop())]).Selected, Is.Null, "pinned_tier needs a tier");
    }

    [Test]
    public void Local_prefer_ranks_lan_peers_first_then_falls_back_to_the_relay()
    {
        var lanCaps = Laptop(rttMs: 900);
        lanCaps.LanAddresses.Add("192.168.1.20/24");
        var farCaps = Laptop(rttMs: 5);
        farCaps.LanAddresses.Add("10.9.0.7/16");
        var submitter = SubmitterLocation.From("ipv4:192.168.1.77:50123", null);
        var decision = Place(Envelope(mode: RoutingMode.LocalPrefer), [Candidate("dev_far", farCaps), Candidate("dev_lan", lanCaps)], submitter: submitter);
        Assert.That(decision.Selected!.Device.DeviceId, Is.EqualTo("dev_lan"), "the LAN peer wins despite its worse score");
        Assert.That(decision.Ranked[0].SameLan, Is.True);
        Assert.That(decision.Reason, Does.StartWith("local_prefer: on the submitter's LAN"));

        var fallback = Place(Envelope(mode: RoutingMode.LocalPrefer), [Candidate("dev_far", farCaps)], submitter: submitter);
        Assert.That(fallback.Selected!.Device.DeviceId, Is.EqualTo("dev_far"));
        Assert.That(fallback.Reason, Does.Contain("fell back to the relay"));

        var reported = SubmitterLocation.From("ipv4:203.0.113.5:443", new Dictionary<string, string> { [SubmitterLocation.ClientLanLabel] = "192.168.1.50/24" });
        Assert.That(LanMatcher.SameLan(reported, lanCaps), Is.True, "client-reported prefix equals the device's network");
        Assert.That(LanMatcher.SameLan(reported, farCaps), Is.False);
        Assert.That(LanMatcher.SameLan(SubmitterLocation.From("ipv6:[::1]:5000", null), lanCaps), Is.False, "loopback is nobody's LAN");
    }

    [Test]
    public void Ties_are_broken_by_device_id()
    {
        var decision = Place(Envelope(), [Candidate("dev_b", Laptop()), Candidate("dev_c", Laptop()), Candidate("dev_a", Laptop())]);
        Assert.That(decision.Ranked.Select(r => r.DeviceId), Is.EqualTo(new[] { "dev_a", "dev_b", "dev_c" }));
        Assert.That(decision.Reason, Does.Contain("tie broken by device id"));
    }

    [Test]
    public void No_candidates_or_no_eligible_device_selects_nothing_with_a_reason()
    {
        Assert.That(Place(Envelope(), []).Reason, Is.EqualTo("no device of the network is online"));
        var none = Place(Envelope(WorkloadClass.SmallChat), [Candidate("dev_a", Laptop())]);
        Assert.That(none.Selected, Is.Null);
        Assert.That(none.Reason, Is.EqualTo("no online device passes the eligibility filters"));
    }
}

#pragma warning disable CA1861 // expected values read best inline
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using NUnit.Framework;
using static MeshAI.Unit.Tests.Scheduling.SchedulingFixtures;

namespace MeshAI.Unit.Tests.Scheduling;

[TestFixture]
[Category("Unit")]
public sealed class EligibilityFilterTests
{
    private static EligibilityFilter FailingFilter(PlacementCandidateSpec spec, JobEnvelope? envelope = null, NetworkSettings? settings = null, Role role = Role.Member, IReadOnlySet<string>? excluded = null)
    {
        var decision = Place(envelope ?? Envelope(), [spec.Candidate], settings, role, excluded);
        var e = decision.Of(spec.Candidate.Device.DeviceId);
        Assert.That(e.Reason, Is.Not.Empty);
        return e.FailingFilter;
    }

    internal sealed record PlacementCandidateSpec(MeshAI.Control.Scheduling.PlacementCandidate Candidate);

    private static PlacementCandidateSpec Spec(MeshAI.Control.Scheduling.PlacementCandidate c) => new(c);

    [Test]
    public void A_healthy_laptop_passes_every_filter()
    {
        var decision = Place(Envelope(), [Candidate("dev_a", Laptop())]);
        Assert.That(decision.Of("dev_a").Eligible, Is.True);
        Assert.That(decision.Of("dev_a").FailingFilter, Is.EqualTo(EligibilityFilter.Unspecified));
        Assert.That(decision.Selected!.Device.DeviceId, Is.EqualTo("dev_a"));
    }

    [Test]
    public void Network_membership_rejects_revoked_and_foreign_devices()
    {
        Assert.That(FailingFilter(Spec(Candidate("dev_r", Laptop(), revoked: true))), Is.EqualTo(EligibilityFilter.NetworkMembership));
        Assert.That(FailingFilter(Spec(Candidate("dev_f", Laptop(), network: "net_other"))), Is.EqualTo(EligibilityFilter.NetworkMembership));
    }

    [Test]
    public void Pinned_ids_reject_every_other_device()
    {
        var envelope = Envelope(mode: RoutingMode.PinnedDevice, resources: new ResourceRequest { RequiresPinnedDeviceIdsOptional = { "dev_pin" } });
        Assert.That(FailingFilter(Spec(Candidate("dev_other", Laptop())), envelope), Is.EqualTo(EligibilityFilter.Pinned));
        Assert.That(FailingFilter(Spec(Candidate("dev_x", Laptop())), Envelope(mode: RoutingMode.PinnedDevice)), Is.EqualTo(EligibilityFilter.Pinned));
    }

    [Test]
    public void A_device_that_failed_an_earlier_attempt_is_excluded()
    {
        Assert.That(FailingFilter(Spec(Candidate("dev_a", Laptop())), excluded: new HashSet<string> { "dev_a" }), Is.EqualTo(EligibilityFilter.DeviceStateOk));
    }

    [Test]
    public void Contribution_switch_off_is_ineligible()
    {
        Assert.That(FailingFilter(Spec(Candidate("dev_a", Laptop(), contribution: false))), Is.EqualTo(EligibilityFilter.ContributionEnabled));
    }

    [Test]
    public void A_device_without_the_workload_runtime_is_ineligible()
    {
        Assert.That(FailingFilter(Spec(Candidate("dev_a", Laptop())), Envelope(WorkloadClass.SmallChat)), Is.EqualTo(EligibilityFilter.WorkloadSupported));
    }

    [Test]
    public void Policy_allows_is_decided_by_the_policy_engine()
    {
        Assert.That(FailingFilter(Spec(Candidate("dev_a", Laptop())), Envelope(tag: DataSensitivityTag.Private), role: Role.Guest), Is.EqualTo(EligibilityFilter.PolicyAllows));
        var decision = Place(Envelope(tag: DataSensitivityTag.Private), [Candidate("dev_a", Laptop())], role: Role.Guest);
        Assert.That(decision.Of("dev_a").Reason, Does.Contain("guests-public-data-only"));
    }

    [Test]
    public void Device_meets_checks_min_tier_ram_gpu_and_latency()
    {
        Assert.That(FailingFilter(Spec(Candidate("dev_a", Laptop())), Envelope(resources: new ResourceRequest { MinTier = Tier._3 })), Is.EqualTo(EligibilityFilter.DeviceMeets));
        Assert.That(FailingFilter(Spec(Candidate("dev_a", Laptop())), Envelope(resources: new ResourceRequest { MinRamMb = 32_000 })), Is.EqualTo(EligibilityFilter.DeviceMeets));
        Assert.That(FailingFilter(Spec(Candidate("dev_a", Laptop())), Envelope(resources: new ResourceRequest { NeedsGpu = true })), Is.EqualTo(EligibilityFilter.DeviceMeets));
        Assert.That(FailingFilter(Spec(Candidate("dev_a", Laptop(rttMs: 400))), Envelope(resources: new ResourceRequest { MaxLatencyMs = 100 })), Is.EqualTo(EligibilityFilter.DeviceMeets));
    }

    [Test]
    public void Device_state_ok_applies_the_network_mobile_safety_defaults()
    {
        Assert.That(FailingFilter(Spec(Candidate("dev_p", Phone(charging: false)))), Is.EqualTo(EligibilityFilter.DeviceStateOk), "charging and Wi-Fi only by default");
        Assert.That(FailingFilter(Spec(Candidate("dev_p", Phone(wifi: false)))), Is.EqualTo(EligibilityFilter.DeviceStateOk));
        var hot = Laptop();
        hot.ThermalStateOptional = MeshAI.Contracts.Device.V1.ThermalState.Serious;
        Assert.That(FailingFilter(Spec(Candidate("dev_hot", hot))), Is.EqualTo(EligibilityFilter.DeviceStateOk));
        var lowBattery = Settings();
        lowBattery.MobileSafety.MobileContributionPolicy = MobileContributionPolicy.Always;
        Assert.That(FailingFilter(Spec(Candidate("dev_p", Phone(charging: false, battery: 10))), settings: lowBattery), Is.EqualTo(EligibilityFilter.DeviceStateOk));
        Assert.That(Place(Envelope(), [Candidate("dev_p", Phone())]).Of("dev_p").Eligible, Is.True, "a charging phone on Wi-Fi is fine");
    }

    [Test]
    public void Trust_level_is_checked_only_when_configured()
    {
        Assert.That(Place(Envelope(), [Candidate("dev_a", Laptop(), trust: 0)]).Of("dev_a").Eligible, Is.True);
        var settings = Settings();
        settings.MinDeviceTrustLevel = 2;
        Assert.That(FailingFilter(Spec(Candidate("dev_a", Laptop(), trust: 1)), settings: settings), Is.EqualTo(EligibilityFilter.DeviceTrustLevelOk));
    }

    [Test]
    public void The_first_failing_filter_is_reported_and_eligibility_is_listed_by_device_id()
    {
        var decision = Place(Envelope(), [Candidate("dev_c", Laptop(), contribution: false, revoked: true), Candidate("dev_a", Laptop()), Candidate("dev_b", Phone(charging: false))]);
        Assert.That(decision.Eligibility.Select(e => e.DeviceId), Is.EqualTo(new[] { "dev_a", "dev_b", "dev_c" }));
        Assert.That(decision.Of("dev_c").FailingFilter, Is.EqualTo(EligibilityFilter.NetworkMembership));
        Assert.That(decision.EligibleCount, Is.EqualTo(1));
    }
}

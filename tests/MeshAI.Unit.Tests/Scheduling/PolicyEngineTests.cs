using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Scheduling;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Scheduling;

[TestFixture]
[Category("Unit")]
public sealed class PolicyEngineTests
{
    private static PolicyQuery Query(Role role, DataSensitivityTag tag, bool mobile = false, bool pinned = false, int minute = 720, Tier tier = Tier._2, bool modelPublic = true) => new()
    {
        WorkloadClass = WorkloadClass.Embeddings, SensitivityTag = tag, MemberRole = role, DeviceTier = tier, DeviceIsMobile = mobile, DeviceId = "dev_1",
        MinuteOfDay = minute, DeviceCharging = true, DeviceOnWifi = true, DeviceBatteryPercent = 80, DeviceThermalLevel = 1, Pinned = pinned,
        Model = "all-minilm-l6-v2", ModelPublic = modelPublic,
    };

    private static PolicyEffect Default(PolicyQuery q) => PolicyEngine.Evaluate(PolicyEngine.Defaults("net_x"), q).Effect;

    [Test]
    public void Default_sensitive_data_runs_for_admins_or_on_pinned_devices_only()
    {
        Assert.That(Default(Query(Role.Admin, DataSensitivityTag.Sensitive)), Is.EqualTo(PolicyEffect.Allow));
        Assert.That(Default(Query(Role.Member, DataSensitivityTag.Sensitive)), Is.EqualTo(PolicyEffect.Deny));
        Assert.That(Default(Query(Role.Member, DataSensitivityTag.Sensitive, pinned: true)), Is.EqualTo(PolicyEffect.Allow));
        var denied = PolicyEngine.Evaluate(PolicyEngine.Defaults("net_x"), Query(Role.Member, DataSensitivityTag.Sensitive));
        Assert.That(denied.MatchedRule, Is.EqualTo("sensitive-otherwise-denied"));
    }

    [Test]
    public void Default_mobile_devices_run_no_sensitive_data()
    {
        Assert.That(Default(Query(Role.Admin, DataSensitivityTag.Sensitive, mobile: true, pinned: true)), Is.EqualTo(PolicyEffect.Deny));
        Assert.That(Default(Query(Role.Member, DataSensitivityTag.Private, mobile: true)), Is.EqualTo(PolicyEffect.Allow));
        var r = PolicyEngine.Evaluate(PolicyEngine.Defaults("net_x"), Query(Role.Admin, DataSensitivityTag.Sensitive, mobile: true));
        Assert.That(r.MatchedRule, Is.EqualTo("mobile-no-sensitive"));
        Assert.That(r.Reason, Does.Contain("mobile devices may not run sensitive data"));
    }

    [Test]
    public void Default_guests_run_public_data_with_public_models_only()
    {
        Assert.That(Default(Query(Role.Guest, DataSensitivityTag.Public)), Is.EqualTo(PolicyEffect.Allow));
        Assert.That(PolicyEngine.Evaluate(PolicyEngine.Defaults("net_x"), Query(Role.Guest, DataSensitivityTag.Public)).MatchedRule, Is.EqualTo("guests-public-models-only"));
        Assert.That(Default(Query(Role.Guest, DataSensitivityTag.Private)), Is.EqualTo(PolicyEffect.Deny));
        Assert.That(Default(Query(Role.Guest, DataSensitivityTag.Sensitive, pinned: true)), Is.EqualTo(PolicyEffect.Deny));
    }

    [Test]
    public void Default_guests_cannot_use_a_model_the_network_has_not_made_public_but_members_can()
    {
        var privateModel = PolicyEngine.Evaluate(PolicyEngine.Defaults("net_x"), Query(Role.Guest, DataSensitivityTag.Public, modelPublic: false));
        Assert.That(privateModel.Effect, Is.EqualTo(PolicyEffect.Deny));
        Assert.That(privateModel.MatchedRule, Is.EqualTo("guests-nothing-else"));
        Assert.That(Default(Query(Role.Member, DataSensitivityTag.Private, modelPublic: false)), Is.EqualTo(PolicyEffect.Allow));
        var ocr = Query(Role.Guest, DataSensitivityTag.Public, modelPublic: false);
        ocr.WorkloadClass = WorkloadClass.OcrPreprocess;
        Assert.That(Default(ocr), Is.EqualTo(PolicyEffect.Allow), "OCR has no selectable model: its packaged model counts as public");
    }

    [Test]
    public void The_default_policy_passes_its_own_stored_tests_and_validates()
    {
        var policy = PolicyEngine.Defaults("net_x");
        Assert.That(PolicyEngine.Validate(policy), Is.Empty);
        Assert.That(policy.Tests, Has.Count.GreaterThanOrEqualTo(8));
        Assert.That(PolicyEngine.RunTests(policy).Where(t => !t.Passed).Select(t => t.Name), Is.Empty);
    }

    [Test]
    public void Breaking_a_default_makes_a_stored_test_fail()
    {
        var policy = PolicyEngine.Defaults("net_x");
        policy.Rules.RemoveAt(policy.Rules.IndexOf(policy.Rules.Single(r => r.Name == "mobile-no-sensitive")));
        var failed = PolicyEngine.RunTests(policy).Where(t => !t.Passed).ToList();
        Assert.That(failed.Select(f => f.Name), Has.Some.Contains("mobile"));
    }

    [Test]
    public void Time_of_day_windows_select_rules_and_may_wrap_midnight()
    {
        var policy = new Policy { DefaultEffect = PolicyEffect.Allow };
        policy.Rules.Add(new PolicyRule { Name = "no-night-batches", Effect = PolicyEffect.Deny, WorkloadClasses = { WorkloadClass.Embeddings }, TimeOfDay = "22:00-06:00" });
        Assert.That(PolicyEngine.Evaluate(policy, Query(Role.Member, DataSensitivityTag.Private, minute: 23 * 60)).Effect, Is.EqualTo(PolicyEffect.Deny));
        Assert.That(PolicyEngine.Evaluate(policy, Query(Role.Member, DataSensitivityTag.Private, minute: 5 * 60)).Effect, Is.EqualTo(PolicyEffect.Deny));
        Assert.That(PolicyEngine.Evaluate(policy, Query(Role.Member, DataSensitivityTag.Private, minute: 12 * 60)).Effect, Is.EqualTo(PolicyEffect.Allow));
    }

    [Test]
    public void Device_tier_min_is_a_requirement_allow_needs_it_deny_fires_without_it()
    {
        var policy = new Policy { DefaultEffect = PolicyEffect.Deny };
        policy.Rules.Add(new PolicyRule { Name = "chat-on-gpus", Effect = PolicyEffect.Allow, DeviceTierMin = Tier._3 });
        Assert.That(PolicyEngine.Evaluate(policy, Query(Role.Member, DataSensitivityTag.Private, tier: Tier._4)).Effect, Is.EqualTo(PolicyEffect.Allow));
        Assert.That(PolicyEngine.Evaluate(policy, Query(Role.Member, DataSensitivityTag.Private, tier: Tier._2)).Effect, Is.EqualTo(PolicyEffect.Deny));

        var deny = new Policy { DefaultEffect = PolicyEffect.Allow };
        deny.Rules.Add(new PolicyRule { Name = "private-needs-tier3", Effect = PolicyEffect.Deny, SensitivityTags = { DataSensitivityTag.Private }, DeviceTierMin = Tier._3 });
        Assert.That(PolicyEngine.Evaluate(deny, Query(Role.Member, DataSensitivityTag.Private, tier: Tier._2)).Effect, Is.EqualTo(PolicyEffect.Deny));
        Assert.That(PolicyEngine.Evaluate(deny, Query(Role.Member, DataSensitivityTag.Private, tier: Tier._4)).Effect, Is.EqualTo(PolicyEffect.Allow));
    }

    [Test]
    public void Mobile_state_constraints_and_device_lists_are_requirements()
    {
        var policy = new Policy { DefaultEffect = PolicyEffect.Allow };
        policy.Rules.Add(new PolicyRule { Name = "phones-on-charge", Effect = PolicyEffect.Deny, MobileStateConstraints = new MobileStateConstraints { RequireCharging = true, MinBatteryPercent = 50 } });
        policy.Rules.Add(new PolicyRule { Name = "only-dev-1", Effect = PolicyEffect.Deny, SensitivityTags = { DataSensitivityTag.Sensitive }, DeviceIds = { "dev_1" } });
        var q = Query(Role.Member, DataSensitivityTag.Private, mobile: true);
        q.DeviceCharging = false;
        Assert.That(PolicyEngine.Evaluate(policy, q).Effect, Is.EqualTo(PolicyEffect.Deny));
        Assert.That(PolicyEngine.Evaluate(policy, Query(Role.Member, DataSensitivityTag.Private, mobile: true)).Effect, Is.EqualTo(PolicyEffect.Allow));
        var other = Query(Role.Admin, DataSensitivityTag.Sensitive);
        other.DeviceId = "dev_2";
        Assert.That(PolicyEngine.Evaluate(policy, other).Effect, Is.EqualTo(PolicyEffect.Deny));
        Assert.That(PolicyEngine.Evaluate(policy, Query(Role.Admin, DataSensitivityTag.Sensitive)).Effect, Is.EqualTo(PolicyEffect.Allow));
    }

    [Test]
    public void Validation_reports_bad_rules_and_tests()
    {
        var policy = new Policy();
        policy.Rules.Add(new PolicyRule { Name = "a", Effect = PolicyEffect.Allow, TimeOfDay = "25:00-01:00" });
        policy.Rules.Add(new PolicyRule { Name = "a" });
        policy.Tests.Add(new PolicyTest { Name = "t" });
        var fields = PolicyEngine.Validate(policy).Select(p => p.Field).ToList();
        Assert.That(fields, Does.Contain("policy.rules[0].time_of_day").And.Contain("policy.rules[1].name").And.Contain("policy.rules[1].effect")
            .And.Contain("policy.tests[0].expect").And.Contain("policy.tests[0].query"));
    }
}

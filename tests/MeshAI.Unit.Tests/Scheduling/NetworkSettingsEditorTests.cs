#pragma warning disable CA1861 // expected values read best inline
using Grpc.Core;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Networks;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Scheduling;

[TestFixture]
[Category("Unit")]
public sealed class NetworkSettingsEditorTests
{
    [Test]
    public void Only_masked_fields_change()
    {
        var current = NetworkDefaults.Create(0);
        var patch = new NetworkSettings { ScoringWeights = new ScoringWeights { RttMs = -0.9, IdleScore = 0.5 }, RetryPolicy = new RetryPolicy { MaxAttempts = 5, BackoffMs = { 10, 20 } } };
        var updated = NetworkSettingsEditor.Apply(current, patch, ["scoring_weights.rtt_ms", "retry_policy.max_attempts"]);
        Assert.That(updated.ScoringWeights.RttMs, Is.EqualTo(-0.9));
        Assert.That(updated.ScoringWeights.IdleScore, Is.EqualTo(0.15), "not in the mask");
        Assert.That(updated.RetryPolicy.MaxAttempts, Is.EqualTo(5));
        Assert.That(updated.RetryPolicy.BackoffMs, Is.EqualTo(new[] { 250, 750, 2000 }));
        Assert.That(updated.Credits, Is.EqualTo(current.Credits));

        var whole = NetworkSettingsEditor.Apply(current, patch, ["retry_policy"]);
        Assert.That(whole.RetryPolicy.BackoffMs, Is.EqualTo(new[] { 10, 20 }));
    }

    [Test]
    public void Spot_check_sample_rate_is_updatable_within_0_and_10000_bps()
    {
        var current = NetworkDefaults.Create(0);
        var updated = NetworkSettingsEditor.Apply(current, new NetworkSettings { Credits = new CreditSettings { SpotCheckSampleBps = 250 } }, ["credits.spot_check_sample_bps"]);
        Assert.That(updated.Credits.SpotCheckSampleBps, Is.EqualTo(250));
        Assert.That(updated.Credits.MultiplierBps, Is.EqualTo(current.Credits.MultiplierBps), "the rest of credits is kept");
        foreach (var bad in new[] { -1, 10_001 })
        {
            Assert.That(Assert.Throws<RpcException>(() => NetworkSettingsEditor.Apply(current, new NetworkSettings { Credits = new CreditSettings { SpotCheckSampleBps = bad } }, ["credits.spot_check_sample_bps"]))!.StatusCode,
                Is.EqualTo(StatusCode.InvalidArgument));
        }
    }

    [Test]
    public void Canary_rate_defaults_to_100_bps_and_is_updatable_within_0_and_10000_bps()
    {
        var current = NetworkDefaults.Create(0);
        Assert.That(current.Credits.CanaryRateBps, Is.EqualTo(MeshAI.Control.Ledger.Canary.DefaultRateBps).And.EqualTo(100));
        foreach (var ok in new[] { 0, 2_500, 10_000 })
        {
            var updated = NetworkSettingsEditor.Apply(current, new NetworkSettings { Credits = new CreditSettings { CanaryRateBps = ok } }, ["credits.canary_rate_bps"]);
            Assert.That(updated.Credits.CanaryRateBps, Is.EqualTo(ok));
            Assert.That(updated.Credits.SpotCheckSampleBps, Is.EqualTo(current.Credits.SpotCheckSampleBps), "the rest of credits is kept");
        }

        foreach (var bad in new[] { -1, 10_001 })
        {
            Assert.That(Assert.Throws<RpcException>(() => NetworkSettingsEditor.Apply(current, new NetworkSettings { Credits = new CreditSettings { CanaryRateBps = bad } }, ["credits.canary_rate_bps"]))!.StatusCode,
                Is.EqualTo(StatusCode.InvalidArgument));
        }
    }

    [Test]
    public void Bad_values_and_unknown_paths_are_invalid_arguments()
    {
        var current = NetworkDefaults.Create(0);
        Assert.That(Assert.Throws<RpcException>(() => NetworkSettingsEditor.Apply(current, new NetworkSettings(), ["credits"]))!.StatusCode, Is.EqualTo(StatusCode.InvalidArgument));
        Assert.That(Assert.Throws<RpcException>(() => NetworkSettingsEditor.Apply(current, new NetworkSettings { RetryPolicy = new RetryPolicy { MaxAttempts = 0 } }, ["retry_policy.max_attempts"]))!.StatusCode,
            Is.EqualTo(StatusCode.InvalidArgument));
        Assert.That(Assert.Throws<RpcException>(() => NetworkSettingsEditor.Apply(current, new NetworkSettings { ScoringWeights = new ScoringWeights { RttMs = double.NaN } }, ["scoring_weights"]))!.StatusCode,
            Is.EqualTo(StatusCode.InvalidArgument));
    }

    [Test]
    public void Member_approval_allowlist_and_key_rotation_period_are_updatable_and_bounded()
    {
        var current = NetworkDefaults.Create(0);
        var patch = new NetworkSettings
        {
            MemberApprovalMode = MemberApprovalMode.AutoApproveDomainOrAllowlist,
            AutoApproveAllowlist = { " Example.com ", "@team.example", "example.com", "" },
            KeyRotationDays = 30,
        };
        var updated = NetworkSettingsEditor.Apply(current, patch, ["member_approval_mode", "auto_approve_allowlist", "key_rotation_days"]);
        Assert.That(updated.MemberApprovalMode, Is.EqualTo(MemberApprovalMode.AutoApproveDomainOrAllowlist));
        Assert.That(updated.AutoApproveAllowlist, Is.EqualTo(new[] { "example.com", "@team.example" }), "trimmed, lower-cased, de-duplicated");
        Assert.That(updated.KeyRotationDays, Is.EqualTo(30));
        Assert.That(updated.MobileSafety, Is.EqualTo(current.MobileSafety), "not in the mask");

        foreach (var (bad, path) in new[]
                 {
                     (new NetworkSettings { KeyRotationDays = -1 }, "key_rotation_days"),
                     (new NetworkSettings { KeyRotationDays = NetworkSettingsRules.MaxKeyRotationDays + 1 }, "key_rotation_days"),
                     (new NetworkSettings { AutoApproveAllowlist = { "has space.example" } }, "auto_approve_allowlist"),
                     (new NetworkSettings { MemberApprovalMode = (MemberApprovalMode)99 }, "member_approval_mode"),
                 })
        {
            var error = Assert.Throws<RpcException>(() => NetworkSettingsEditor.Apply(current, bad, [path]))!;
            Assert.That(error.StatusCode, Is.EqualTo(StatusCode.InvalidArgument), path);
            Assert.That(error.Status.Detail, Does.StartWith("settings." + path), path);
        }
    }
}

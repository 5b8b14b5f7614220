using MeshAI.Common.Errors;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Networks;

/// <summary>
/// UpdateNetworkSettings with a FieldMask (AIP-134): admins only; the paths listed in <see cref="UpdatablePaths"/>
/// (scheduler weights, retry policy, trust minimum, mobile safety, spot-check sample rate, member approval mode and
/// allowlist, key rotation period, the gateway's sensitivity ceiling) are copied from the request, everything else is kept.
/// The result passes <see cref="NetworkSettingsRules"/>, like every other settings write.
/// </summary>
public sealed class NetworkSettingsEditor(NetworkRepository networks, NetworkAccess access, NetworkRegistry registry, NetworkSettingsRules rules)
{
    /// <summary>Mask paths this RPC accepts.</summary>
    public static readonly IReadOnlyList<string> UpdatablePaths =
    [
        "scoring_weights", "scoring_weights.rtt_ms", "scoring_weights.is_plugged_in", "scoring_weights.thermal_headroom", "scoring_weights.idle_score",
        "scoring_weights.credit_rate_efficiency", "retry_policy", "retry_policy.max_attempts", "retry_policy.backoff_ms", "min_device_trust_level",
        "mobile_safety", "credits.spot_check_sample_bps", "credits.canary_rate_bps", "member_approval_mode", "auto_approve_allowlist", "key_rotation_days",
        "gateway.max_sensitivity",
    ];

    /// <summary>Applies the masked fields and returns the updated network.</summary>
    public async Task<Network> UpdateAsync(Caller caller, UpdateNetworkSettingsRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var membership = await access.RequireMemberAsync(caller, request.NetworkId, ct);
        if (!membership.IsAdmin)
        {
            throw RpcErrors.PermissionDenied("only admins can change network settings", ErrorReasons.AdminRequired);
        }

        var paths = request.UpdateMask?.Paths.ToList() ?? [];
        if (paths.Count == 0)
        {
            throw RpcErrors.InvalidArgument("update_mask", "name the fields to update, e.g. scoring_weights or retry_policy.max_attempts", ErrorReasons.FieldRequired);
        }

        var updated = Apply(membership.Settings, request.Settings ?? new NetworkSettings(), paths, rules);
        if (!await networks.UpdateSettingsAsync(request.NetworkId, membership.Network.SettingsJson, NetworkDefaults.ToJson(updated), ct))
        {
            throw RpcErrors.Aborted("the settings changed concurrently; read them again and retry");
        }

        return await registry.GetAsync(caller, request.NetworkId, ct);
    }

    /// <summary>The current settings with the masked paths taken from <paramref name="patch"/>, validated by <paramref name="rules"/> (pure; default bounds when null).</summary>
    public static NetworkSettings Apply(NetworkSettings current, NetworkSettings patch, IReadOnlyList<string> paths, NetworkSettingsRules? rules = null)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(patch);
        ArgumentNullException.ThrowIfNull(paths);
        var s = current.Clone();
        s.ScoringWeights ??= Scheduling.LinearScorer.DefaultWeights();
        s.RetryPolicy ??= new RetryPolicy { MaxAttempts = 3, BackoffMs = { 250, 750, 2000 } };
        var w = patch.ScoringWeights ?? new ScoringWeights();
        var r = patch.RetryPolicy ?? new RetryPolicy();
        foreach (var path in paths)
        {
            switch (path)
            {
                case "scoring_weights": s.ScoringWeights = w.Clone(); break;
                case "scoring_weights.rtt_ms": s.ScoringWeights.RttMs = w.RttMs; break;
                case "scoring_weights.is_plugged_in": s.ScoringWeights.IsPluggedIn = w.IsPluggedIn; break;
                case "scoring_weights.thermal_headroom": s.ScoringWeights.ThermalHeadroom = w.ThermalHeadroom; break;
                case "scoring_weights.idle_score": s.ScoringWeights.IdleScore = w.IdleScore; break;
                case "scoring_weights.credit_rate_efficiency": s.ScoringWeights.CreditRateEfficiency = w.CreditRateEfficiency; break;
                case "retry_policy": s.RetryPolicy = r.Clone(); break;
                case "retry_policy.max_attempts": s.RetryPolicy.MaxAttempts = r.MaxAttempts; break;
                case "retry_policy.backoff_ms":
                    s.RetryPolicy.BackoffMs.Clear();
                    s.RetryPolicy.BackoffMs.AddRange(r.BackoffMs);
                    break;
                case "min_device_trust_level": s.MinDeviceTrustLevel = patch.MinDeviceTrustLevel; break;
                case "mobile_safety": s.MobileSafety = patch.MobileSafety?.Clone() ?? throw RpcErrors.InvalidArgument("settings.mobile_safety", "required by the mask"); break;
                case "credits.spot_check_sample_bps":
                    s.Credits ??= new CreditSettings();
                    s.Credits.SpotCheckSampleBps = patch.Credits?.SpotCheckSampleBps ?? 0;
                    break;
                case "credits.canary_rate_bps":
                    s.Credits ??= new CreditSettings();
                    s.Credits.CanaryRateBps = patch.Credits?.CanaryRateBps ?? 0;
                    break;
                case "member_approval_mode": s.MemberApprovalMode = patch.MemberApprovalMode; break;
                case "auto_approve_allowlist":
                    s.AutoApproveAllowlist.Clear();
                    s.AutoApproveAllowlist.AddRange(patch.AutoApproveAllowlist.Select(e => e.Trim().ToLowerInvariant()).Where(e => e.Length > 0).Distinct());
                    break;
                case "key_rotation_days": s.KeyRotationDays = patch.KeyRotationDays; break;
                case "gateway.max_sensitivity":
                    s.Gateway ??= new GatewaySettings();
                    s.Gateway.MaxSensitivity = patch.Gateway?.MaxSensitivity ?? Contracts.Common.V1.DataSensitivityTag.Unspecified;
                    break;
                default:
                    throw RpcErrors.InvalidArgument("update_mask", $"'{path}' cannot be updated here; updatable: {string.Join(", ", UpdatablePaths)}");
            }
        }

        return (rules ?? NetworkSettingsRules.Default).Validate(s);
    }
}

using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Rpc;

namespace MeshAI.Control.Networks;

/// <summary>
/// The one check every write of network settings passes — CreateNetwork (overrides merged over the defaults),
/// UpdateNetworkSettings (masked fields applied) and UpdateCreditRates (rates applied) — on the complete result, before it is
/// stored: every field within the bounds of <see cref="RequestBoundsTable"/> (the same named options the request layer
/// enforces), plus what only the whole state can show (a stored multiplier, granularity or attempt count of 0, a rate
/// without a tier, two rates for one tier), the member approval mode, allowlist and key rotation period, and the gateway's
/// sensitivity ceiling.
/// </summary>
public sealed class NetworkSettingsRules(RequestBounds bounds)
{
    /// <summary>The rules with every option at its default (for pure functions and tests).</summary>
    public static NetworkSettingsRules Default { get; } = new(RequestBounds.Default);

    /// <summary>Most entries of the auto-approve allowlist.</summary>
    public const int MaxAllowlistEntries = 200;

    /// <summary>Longest scheduled key rotation period in days.</summary>
    public const int MaxKeyRotationDays = 3650;

    /// <summary>Returns <paramref name="settings"/> when storable; INVALID_ARGUMENT naming the first offending field otherwise.</summary>
    public NetworkSettings Validate(NetworkSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        bounds.Validate(settings, "settings");
        ValidateCredits(settings.Credits ?? throw RpcErrors.Required("settings.credits"), checkBounds: false);
        if (settings.RetryPolicy is null || settings.RetryPolicy.MaxAttempts < 1)
        {
            throw RpcErrors.InvalidArgument("settings.retry_policy.max_attempts", "at least 1 attempt", ErrorReasons.ValueOutOfRange);
        }

        if (settings.ScoringWeights is null)
        {
            throw RpcErrors.Required("settings.scoring_weights");
        }

        if (settings.MobileSafety is null)
        {
            throw RpcErrors.Required("settings.mobile_safety");
        }

        ValidateMembershipAndRotation(settings);
        if (settings.Gateway is { } gateway && !Enum.IsDefined(gateway.MaxSensitivity))
        {
            throw RpcErrors.InvalidArgument("settings.gateway.max_sensitivity", "a DataSensitivityTag (public, private or sensitive)", ErrorReasons.UnknownEnumValue);
        }

        return settings;
    }

    /// <summary>Returns <paramref name="credits"/> when storable (the part UpdateCreditRates writes).</summary>
    public CreditSettings ValidateCredits(CreditSettings credits, bool checkBounds = true)
    {
        ArgumentNullException.ThrowIfNull(credits);
        if (checkBounds)
        {
            bounds.Validate(credits, "settings.credits");
        }

        if (credits.MultiplierBps < 1)
        {
            throw RpcErrors.InvalidArgument("settings.credits.multiplier_bps", "at least 1 basis point (10000 = 1.0x)", ErrorReasons.ValueOutOfRange);
        }

        if (credits.BillingGranularityMs < 1)
        {
            throw RpcErrors.InvalidArgument("settings.credits.billing_granularity_ms", "at least 1 ms", ErrorReasons.ValueOutOfRange);
        }

        var seen = new HashSet<Tier>();
        for (var i = 0; i < credits.TierRates.Count; i++)
        {
            var tier = credits.TierRates[i].Tier;
            if (tier == Tier.Unspecified || !seen.Add(tier))
            {
                throw RpcErrors.InvalidArgument($"settings.credits.tier_rates[{i}].tier", "each rate names a different tier, TIER_0 … TIER_4");
            }
        }

        return credits;
    }

    private static void ValidateMembershipAndRotation(NetworkSettings s)
    {
        if (s.MemberApprovalMode is not (MemberApprovalMode.Unspecified or MemberApprovalMode.AdminApprovesNewMembers or MemberApprovalMode.AutoApproveDomainOrAllowlist))
        {
            throw RpcErrors.InvalidArgument("settings.member_approval_mode", "ADMIN_APPROVES_NEW_MEMBERS or AUTO_APPROVE_DOMAIN_OR_ALLOWLIST");
        }

        if (s.AutoApproveAllowlist.Count > MaxAllowlistEntries || s.AutoApproveAllowlist.Any(e => e.Length > 254 || e.Any(char.IsWhiteSpace)))
        {
            throw RpcErrors.InvalidArgument("settings.auto_approve_allowlist", $"at most {MaxAllowlistEntries} domains or addresses (e.g. example.com, @example.com, alex@example.com), each at most 254 characters without spaces");
        }

        if (s.KeyRotationDays < 0 || s.KeyRotationDays > MaxKeyRotationDays)
        {
            throw RpcErrors.InvalidArgument("settings.key_rotation_days", $"0 (no scheduled rotation) to {MaxKeyRotationDays} days");
        }
    }
}

using System.Globalization;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Control.Scheduling;

/// <summary>What a policy is asked about one (job, device) pair: the six dimensions of spec network_model.policy_engine_v1.</summary>
public readonly record struct PolicyFacts(
    WorkloadClass Workload,
    DataSensitivityTag Sensitivity,
    Role Role,
    Tier DeviceTier,
    bool DeviceIsMobile,
    string DeviceId,
    int MinuteOfDay,
    bool Charging,
    bool OnWifi,
    int BatteryPercent,
    int ThermalLevel,
    bool Pinned,
    string Model,
    bool ModelPublic)
{
    /// <summary>The facts of a wire query.</summary>
    public static PolicyFacts From(PolicyQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        return new PolicyFacts(query.WorkloadClass, query.SensitivityTag, query.MemberRole, query.DeviceTier, query.DeviceIsMobile, query.DeviceId,
            query.MinuteOfDay, query.DeviceCharging, query.DeviceOnWifi, query.DeviceBatteryPercent, query.DeviceThermalLevel, query.Pinned,
            query.Model, query.ModelPublic || !JobModels.IsSelectable(query.WorkloadClass));
    }
}

/// <summary>The outcome of one evaluation: the effect, the deciding rule (-1 = the default effect) and, when a requirement decided, which.</summary>
public readonly record struct PolicyVerdict(PolicyEffect Effect, int RuleIndex, string? Requirement)
{
    /// <summary>True when the job may run there.</summary>
    public bool Allowed => Effect != PolicyEffect.Deny;
}

/// <summary>
/// A policy prepared for fast repeated evaluation (placement evaluates it once per candidate device).
/// Semantics (docs/scheduling.md): rules are tried in order; a rule's <em>selectors</em> (workload classes, sensitivity
/// tags, member roles, time of day; empty = any) must all match for it to be considered. Its <em>requirements</em>
/// (device_tier_min, device_ids, require_pinned, mobile_state_constraints, public_models_only) then decide:
/// an ALLOW rule applies only when every requirement is met; a DENY rule applies when it has no requirements or any
/// requirement is unmet ("deny unless"). The first rule that applies wins; otherwise the default effect.
/// </summary>
public sealed class CompiledPolicy
{
    private readonly Rule[] _rules;

    private sealed record Rule(
        string Name,
        PolicyEffect Effect,
        HashSet<WorkloadClass>? Workloads,
        HashSet<DataSensitivityTag>? Tags,
        HashSet<Role>? Roles,
        (int From, int To)? Window,
        Tier TierMin,
        HashSet<string>? DeviceIds,
        bool RequirePinned,
        MobileStateConstraints? Mobile,
        bool PublicModelsOnly)
    {
        public bool HasRequirements => TierMin != Tier.Unspecified || DeviceIds is not null || RequirePinned || Mobile is not null || PublicModelsOnly;
    }

    /// <summary>Compiles <paramref name="policy"/> (validate it first: bad time windows compile to "never matches").</summary>
    public CompiledPolicy(Policy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        Source = policy;
        DefaultEffect = policy.DefaultEffect == PolicyEffect.Unspecified ? PolicyEffect.Allow : policy.DefaultEffect;
        _rules = policy.Rules.Select(r => new Rule(
            r.Name,
            r.Effect == PolicyEffect.Unspecified ? PolicyEffect.Deny : r.Effect,
            r.WorkloadClasses.Count == 0 ? null : [.. r.WorkloadClasses],
            r.SensitivityTags.Count == 0 ? null : [.. r.SensitivityTags],
            r.MemberRoles.Count == 0 ? null : [.. r.MemberRoles],
            string.IsNullOrWhiteSpace(r.TimeOfDay) ? null : PolicyEngine.TryParseWindow(r.TimeOfDay, out var w) ? w : (-1, -1),
            r.DeviceTierMin,
            r.DeviceIds.Count == 0 ? null : new HashSet<string>(r.DeviceIds, StringComparer.Ordinal),
            r.RequirePinned,
            r.MobileStateConstraints,
            r.PublicModelsOnly)).ToArray();
    }

    /// <summary>The policy this was compiled from.</summary>
    public Policy Source { get; }

    /// <summary>Effect when no rule applies.</summary>
    public PolicyEffect DefaultEffect { get; }

    /// <summary>Evaluates the facts (allocation-free).</summary>
    public PolicyVerdict Evaluate(in PolicyFacts facts) => Evaluate(facts, null);

    /// <summary>
    /// The rules whose selectors (workload, sensitivity, role, time of day: the same for every device of one job) match,
    /// so placement only checks the device requirements of those rules per candidate.
    /// </summary>
    public int[] SelectedRules(in PolicyFacts job)
    {
        var selected = new List<int>();
        for (var i = 0; i < _rules.Length; i++)
        {
            if (Selects(_rules[i], job))
            {
                selected.Add(i);
            }
        }

        return [.. selected];
    }

    /// <summary>Evaluates the facts considering only <paramref name="selectedRules"/> (from <see cref="SelectedRules"/> for the same job facts), or every rule when null.</summary>
    public PolicyVerdict Evaluate(in PolicyFacts facts, int[]? selectedRules)
    {
        var count = selectedRules?.Length ?? _rules.Length;
        for (var n = 0; n < count; n++)
        {
            var i = selectedRules is null ? n : selectedRules[n];
            var rule = _rules[i];
            if (selectedRules is null && !Selects(rule, facts))
            {
                continue;
            }

            var unmet = FirstUnmet(rule, facts);
            if (rule.Effect == PolicyEffect.Allow)
            {
                if (unmet is null)
                {
                    return new PolicyVerdict(PolicyEffect.Allow, i, null);
                }
            }
            else if (!rule.HasRequirements || unmet is not null)
            {
                return new PolicyVerdict(PolicyEffect.Deny, i, unmet);
            }
        }

        return new PolicyVerdict(DefaultEffect, -1, null);
    }

    /// <summary>Name of the deciding rule, or "default".</summary>
    public string RuleName(PolicyVerdict verdict) => verdict.RuleIndex < 0 ? PolicyEngine.DefaultRuleName : _rules[verdict.RuleIndex].Name;

    /// <summary>A one-line human reason.</summary>
    public string Describe(PolicyVerdict verdict)
    {
        var effect = verdict.Allowed ? "allowed" : "denied";
        var by = verdict.RuleIndex < 0 ? "by the default effect" : $"by rule '{_rules[verdict.RuleIndex].Name}'";
        return verdict.Requirement is null ? $"{effect} {by}" : $"{effect} {by}: {verdict.Requirement}";
    }

    private static bool Selects(Rule rule, in PolicyFacts f)
    {
        if (rule.Workloads is not null && !rule.Workloads.Contains(f.Workload))
        {
            return false;
        }

        if (rule.Tags is not null && !rule.Tags.Contains(f.Sensitivity))
        {
            return false;
        }

        if (rule.Roles is not null && !rule.Roles.Contains(f.Role))
        {
            return false;
        }

        if (rule.Window is { } w)
        {
            if (w.From < 0)
            {
                return false;
            }

            var m = f.MinuteOfDay;
            var inside = w.From <= w.To ? m >= w.From && m < w.To : m >= w.From || m < w.To;
            if (!inside)
            {
                return false;
            }
        }

        return true;
    }

    private static string? FirstUnmet(Rule rule, in PolicyFacts f)
    {
        if (rule.TierMin != Tier.Unspecified && (f.DeviceTier == Tier.Unspecified || f.DeviceTier < rule.TierMin))
        {
            return "device tier is below " + MeshAI.Common.Domain.Tiers.Name(rule.TierMin);
        }

        if (rule.DeviceIds is not null && !rule.DeviceIds.Contains(f.DeviceId))
        {
            return "device is not in the rule's device list";
        }

        if (rule.RequirePinned && !f.Pinned)
        {
            return "job is not pinned to this device";
        }

        if (rule.Mobile is { } mobile && f.DeviceIsMobile)
        {
            if (mobile.DeniedSensitivityTags.Contains(f.Sensitivity))
            {
                return "mobile devices may not run " + PolicyEngine.TagName(f.Sensitivity) + " data";
            }

            if (mobile.RequireCharging && !f.Charging)
            {
                return "mobile device is not charging";
            }

            if (mobile.RequireWifi && !f.OnWifi)
            {
                return "mobile device is not on Wi-Fi";
            }

            if (mobile.MinBatteryPercent > 0 && f.BatteryPercent < mobile.MinBatteryPercent)
            {
                return "mobile battery is below " + mobile.MinBatteryPercent.ToString(CultureInfo.InvariantCulture) + "%";
            }

            if (mobile.MaxThermalLevel > 0 && f.ThermalLevel >= mobile.MaxThermalLevel)
            {
                return "mobile device is too hot";
            }
        }

        // public_models_only: the model the job runs there must be public in the network (docs/models.md); workloads
        // without a selectable model (OCR, transcription, echo, batch) run packaged public models and always pass.
        if (rule.PublicModelsOnly && !f.ModelPublic)
        {
            return f.Model.Length == 0 ? "the device's default model is not public in this network" : $"model {f.Model} is not public in this network";
        }

        return null;
    }
}

/// <summary>One stored policy test and whether the policy satisfies it.</summary>
public sealed record PolicyTestOutcome(string Name, PolicyEffect Expected, PolicyEffect Actual, string MatchedRule, string Reason)
{
    /// <summary>True when the policy gives the expected effect.</summary>
    public bool Passed => Expected == Actual;
}

/// <summary>Policy engine v1: the spec defaults, validation, evaluation and the stored policy tests. The one place policy is decided.</summary>
public static class PolicyEngine
{
    /// <summary>Name reported when no rule applied.</summary>
    public const string DefaultRuleName = "default";

    /// <summary>Most rules a policy may hold.</summary>
    public const int MaxRules = 256;

    /// <summary>Most tests a policy may hold.</summary>
    public const int MaxTests = 256;

    /// <summary>The compiled default policy (no network id).</summary>
    public static CompiledPolicy DefaultCompiled { get; } = new(Defaults(""));

    /// <summary>
    /// The spec defaults as data (network_model.policy_engine_v1.defaults + security.privacy_controls.defaults):
    /// guests run public data only (public models only); mobile devices run no sensitive data; sensitive data runs for
    /// admins or on devices the job is pinned to. Everything else is allowed. The tests pin these down on every save.
    /// </summary>
    public static Policy Defaults(string networkId)
    {
        var policy = new Policy { NetworkId = networkId, Version = 0, DefaultEffect = PolicyEffect.Allow };
        policy.Rules.Add(new PolicyRule
        {
            Name = "guests-public-data-only", Effect = PolicyEffect.Deny,
            MemberRoles = { Role.Guest }, SensitivityTags = { DataSensitivityTag.Private, DataSensitivityTag.Sensitive },
        });
        policy.Rules.Add(new PolicyRule { Name = "guests-public-models-only", Effect = PolicyEffect.Allow, MemberRoles = { Role.Guest }, PublicModelsOnly = true });
        policy.Rules.Add(new PolicyRule { Name = "guests-nothing-else", Effect = PolicyEffect.Deny, MemberRoles = { Role.Guest } });
        policy.Rules.Add(new PolicyRule
        {
            Name = "mobile-no-sensitive", Effect = PolicyEffect.Deny, SensitivityTags = { DataSensitivityTag.Sensitive },
            MobileStateConstraints = new MobileStateConstraints { DeniedSensitivityTags = { DataSensitivityTag.Sensitive } },
        });
        policy.Rules.Add(new PolicyRule { Name = "sensitive-admins", Effect = PolicyEffect.Allow, SensitivityTags = { DataSensitivityTag.Sensitive }, MemberRoles = { Role.Admin } });
        policy.Rules.Add(new PolicyRule { Name = "sensitive-pinned-devices", Effect = PolicyEffect.Allow, SensitivityTags = { DataSensitivityTag.Sensitive }, RequirePinned = true });
        policy.Rules.Add(new PolicyRule { Name = "sensitive-otherwise-denied", Effect = PolicyEffect.Deny, SensitivityTags = { DataSensitivityTag.Sensitive } });

        PolicyTest Test(string name, PolicyEffect expect, Role role, DataSensitivityTag tag, bool mobile = false, bool pinned = false, bool modelPublic = true) => new()
        {
            Name = name, Expect = expect,
            Query = new PolicyQuery
            {
                WorkloadClass = WorkloadClass.Embeddings, SensitivityTag = tag, MemberRole = role, DeviceTier = mobile ? Tier._0 : Tier._2,
                DeviceIsMobile = mobile, DeviceId = "dev_test", MinuteOfDay = 12 * 60, DeviceCharging = true, DeviceOnWifi = true,
                DeviceBatteryPercent = 90, DeviceThermalLevel = 1, Pinned = pinned, ModelPublic = modelPublic,
            },
        };

        policy.Tests.Add(Test("members run private data on a laptop", PolicyEffect.Allow, Role.Member, DataSensitivityTag.Private));
        policy.Tests.Add(Test("guests run public data", PolicyEffect.Allow, Role.Guest, DataSensitivityTag.Public));
        policy.Tests.Add(Test("guests cannot use a model the network has not made public", PolicyEffect.Deny, Role.Guest, DataSensitivityTag.Public, modelPublic: false));
        policy.Tests.Add(Test("guests cannot run private data", PolicyEffect.Deny, Role.Guest, DataSensitivityTag.Private));
        policy.Tests.Add(Test("guests cannot run sensitive data", PolicyEffect.Deny, Role.Guest, DataSensitivityTag.Sensitive, pinned: true));
        policy.Tests.Add(Test("admins run sensitive data on a laptop", PolicyEffect.Allow, Role.Admin, DataSensitivityTag.Sensitive));
        policy.Tests.Add(Test("members run sensitive data only when pinned", PolicyEffect.Deny, Role.Member, DataSensitivityTag.Sensitive));
        policy.Tests.Add(Test("members run sensitive data on a pinned device", PolicyEffect.Allow, Role.Member, DataSensitivityTag.Sensitive, pinned: true));
        policy.Tests.Add(Test("mobile devices run no sensitive data, even for admins", PolicyEffect.Deny, Role.Admin, DataSensitivityTag.Sensitive, mobile: true, pinned: true));
        policy.Tests.Add(Test("mobile devices run private data", PolicyEffect.Allow, Role.Member, DataSensitivityTag.Private, mobile: true));
        return policy;
    }

    /// <summary>Evaluates a wire query against a policy.</summary>
    public static EvaluatePolicyResponse Evaluate(Policy policy, PolicyQuery query)
    {
        var compiled = new CompiledPolicy(policy);
        var verdict = compiled.Evaluate(PolicyFacts.From(query));
        return new EvaluatePolicyResponse { Effect = verdict.Effect, MatchedRule = compiled.RuleName(verdict), Reason = compiled.Describe(verdict) };
    }

    /// <summary>Runs every stored test of the policy.</summary>
    public static IReadOnlyList<PolicyTestOutcome> RunTests(Policy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        var compiled = new CompiledPolicy(policy);
        return policy.Tests.Select(t =>
        {
            var verdict = compiled.Evaluate(PolicyFacts.From(t.Query ?? new PolicyQuery()));
            return new PolicyTestOutcome(t.Name, t.Expect, verdict.Effect, compiled.RuleName(verdict), compiled.Describe(verdict));
        }).ToList();
    }

    /// <summary>Field problems of a policy (field path, description); empty when it may be saved.</summary>
    public static IReadOnlyList<(string Field, string Problem)> Validate(Policy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        var problems = new List<(string, string)>();
        if (policy.Rules.Count > MaxRules)
        {
            problems.Add(("policy.rules", $"at most {MaxRules} rules"));
        }

        if (policy.Tests.Count > MaxTests)
        {
            problems.Add(("policy.tests", $"at most {MaxTests} tests"));
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < policy.Rules.Count; i++)
        {
            var rule = policy.Rules[i];
            var at = $"policy.rules[{i}]";
            if (string.IsNullOrWhiteSpace(rule.Name))
            {
                problems.Add((at + ".name", "required"));
            }
            else if (!names.Add(rule.Name))
            {
                problems.Add((at + ".name", $"duplicate rule name '{rule.Name}'"));
            }

            if (rule.Effect == PolicyEffect.Unspecified)
            {
                problems.Add((at + ".effect", "ALLOW or DENY"));
            }

            if (!string.IsNullOrWhiteSpace(rule.TimeOfDay) && !TryParseWindow(rule.TimeOfDay, out _))
            {
                problems.Add((at + ".time_of_day", "\"HH:MM-HH:MM\" (24 h, may wrap midnight)"));
            }
        }

        for (var i = 0; i < policy.Tests.Count; i++)
        {
            var test = policy.Tests[i];
            if (string.IsNullOrWhiteSpace(test.Name))
            {
                problems.Add(($"policy.tests[{i}].name", "required"));
            }

            if (test.Expect == PolicyEffect.Unspecified)
            {
                problems.Add(($"policy.tests[{i}].expect", "ALLOW or DENY"));
            }

            if (test.Query is null)
            {
                problems.Add(($"policy.tests[{i}].query", "required"));
            }
        }

        return problems;
    }

    /// <summary>Parses "HH:MM-HH:MM" into minutes since midnight [from, to).</summary>
    public static bool TryParseWindow(string text, out (int From, int To) window)
    {
        window = default;
        var parts = (text ?? "").Split('-', StringSplitOptions.TrimEntries);
        if (parts.Length != 2 || !TryMinutes(parts[0], out var from) || !TryMinutes(parts[1], out var to) || from == to)
        {
            return false;
        }

        window = (from, to);
        return true;
    }

    /// <summary>Spec name of a sensitivity tag.</summary>
    public static string TagName(DataSensitivityTag tag) => tag switch
    {
        DataSensitivityTag.Public => "public",
        DataSensitivityTag.Private => "private",
        DataSensitivityTag.Sensitive => "sensitive",
        _ => "untagged",
    };

    private static bool TryMinutes(string hhmm, out int minutes)
    {
        minutes = 0;
        var p = hhmm.Split(':');
        if (p.Length != 2 || !int.TryParse(p[0], NumberStyles.None, CultureInfo.InvariantCulture, out var h) ||
            !int.TryParse(p[1], NumberStyles.None, CultureInfo.InvariantCulture, out var m) || h > 24 || m > 59 || (h == 24 && m != 0))
        {
            return false;
        }

        minutes = (h * 60) + m;
        return true;
    }
}

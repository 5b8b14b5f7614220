using System.CommandLine;
using System.Globalization;
using Google.Protobuf;
using MeshAI.Cli.Output;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet policy show|set|test`: the network's policy (policy engine v1) as data.</summary>
public static class PolicyCommands
{
    /// <summary>The `policy` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var policy = new Command("policy", "Show, replace and test the network policy (rules + stored tests)");
        policy.Add(Show(runtime));
        policy.Add(Set(runtime));
        policy.Add(Test(runtime));
        return policy;
    }

    /// <summary>Human rendering of a policy: its rules in evaluation order, then its stored tests.</summary>
    public static void WritePolicy(TextWriter writer, Policy policy)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(policy);
        writer.WriteLine($"Policy of {policy.NetworkId}, version {policy.Version} (first rule that applies wins; default {Display.Name(policy.DefaultEffect)})");
        var rules = new TextTable("#>", "RULE", "EFFECT", "SELECTS", "REQUIRES");
        var i = 1;
        foreach (var r in policy.Rules)
        {
            rules.Add(Display.Int(i++), r.Name, Display.Name(r.Effect), Selects(r), Requires(r));
        }

        rules.WriteTo(writer);
        writer.WriteLine();
        writer.WriteLine("Tests (must hold on every save)");
        var tests = new TextTable("TEST", "EXPECT");
        foreach (var t in policy.Tests)
        {
            tests.Add(t.Name, Display.Name(t.Expect));
        }

        if (tests.Count == 0)
        {
            writer.WriteLine("  (none)");
        }
        else
        {
            tests.WriteTo(writer);
        }
    }

    private static string Selects(PolicyRule r)
    {
        var parts = new List<string>();
        if (r.WorkloadClasses.Count > 0)
        {
            parts.Add("workload " + string.Join("|", r.WorkloadClasses.Select(w => Display.Name(w))));
        }

        if (r.SensitivityTags.Count > 0)
        {
            parts.Add("data " + string.Join("|", r.SensitivityTags.Select(t => Display.Name(t))));
        }

        if (r.MemberRoles.Count > 0)
        {
            parts.Add("role " + string.Join("|", r.MemberRoles.Select(x => Display.Name(x))));
        }

        if (!string.IsNullOrEmpty(r.TimeOfDay))
        {
            parts.Add("time " + r.TimeOfDay);
        }

        return parts.Count == 0 ? "everything" : string.Join(", ", parts);
    }

    private static string Requires(PolicyRule r)
    {
        var parts = new List<string>();
        if (r.DeviceTierMin != Tier.Unspecified)
        {
            parts.Add("tier >= " + Display.Name(r.DeviceTierMin));
        }

        if (r.DeviceIds.Count > 0)
        {
            parts.Add("devices " + string.Join("|", r.DeviceIds));
        }

        if (r.RequirePinned)
        {
            parts.Add("pinned device");
        }

        if (r.PublicModelsOnly)
        {
            parts.Add("public models");
        }

        if (r.MobileStateConstraints is { } m)
        {
            var mobile = new List<string>();
            if (m.DeniedSensitivityTags.Count > 0)
            {
                mobile.Add("no " + string.Join("|", m.DeniedSensitivityTags.Select(t => Display.Name(t))));
            }

            if (m.RequireCharging)
            {
                mobile.Add("charging");
            }

            if (m.RequireWifi)
            {
                mobile.Add("Wi-Fi");
            }

            if (m.MinBatteryPercent > 0)
            {
                mobile.Add($"battery >= {m.MinBatteryPercent}%");
            }

            if (m.MaxThermalLevel > 0)
            {
                mobile.Add($"thermal < {m.MaxThermalLevel}");
            }

            parts.Add("mobile: " + (mobile.Count == 0 ? "any" : string.Join(", ", mobile)));
        }

        return parts.Count == 0 ? "-" : string.Join("; ", parts);
    }

    private static async Task<Policy> ReadPolicyFileAsync(string path, CancellationToken ct)
    {
        string text;
        try
        {
            text = await File.ReadAllTextAsync(path, ct);
        }
        catch (IOException ex)
        {
            throw new CliUsageException($"cannot read {path}: {ex.Message}");
        }

        try
        {
            return JsonParser.Default.Parse<Policy>(text);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new CliUsageException($"{path} is not a policy (meshai.network.v1.Policy JSON, as printed by 'meshnet policy show --json'): {ex.Message}");
        }
    }

    private static Command Show(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var command = new Command("show", "The network policy: rules in evaluation order and stored tests") { network };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var response = await client.Policies.GetPolicyAsync(new GetPolicyRequest { NetworkId = networkId }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(response.Policy);
            }
            else
            {
                WritePolicy(ctx.Out, response.Policy);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Set(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var file = new Option<string>("--file", "-f") { Description = "Policy JSON (edit the output of 'meshnet policy show --json')", HelpName = "PATH", Required = true };
        var command = new Command("set", "Replace the network policy; refused unless every stored test passes") { network, file };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            var policy = await ReadPolicyFileAsync(ctx.Get(file)!, ctx.CancellationToken);
            policy.NetworkId = networkId;
            using var client = await ctx.ConnectAsync();
            var current = (await client.Policies.GetPolicyAsync(new GetPolicyRequest { NetworkId = networkId }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken)).Policy;
            var expected = policy.Version > 0 ? policy.Version : current.Version;
            var saved = (await client.Policies.UpdatePolicyAsync(new UpdatePolicyRequest { Policy = policy, ExpectedVersion = expected },
                deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken)).Policy;
            if (ctx.Json)
            {
                ctx.WriteJson(saved);
            }
            else
            {
                ctx.Out.WriteLine($"Saved policy version {saved.Version} of {networkId}: {saved.Rules.Count} rule(s), {saved.Tests.Count} test(s) passing.");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Test(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var file = new Option<string>("--file", "-f") { Description = "Test this proposed policy instead of the stored one", HelpName = "PATH" };
        var workload = new Option<string>("--workload") { Description = "Ad-hoc query: workload class (embeddings, ocr_preprocess, small_chat, audio_transcribe_chunked, batch_jobs_eval_or_synth, diagnostic_echo)" };
        var sensitivity = new Option<string>("--sensitivity") { Description = "Ad-hoc query: public, private or sensitive" };
        var role = new Option<string>("--role") { Description = "Ad-hoc query: admin, member or guest" };
        var tier = new Option<int?>("--tier") { Description = "Ad-hoc query: device tier 0-4" };
        var mobile = new Option<bool>("--mobile") { Description = "Ad-hoc query: the device is mobile" };
        var pinned = new Option<bool>("--pinned") { Description = "Ad-hoc query: the job is pinned to the device" };
        var device = new Option<string>("--device") { Description = "Ad-hoc query: device id" };
        var time = new Option<string>("--time") { Description = "Ad-hoc query: local time HH:MM" };
        var command = new Command("test", "Run the stored policy tests, or evaluate one ad-hoc query") { network, file, workload, sensitivity, role, tier, mobile, pinned, device, time };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            var proposed = ctx.Get(file) is { Length: > 0 } path ? await ReadPolicyFileAsync(path, ctx.CancellationToken) : null;
            using var client = await ctx.ConnectAsync();
            var adHoc = ctx.Get(workload) is not null || ctx.Get(sensitivity) is not null || ctx.Get(role) is not null || ctx.Get(tier) is not null ||
                        ctx.Get(mobile) || ctx.Get(pinned) || ctx.Get(device) is not null || ctx.Get(time) is not null;
            if (adHoc)
            {
                var query = new PolicyQuery
                {
                    WorkloadClass = Parse<WorkloadClass>(ctx.Get(workload) ?? "embeddings", "WORKLOAD_CLASS_", "--workload"),
                    SensitivityTag = Parse<DataSensitivityTag>(ctx.Get(sensitivity) ?? "private", "DATA_SENSITIVITY_TAG_", "--sensitivity"),
                    MemberRole = Parse<Role>(ctx.Get(role) ?? "member", "ROLE_", "--role"),
                    DeviceTier = ctx.Get(tier) is { } t and >= 0 and <= 4 ? (Tier)(t + 1) : ctx.Get(tier) is null ? Tier._2 : throw new CliUsageException("--tier is 0 to 4"),
                    DeviceIsMobile = ctx.Get(mobile),
                    Pinned = ctx.Get(pinned),
                    DeviceId = ctx.Get(device) ?? "",
                    MinuteOfDay = Minutes(ctx.Get(time)),
                    DeviceCharging = true,
                    DeviceOnWifi = true,
                    DeviceBatteryPercent = 100,
                    DeviceThermalLevel = 1,
                };
                var answer = await client.Policies.EvaluatePolicyAsync(new EvaluatePolicyRequest { NetworkId = networkId, Query = query, ProposedPolicy = proposed },
                    deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
                if (ctx.Json)
                {
                    ctx.WriteJson(answer);
                }
                else
                {
                    ctx.Out.WriteLine($"{Display.Name(answer.Effect)} by {answer.MatchedRule}: {answer.Reason}");
                }

                return ExitCodes.Ok;
            }

            var policy = proposed ?? (await client.Policies.GetPolicyAsync(new GetPolicyRequest { NetworkId = networkId }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken)).Policy;
            var table = new TextTable("TEST", "EXPECT", "GOT", "RULE", "RESULT");
            var failures = 0;
            var rows = new System.Text.Json.Nodes.JsonArray();
            foreach (var test in policy.Tests)
            {
                var answer = await client.Policies.EvaluatePolicyAsync(new EvaluatePolicyRequest { NetworkId = networkId, Query = test.Query, ProposedPolicy = policy },
                    deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
                var ok = answer.Effect == test.Expect;
                failures += ok ? 0 : 1;
                table.Add(test.Name, Display.Name(test.Expect), Display.Name(answer.Effect), answer.MatchedRule, ok ? "pass" : "FAIL");
                rows.Add(new System.Text.Json.Nodes.JsonObject
                {
                    ["name"] = test.Name, ["expect"] = test.Expect.ToString(), ["got"] = answer.Effect.ToString(), ["matchedRule"] = answer.MatchedRule, ["passed"] = ok,
                });
            }

            if (ctx.Json)
            {
                ctx.WriteJson(new System.Text.Json.Nodes.JsonObject { ["tests"] = rows, ["failures"] = failures });
            }
            else
            {
                table.WriteTo(ctx.Out);
                ctx.Out.WriteLine(failures == 0 ? $"All {policy.Tests.Count} policy test(s) pass." : $"{failures} of {policy.Tests.Count} policy test(s) FAIL.");
            }

            return failures == 0 ? ExitCodes.Ok : ExitCodes.Failure;
        });
        return command;
    }

    private static TEnum Parse<TEnum>(string text, string prefix, string option)
        where TEnum : struct, Enum
    {
        var wanted = prefix + text.Trim().ToUpperInvariant().Replace('-', '_');
        foreach (var value in Enum.GetValues<TEnum>())
        {
            var original = typeof(TEnum).GetField(value.ToString())?.GetCustomAttributes(typeof(Google.Protobuf.Reflection.OriginalNameAttribute), false)
                .OfType<Google.Protobuf.Reflection.OriginalNameAttribute>().FirstOrDefault()?.Name;
            if (string.Equals(original, wanted, StringComparison.Ordinal))
            {
                return value;
            }
        }

        throw new CliUsageException($"{option}: unknown value '{text}'");
    }

    private static int Minutes(string? hhmm)
    {
        if (string.IsNullOrEmpty(hhmm))
        {
            return (DateTime.Now.Hour * 60) + DateTime.Now.Minute;
        }

        return TimeOnly.TryParseExact(hhmm, "HH:mm", CultureInfo.InvariantCulture, DateTimeStyles.None, out var t)
            ? (t.Hour * 60) + t.Minute
            : throw new CliUsageException("--time is HH:MM");
    }
}

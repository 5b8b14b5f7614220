using System.CommandLine;
using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Cli.Output;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet net tune`: the per-network knobs (scoring weights, retry policy, the gateway's sensitivity ceiling); no flags shows them.</summary>
public static class NetTuneCommand
{
    private static readonly string[] WeightNames = ["rtt_ms", "is_plugged_in", "thermal_headroom", "idle_score", "credit_rate_efficiency"];

    /// <summary>The `net tune` command.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var weights = new Option<string[]>("--weight", "-w") { Description = "Scoring weight NAME=VALUE (rtt_ms, is_plugged_in, thermal_headroom, idle_score, credit_rate_efficiency); repeatable", AllowMultipleArgumentsPerToken = false };
        var attempts = new Option<int?>("--max-attempts") { Description = "Retry policy: attempts per job (or per chunk), 1-10" };
        var backoff = new Option<string>("--backoff-ms") { Description = "Retry policy: backoff steps in ms, e.g. 250,750,2000" };
        var gateway = new Option<string>("--gateway-max-sensitivity") { Description = "Highest data sensitivity the OpenAI-compatible gateway accepts: public, private (default) or sensitive" };
        gateway.AcceptOnlyFromAmong("public", "private", "sensitive");
        var command = new Command("tune", "Show or change the scheduler's scoring weights, retry policy and the gateway's sensitivity ceiling (admins)") { network, weights, attempts, backoff, gateway };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var request = new UpdateNetworkSettingsRequest { NetworkId = networkId, Settings = new NetworkSettings { ScoringWeights = new ScoringWeights(), RetryPolicy = new RetryPolicy() }, UpdateMask = new FieldMask() };
            foreach (var pair in ctx.Get(weights) ?? [])
            {
                var eq = pair.IndexOf('=', StringComparison.Ordinal);
                var name = eq > 0 ? pair[..eq].Trim() : "";
                if (!WeightNames.Contains(name) || !double.TryParse(pair[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                {
                    throw new CliUsageException($"--weight takes NAME=VALUE with NAME one of {string.Join(", ", WeightNames)}");
                }

                var w = request.Settings.ScoringWeights;
                _ = name switch
                {
                    "rtt_ms" => w.RttMs = value,
                    "is_plugged_in" => w.IsPluggedIn = value,
                    "thermal_headroom" => w.ThermalHeadroom = value,
                    "idle_score" => w.IdleScore = value,
                    _ => w.CreditRateEfficiency = value,
                };
                request.UpdateMask.Paths.Add("scoring_weights." + name);
            }

            if (ctx.Get(attempts) is { } max)
            {
                request.Settings.RetryPolicy.MaxAttempts = max;
                request.UpdateMask.Paths.Add("retry_policy.max_attempts");
            }

            if (ctx.Get(backoff) is { Length: > 0 } steps)
            {
                foreach (var step in steps.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                {
                    request.Settings.RetryPolicy.BackoffMs.Add(int.TryParse(step, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? ms : throw new CliUsageException("--backoff-ms takes comma-separated milliseconds"));
                }

                request.UpdateMask.Paths.Add("retry_policy.backoff_ms");
            }

            if (ctx.Get(gateway) is { Length: > 0 } ceiling)
            {
                request.Settings.Gateway = new GatewaySettings
                {
                    MaxSensitivity = ceiling switch
                    {
                        "public" => MeshAI.Contracts.Common.V1.DataSensitivityTag.Public,
                        "sensitive" => MeshAI.Contracts.Common.V1.DataSensitivityTag.Sensitive,
                        _ => MeshAI.Contracts.Common.V1.DataSensitivityTag.Private,
                    },
                };
                request.UpdateMask.Paths.Add("gateway.max_sensitivity");
            }

            Network result = request.UpdateMask.Paths.Count == 0
                ? (await client.Networks.GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken)).Network
                : (await client.Networks.UpdateNetworkSettingsAsync(request, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken)).Network;
            if (ctx.Json)
            {
                ctx.WriteJson(new System.Text.Json.Nodes.JsonObject
                {
                    ["networkId"] = networkId,
                    ["scoringWeights"] = JsonOutput.Node(result.Settings.ScoringWeights ?? new ScoringWeights()),
                    ["retryPolicy"] = JsonOutput.Node(result.Settings.RetryPolicy ?? new RetryPolicy()),
                    ["gateway"] = JsonOutput.Node(result.Settings.Gateway ?? new GatewaySettings()),
                });
                return ExitCodes.Ok;
            }

            var sw = result.Settings.ScoringWeights ?? new ScoringWeights();
            var table = new TextTable("SETTING", "VALUE>");
            table.Add("weight rtt_ms", F(sw.RttMs));
            table.Add("weight is_plugged_in", F(sw.IsPluggedIn));
            table.Add("weight thermal_headroom", F(sw.ThermalHeadroom));
            table.Add("weight idle_score", F(sw.IdleScore));
            table.Add("weight credit_rate_efficiency", F(sw.CreditRateEfficiency));
            table.Add("retry max_attempts", Display.Int(result.Settings.RetryPolicy?.MaxAttempts ?? 0));
            table.Add("retry backoff_ms", string.Join(",", result.Settings.RetryPolicy?.BackoffMs ?? []));
            table.Add("gateway max_sensitivity", result.Settings.Gateway?.MaxSensitivity is { } ceilingNow and not MeshAI.Contracts.Common.V1.DataSensitivityTag.Unspecified ? Display.Name(ceilingNow) : "private (default)");
            if (request.UpdateMask.Paths.Count > 0)
            {
                ctx.Out.WriteLine($"Updated {string.Join(", ", request.UpdateMask.Paths)} of {networkId}.");
            }

            table.WriteTo(ctx.Out);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
}

using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Cli.Output;
using MeshAI.Client;
using MeshAI.Common.Domain;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Ledger.V1;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet ledger show | reconcile | export | rates`.</summary>
public static class LedgerCommands
{
    /// <summary>The `ledger` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var ledger = new Command("ledger", "Credits: balances, events, export, reconcile and rates");
        ledger.Add(Show(runtime));
        ledger.Add(Reconcile(runtime));
        ledger.Add(Export(runtime));
        ledger.Add(Rates(runtime));
        return ledger;
    }

    /// <summary>
    /// Human rendering of a ledger view that reads without a manual: who pays (the pool or the member), what devices
    /// earned and for whom, each member's own balance, and recent events in words with emails and device names.
    /// </summary>
    public static void WriteLedger(TextWriter writer, LedgerView view)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(view);
        var b = view.Balances;
        var pool = b.SharedPoolEnabled;
        writer.WriteLine(pool
            ? $"Network {b.NetworkId}: shared pool on. Jobs are paid from the pool; devices earn credits for their owners."
            : $"Network {b.NetworkId}: shared pool off. Each member pays for their own jobs; devices earn credits for their owners.");
        writer.WriteLine();
        var totals = new TextTable("", "CREDITS>", "");
        if (pool)
        {
            totals.Add("Pool balance", Credits.Format(b.PoolBalanceMicro), "what jobs can still spend");
        }

        totals.Add("Granted", Credits.Format(b.GrantedTotalMicro), pool ? "starting credits put in the pool" : "starting credits given to members");
        totals.Add("Spent by jobs", Credits.Format(b.BurnedTotalMicro), pool ? "paid from the pool" : "paid from members' balances");
        totals.Add("Earned by devices", Credits.Format(b.MintedTotalMicro), "paid to the devices' owners");
        totals.WriteTo(writer);

        var emails = b.Members.Where(m => !string.IsNullOrEmpty(m.Email)).ToDictionary(m => m.UserId, m => m.Email, StringComparer.Ordinal);
        var deviceNames = b.Devices.Where(d => !string.IsNullOrEmpty(d.DeviceName)).ToDictionary(d => d.DeviceId, d => d.DeviceName, StringComparer.Ordinal);
        string Member(string userId) => string.IsNullOrEmpty(userId) ? "-" : emails.GetValueOrDefault(userId, userId);

        writer.WriteLine();
        writer.WriteLine("Members");
        var members = new TextTable("MEMBER", "EARNED>", pool ? "SPENT (POOL PAID)>" : "SPENT>", "OWN BALANCE>");
        foreach (var m in b.Members)
        {
            members.Add(Member(m.UserId), Credits.Format(m.MintedMicro), Credits.Format(m.BurnedMicro), Credits.Format(m.BalanceMicro));
        }

        WriteOrNone(writer, members);

        writer.WriteLine();
        writer.WriteLine("Devices");
        var devices = new TextTable("DEVICE", "ID", "OWNER", "EARNED>", "WORKED>", "JOBS>");
        foreach (var d in b.Devices)
        {
            devices.Add(string.IsNullOrEmpty(d.DeviceName) ? "-" : d.DeviceName, d.DeviceId, Member(d.OwnerUserId), Credits.Format(d.MintedMicro), Display.Seconds(d.RuntimeMs), Display.Int(d.Jobs));
        }

        WriteOrNone(writer, devices);

        writer.WriteLine();
        writer.WriteLine("Recent events (the newest last; --limit N for more)");
        var events = new TextTable("#>", "TIME (UTC)", "EVENT", "CREDITS>", "ACCOUNT", "MEMBER", "JOB", "DEVICE");
        foreach (var e in view.Events)
        {
            var moves = e.EventType is LedgerEventType.CreditsBurned or LedgerEventType.CreditsMinted or LedgerEventType.CreditsGranted;
            events.Add(
                Display.Int(e.Sequence),
                Display.Time(e.CreateTime).TrimEnd('Z'),
                EventName(e.EventType),
                moves ? Signed(e.AmountMicro) : "-",
                !moves ? "-" : e.AccountKind == AccountKind.Pool ? "pool" : Member(e.UserId),
                Member(e.UserId),
                Dash(e.JobId),
                string.IsNullOrEmpty(e.DeviceId) ? "-" : deviceNames.GetValueOrDefault(e.DeviceId, e.DeviceId));
        }

        WriteOrNone(writer, events);
    }

    /// <summary>An event type in words: "job paid", "device earned", "grant", "job started", ….</summary>
    public static string EventName(LedgerEventType type) => type switch
    {
        LedgerEventType.CreditsBurned => "job paid",
        LedgerEventType.CreditsMinted => "device earned",
        LedgerEventType.CreditsGranted => "grant",
        LedgerEventType.JobStarted => "job started",
        LedgerEventType.JobCompleted => "job completed",
        LedgerEventType.JobFailed => "job failed",
        _ => Display.Name(type),
    };

    private static string Signed(long micro) => micro > 0 ? "+" + Credits.Format(micro) : Credits.Format(micro);

    /// <summary>Machine rendering of a ledger view.</summary>
    public static JsonObject LedgerJson(LedgerView view)
    {
        ArgumentNullException.ThrowIfNull(view);
        return new JsonObject
        {
            ["balances"] = JsonOutput.Node(view.Balances),
            ["events"] = JsonOutput.Array(view.Events),
            ["nextPageToken"] = view.NextPageToken,
        };
    }

    private static void WriteOrNone(TextWriter writer, TextTable table)
    {
        if (table.Count == 0)
        {
            writer.WriteLine("  (none)");
        }
        else
        {
            table.WriteTo(writer);
        }
    }

    private static string Dash(string value) => string.IsNullOrEmpty(value) ? "-" : value;

    private static Command Show(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var limit = new Option<int>("--limit") { Description = "How many recent events", DefaultValueFactory = _ => 20 };
        var command = new Command("show", "Balances (pool, per member, per device, minted vs burned) and recent events") { network, limit };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            // The newest events, printed oldest of them first so the table reads top to bottom.
            var newest = await client.GetLedgerAsync(networkId, Math.Max(1, ctx.Get(limit)), null, newestFirst: true, ctx.CancellationToken);
            var view = newest with { Events = [.. newest.Events.Reverse()] };
            if (ctx.Json)
            {
                ctx.WriteJson(LedgerJson(view));
            }
            else
            {
                WriteLedger(ctx.Out, view);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Human rendering of a reconcile result.</summary>
    public static void WriteReconcile(TextWriter writer, ReconcileLedgerResponse response)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(response);
        writer.WriteLine(response.Balanced
            ? $"Balanced: the ledger equals the execution records ({response.JobsChecked} jobs, {response.EventsChecked} events checked)"
            : $"NOT balanced: {response.Mismatches.Count} mismatch(es) ({response.JobsChecked} jobs, {response.EventsChecked} events checked)");
        if (response.Mismatches.Count > 0)
        {
            var table = new TextTable("SUBJECT", "LEDGER>", "RECOMPUTED>", "DETAIL");
            foreach (var m in response.Mismatches)
            {
                table.Add(m.Subject, Credits.Format(m.LedgerMicro), Credits.Format(m.RecomputedMicro), m.Detail);
            }

            table.WriteTo(writer);
        }
    }

    /// <summary>Human rendering of the effective rates.</summary>
    public static void WriteRates(TextWriter writer, IEnumerable<TierRate> rates, long multiplierBps, long granularityMs)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(rates);
        writer.WriteLine($"Multiplier {FormatMultiplier(multiplierBps)}x ({multiplierBps} bps), billing granularity {granularityMs} ms");
        var table = new TextTable("TIER", "EARN/MIN>", "BURN/MIN>");
        foreach (var r in rates)
        {
            table.Add(Tiers.Name(r.Tier), Credits.Format(r.EarnMicroPerMin), Credits.Format(r.BurnMicroPerMin));
        }

        table.WriteTo(writer);
    }

    /// <summary>"1.5" → 15000 basis points; false unless positive with at most four decimals.</summary>
    public static bool TryParseMultiplier(string? text, out long bps)
    {
        bps = 0;
        if (!decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value <= 0 || value > 100 ||
            decimal.Round(value, 4) != value)
        {
            return false;
        }

        bps = (long)(value * 10_000);
        return true;
    }

    /// <summary>"tier2" / "2" / "TIER_2" → Tier._2.</summary>
    public static bool TryParseTier(string? text, out Tier tier)
    {
        tier = Tier.Unspecified;
        var digits = (text ?? "").Trim().ToLowerInvariant().Replace("tier", "", StringComparison.Ordinal).Trim('_', ' ');
        if (int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 0 and <= 4)
        {
            tier = (Tier)(n + 1);
            return true;
        }

        return false;
    }

    /// <summary>--since: an ISO 8601 date/time (UTC unless it names an offset) or a look-back like "24h" / "7d".</summary>
    public static bool TryParseSince(string? text, DateTimeOffset now, out DateTimeOffset since)
    {
        since = default;
        var value = (text ?? "").Trim();
        if (value.Length > 1 && (value[^1] is 'h' or 'd') && int.TryParse(value[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var amount))
        {
            since = now - (value[^1] == 'h' ? TimeSpan.FromHours(amount) : TimeSpan.FromDays(amount));
            return true;
        }

        return DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out since);
    }

    private static string FormatMultiplier(long bps) => ((decimal)bps / 10_000).ToString("0.####", CultureInfo.InvariantCulture);

    private static Command Reconcile(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var command = new Command("reconcile", "Recompute every balance from execution records and prove it equals the ledger (exit 1 when not)") { network };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var response = await client.Ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = networkId }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(response);
            }
            else
            {
                WriteReconcile(ctx.Out, response);
            }

            return response.Balanced ? ExitCodes.Ok : ExitCodes.Failure;
        });
        return command;
    }

    private static Command Export(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var format = new Option<string>("--format") { Description = "jsonl or csv", DefaultValueFactory = _ => "jsonl" };
        format.AcceptOnlyFromAmong("jsonl", "csv");
        var since = new Option<string>("--since") { Description = "Only events at or after this time: ISO 8601 (UTC) or a look-back like 24h, 7d", HelpName = "TIME" };
        var output = new Option<string>("--output", "-o") { Description = "Write to this file instead of stdout", HelpName = "FILE" };
        var command = new Command("export", "Export the ledger as JSON lines or CSV") { network, format, since, output };
        runtime.Bind(command, async ctx =>
        {
            var request = new ExportLedgerRequest { Format = ctx.Get(format) == "csv" ? ExportFormat.Csv : ExportFormat.Jsonl };
            if (ctx.Get(since) is { Length: > 0 } sinceText)
            {
                if (!TryParseSince(sinceText, ctx.Environment.Time.GetUtcNow(), out var sinceTime))
                {
                    throw new CliUsageException($"--since '{sinceText}' is neither an ISO 8601 time nor a look-back like 24h or 7d");
                }

                request.Since = Timestamp.FromDateTimeOffset(sinceTime);
            }

            request.NetworkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            using var call = client.Ledger.ExportLedger(request, cancellationToken: ctx.CancellationToken);
            var path = ctx.Get(output);
            await using var file = string.IsNullOrEmpty(path) ? null : File.Create(path);
            var bytes = 0L;
            while (await call.ResponseStream.MoveNext(ctx.CancellationToken))
            {
                var data = call.ResponseStream.Current.Data;
                bytes += data.Length;
                if (file is not null)
                {
                    await file.WriteAsync(data.Memory, ctx.CancellationToken);
                }
                else
                {
                    await ctx.Out.WriteAsync(data.ToStringUtf8());
                }
            }

            if (file is not null)
            {
                ctx.Error.WriteLine($"Wrote {bytes} bytes to {path}");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Rates(CliRuntime runtime)
    {
        var rates = new Command("rates", "Credit rates per tier, the network multiplier and billing granularity (show, or set as an admin)");
        var showNetwork = CliRuntime.NetworkOption();
        var show = new Command("show", "Effective rates per tier") { showNetwork };
        runtime.Bind(show, ctx => ShowRatesAsync(ctx, showNetwork));
        var ratesNetwork = CliRuntime.NetworkOption();
        rates.Add(ratesNetwork);
        runtime.Bind(rates, ctx => ShowRatesAsync(ctx, ratesNetwork));
        rates.Add(show);
        rates.Add(SetRates(runtime));
        return rates;
    }

    private static async Task<int> ShowRatesAsync(CliContext ctx, Option<string> network)
    {
        var networkId = await ctx.NetworkIdAsync(network);
        using var client = await ctx.ConnectAsync();
        var response = await client.Ledger.GetCreditRatesAsync(new GetCreditRatesRequest { NetworkId = networkId }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
        if (ctx.Json)
        {
            ctx.WriteJson(response);
        }
        else
        {
            WriteRates(ctx.Out, response.TierRates, response.MultiplierBps, response.BillingGranularityMs);
        }

        return ExitCodes.Ok;
    }

    private static Command SetRates(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var tier = new Option<string>("--tier") { Description = "Tier to override: tier0 … tier4", HelpName = "TIER" };
        var earn = new Option<string>("--earn") { Description = "Credits earned per device-minute on --tier (up to six decimals)", HelpName = "CREDITS" };
        var burn = new Option<string>("--burn") { Description = "Credits burned per job-minute on --tier (up to six decimals)", HelpName = "CREDITS" };
        var multiplier = new Option<string>("--multiplier") { Description = "Network multiplier, e.g. 1.5 (stored as basis points)", HelpName = "X" };
        var granularity = new Option<long>("--granularity-ms") { Description = "Billing granularity in milliseconds", HelpName = "MS" };
        var command = new Command("set", "Change rates (admins only): per-tier overrides, the multiplier, the billing granularity")
        {
            network, tier, earn, burn, multiplier, granularity,
        };
        runtime.Bind(command, async ctx =>
        {
            var request = new UpdateCreditRatesRequest { BillingGranularityMs = ctx.Get(granularity) };
            if (ctx.Get(multiplier) is { Length: > 0 } m)
            {
                request.MultiplierBps = TryParseMultiplier(m, out var bps) ? bps : throw new CliUsageException($"--multiplier '{m}' must be a positive number up to 100 with at most four decimals");
            }

            var earnText = ctx.Get(earn);
            var burnText = ctx.Get(burn);
            var tierText = ctx.Get(tier);
            if (string.IsNullOrEmpty(tierText) != (string.IsNullOrEmpty(earnText) && string.IsNullOrEmpty(burnText)))
            {
                throw new CliUsageException("--tier goes with --earn and/or --burn");
            }

            if (request.MultiplierBps == 0 && request.BillingGranularityMs == 0 && string.IsNullOrEmpty(tierText))
            {
                throw new CliUsageException("nothing to set: give --tier with --earn/--burn, --multiplier or --granularity-ms");
            }

            request.NetworkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            if (!string.IsNullOrEmpty(tierText))
            {
                if (!TryParseTier(tierText, out var t))
                {
                    throw new CliUsageException($"--tier '{tierText}' must be tier0 … tier4");
                }

                var current = await client.Ledger.GetCreditRatesAsync(new GetCreditRatesRequest { NetworkId = request.NetworkId }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
                var rate = current.TierRates.FirstOrDefault(r => r.Tier == t)?.Clone() ?? new TierRate { Tier = t };
                if (!string.IsNullOrEmpty(earnText))
                {
                    rate.EarnMicroPerMin = Credits.TryParse(earnText, out var e) ? e : throw new CliUsageException($"--earn '{earnText}' must be credits with at most six decimals");
                }

                if (!string.IsNullOrEmpty(burnText))
                {
                    rate.BurnMicroPerMin = Credits.TryParse(burnText, out var b) ? b : throw new CliUsageException($"--burn '{burnText}' must be credits with at most six decimals");
                }

                request.TierRates.Add(rate);
            }

            var response = await client.Ledger.UpdateCreditRatesAsync(request, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(response);
            }
            else
            {
                WriteRates(ctx.Out, response.TierRates, response.MultiplierBps, response.BillingGranularityMs);
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}

using System.CommandLine;
using System.Text.Json.Nodes;
using MeshAI.Cli.Output;
using MeshAI.Client;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet ledger show`.</summary>
public static class LedgerCommands
{
    /// <summary>The `ledger` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var ledger = new Command("ledger", "Credits: balances and events");
        ledger.Add(Show(runtime));
        return ledger;
    }

    /// <summary>Human rendering of balances (pool, minted vs burned, per member, per device) and recent events.</summary>
    public static void WriteLedger(TextWriter writer, LedgerView view)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(view);
        var b = view.Balances;
        writer.WriteLine($"Network {b.NetworkId} — shared pool {(b.SharedPoolEnabled ? "on" : "off")}");
        var totals = new TextTable("", "CREDITS>");
        totals.Add("pool balance", Credits.Format(b.PoolBalanceMicro));
        totals.Add("minted", Credits.Format(b.MintedTotalMicro));
        totals.Add("burned", Credits.Format(b.BurnedTotalMicro));
        totals.Add("granted", Credits.Format(b.GrantedTotalMicro));
        totals.WriteTo(writer);

        writer.WriteLine();
        writer.WriteLine("Members");
        var members = new TextTable("EMAIL", "USER", "BALANCE>", "MINTED>", "BURNED>");
        foreach (var m in b.Members)
        {
            members.Add(m.Email, m.UserId, Credits.Format(m.BalanceMicro), Credits.Format(m.MintedMicro), Credits.Format(m.BurnedMicro));
        }

        WriteOrNone(writer, members);

        writer.WriteLine();
        writer.WriteLine("Devices");
        var devices = new TextTable("NAME", "ID", "OWNER", "MINTED>", "RUNTIME>", "JOBS>");
        foreach (var d in b.Devices)
        {
            devices.Add(d.DeviceName, d.DeviceId, d.OwnerUserId, Credits.Format(d.MintedMicro), Display.Millis(d.RuntimeMs), Display.Int(d.Jobs));
        }

        WriteOrNone(writer, devices);

        writer.WriteLine();
        writer.WriteLine("Recent events");
        var events = new TextTable("SEQ>", "TIME", "TYPE", "JOB", "DEVICE", "ACCOUNT", "AMOUNT>");
        foreach (var e in view.Events)
        {
            events.Add(Display.Int(e.Sequence), Display.Time(e.CreateTime), Display.Name(e.EventType), Dash(e.JobId), Dash(e.DeviceId),
                Display.Name(e.AccountKind) + (string.IsNullOrEmpty(e.UserId) ? "" : " " + e.UserId), Credits.Format(e.AmountMicro));
        }

        WriteOrNone(writer, events);
    }

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
            var view = await client.GetLedgerAsync(networkId, Math.Max(1, ctx.Get(limit)), cancellationToken: ctx.CancellationToken);
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
}

using System.CommandLine;
using System.Text.Json.Nodes;
using MeshAI.Cli.Output;
using MeshAI.Contracts.Audit.V1;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet audit list|export`: the network's security audit log (admins).</summary>
public static class AuditCommands
{
    /// <summary>The `audit` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var audit = new Command("audit", "Security audit log of the network (admins)");
        audit.Add(List(runtime));
        audit.Add(Export(runtime));
        return audit;
    }

    private static Command List(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var command = new Command("list", "Audit events, oldest first") { network };
        command.Aliases.Add("ls");
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var events = new List<AuditEvent>();
            var request = new ListAuditEventsRequest { NetworkId = networkId, PageSize = 200 };
            do
            {
                var page = await client.Audit.ListAuditEventsAsync(request, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
                events.AddRange(page.Events);
                request.PageToken = page.NextPageToken;
            }
            while (!string.IsNullOrEmpty(request.PageToken) && events.Count < 100_000);

            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject { ["networkId"] = networkId, ["events"] = JsonOutput.Array(events) });
                return ExitCodes.Ok;
            }

            var table = new TextTable("#>", "TIME", "ACTION", "ACTOR", "TARGET", "DETAILS");
            foreach (var e in events)
            {
                table.Add(e.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture), Display.Time(e.Time), e.Action.ToString(), e.ActorUserId, e.Target,
                    string.Join(' ', e.Details.OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => d.Key + "=" + d.Value)));
            }

            table.WriteTo(ctx.Out);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Export(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var format = new Option<string>("--format") { Description = "jsonl or csv", DefaultValueFactory = _ => "jsonl" };
        format.AcceptOnlyFromAmong("jsonl", "csv");
        var output = new Option<string?>("--output", "-o") { Description = "File to write (default: standard output)" };
        var command = new Command("export", "Export every audit event as JSONL or CSV") { network, format, output };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var request = new ExportAuditEventsRequest { NetworkId = networkId, Format = ctx.Get(format) == "csv" ? AuditExportFormat.Csv : AuditExportFormat.Jsonl };
            using var call = client.Audit.ExportAuditEvents(request, cancellationToken: ctx.CancellationToken);
            var path = ctx.Get(output);
            await using var file = string.IsNullOrEmpty(path) ? null : File.Create(path);
            while (await call.ResponseStream.MoveNext(ctx.CancellationToken))
            {
                var data = call.ResponseStream.Current.Data;
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
                await ctx.Error.WriteLineAsync($"Wrote {file.Length} bytes to {path}.");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}

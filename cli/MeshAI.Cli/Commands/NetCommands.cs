using System.CommandLine;
using System.Text.Json.Nodes;
using MeshAI.Cli.Output;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet net create|list|use`.</summary>
public static class NetCommands
{
    /// <summary>The `net` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var net = new Command("net", "Create, list and select networks");
        net.Add(Create(runtime));
        net.Add(List(runtime));
        net.Add(Use(runtime));
        net.Add(NetTuneCommand.Build(runtime));
        return net;
    }

    /// <summary>The network list table (the network_list screen: networks, online devices, credit balance).</summary>
    public static TextTable Table(IEnumerable<Network> networks, string? defaultNetworkId)
    {
        var table = new TextTable("", "ID", "NAME", "ROLE", "ONLINE>", "POOL (CREDITS)>");
        foreach (var network in networks)
        {
            table.Add(
                network.NetworkId == defaultNetworkId ? "*" : "",
                network.NetworkId,
                network.Name,
                Display.Name(network.CallerRole),
                Display.Int(network.OnlineDevicesCount),
                Credits.Format(network.CreditBalanceSummary?.PoolBalanceMicro ?? 0));
        }

        return table;
    }

    private static Command Create(CliRuntime runtime)
    {
        var name = new Argument<string>("NAME") { Description = "Network name" };
        var reuse = new Option<bool>("--reuse") { Description = "If you already belong to a network with this name, make it the default instead of creating another (for scripts that run twice)" };
        var command = new Command("create", "Create a private network (credits_internal billing) and make it the default") { name, reuse };
        runtime.Bind(command, async ctx =>
        {
            using var client = await ctx.ConnectAsync();
            var wanted = ctx.Get(name)!.Trim();
            if (ctx.Get(reuse) && await FindByNameAsync(ctx, client, wanted) is { } existing)
            {
                var current = await ctx.ConfigAsync();
                current.DefaultNetworkId = existing.NetworkId;
                await ctx.SaveConfigAsync(current);
                if (ctx.Json)
                {
                    ctx.WriteJson(existing);
                }
                else
                {
                    ctx.Out.WriteLine($"Using your existing network {existing.Name} ({existing.NetworkId}); it is now your default network.");
                }

                return ExitCodes.Ok;
            }

            var network = await client.CreateNetworkAsync(wanted, cancellationToken: ctx.CancellationToken);
            var config = await ctx.ConfigAsync();
            config.DefaultNetworkId = network.NetworkId;
            await ctx.SaveConfigAsync(config);
            if (ctx.Json)
            {
                ctx.WriteJson(network);
            }
            else
            {
                ctx.Out.WriteLine($"Created network {network.Name} ({network.NetworkId}); it is now your default network.");
                ctx.Out.WriteLine("Add a device with: meshnet device join");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    // The default network when it has this name, else the first network of the caller with it.
    private static async Task<Network?> FindByNameAsync(CliContext ctx, MeshAI.Client.MeshClient client, string name)
    {
        var request = new ListNetworksRequest { PageSize = 100 };
        var matches = new List<Network>();
        do
        {
            var page = await client.Networks.ListNetworksAsync(request, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            matches.AddRange(page.Networks.Where(n => n.Name == name));
            request.PageToken = page.NextPageToken;
        }
        while (!string.IsNullOrEmpty(request.PageToken));

        var defaultId = (await ctx.ConfigAsync()).DefaultNetworkId;
        return matches.FirstOrDefault(n => n.NetworkId == defaultId) ?? matches.FirstOrDefault();
    }

    private static Command List(CliRuntime runtime)
    {
        var command = new Command("list", "Networks you belong to");
        command.Aliases.Add("ls");
        runtime.Bind(command, async ctx =>
        {
            using var client = await ctx.ConnectAsync();
            var networks = new List<Network>();
            var request = new ListNetworksRequest { PageSize = 100 };
            do
            {
                var page = await client.Networks.ListNetworksAsync(request, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
                networks.AddRange(page.Networks);
                request.PageToken = page.NextPageToken;
            }
            while (!string.IsNullOrEmpty(request.PageToken) && networks.Count < 10_000);

            var config = await ctx.ConfigAsync();
            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject
                {
                    ["defaultNetworkId"] = config.DefaultNetworkId ?? "",
                    ["networks"] = JsonOutput.Array(networks),
                });
                return ExitCodes.Ok;
            }

            if (networks.Count == 0)
            {
                ctx.Out.WriteLine("No networks yet. Create one with: meshnet net create NAME");
                return ExitCodes.Ok;
            }

            Table(networks, config.DefaultNetworkId).WriteTo(ctx.Out);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Use(CliRuntime runtime)
    {
        var id = new Argument<string>("ID") { Description = "Network id (net_…)" };
        var command = new Command("use", "Make a network the default for other commands") { id };
        runtime.Bind(command, async ctx =>
        {
            using var client = await ctx.ConnectAsync();
            var response = await client.Networks.GetNetworkAsync(
                new GetNetworkRequest { NetworkId = ctx.Get(id)!.Trim() }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            var config = await ctx.ConfigAsync();
            config.DefaultNetworkId = response.Network.NetworkId;
            await ctx.SaveConfigAsync(config);
            if (ctx.Json)
            {
                ctx.WriteJson(response.Network);
            }
            else
            {
                ctx.Out.WriteLine($"Default network is now {response.Network.Name} ({response.Network.NetworkId}).");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}

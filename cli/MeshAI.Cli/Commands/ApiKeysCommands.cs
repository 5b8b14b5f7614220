using System.CommandLine;
using System.Text.Json.Nodes;
using MeshAI.Cli.Output;
using MeshAI.Contracts.Identity.V1;

namespace MeshAI.Cli.Commands;

/// <summary>
/// `meshnet api-keys create|list|revoke`: API keys for SDKs, scrapers and OpenAI-compatible tools (Bearer tokens on the
/// gateway's /v1/*). A key belongs to one network and acts as its creator within its scopes; its secret is shown once.
/// </summary>
public static class ApiKeysCommands
{
    /// <summary>The `api-keys` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var keys = new Command("api-keys", "API keys for SDKs and OpenAI-compatible tools (the gateway's Bearer tokens)");
        keys.Add(Create(runtime));
        keys.Add(List(runtime));
        keys.Add(Revoke(runtime));
        return keys;
    }

    private static Command Create(CliRuntime runtime)
    {
        var name = new Argument<string>("NAME") { Description = "What the key is for (1 to 64 characters)" };
        var network = CliRuntime.NetworkOption();
        var scopes = new Option<string[]>("--scope") { Description = "jobs, devices:read, ledger:read or metrics:read; repeatable (default: jobs, devices:read, ledger:read)" };
        scopes.AcceptOnlyFromAmong("jobs", "devices:read", "ledger:read", "metrics:read");
        var command = new Command("create", "Create an API key; its secret is printed once") { name, network, scopes };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var request = new CreateApiKeyRequest { NetworkId = networkId, Name = ctx.Get(name)?.Trim() ?? "" };
            request.Scopes.Add(ctx.Get(scopes) ?? []);
            var response = await client.Identity.CreateApiKeyAsync(request, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                var node = JsonOutput.Node(response.ApiKey);
                node["secret"] = response.Secret;
                ctx.WriteJson(node);
                return ExitCodes.Ok;
            }

            ctx.Out.WriteLine($"Created API key {response.ApiKey.ApiKeyId} \"{response.ApiKey.Name}\" for {networkId} (scopes: {string.Join(", ", response.ApiKey.Scopes)}).");
            ctx.Out.WriteLine("Secret (shown once; store it now): " + response.Secret);
            ctx.Out.WriteLine($"OpenAI-compatible tools: base URL {client.ServerUrl.TrimEnd('/')}/v1, API key = the secret.");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command List(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var command = new Command("list", "API keys of the network (yours; admins see everyone's); never their secrets") { network };
        command.Aliases.Add("ls");
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var keys = (await client.Identity.ListApiKeysAsync(new ListApiKeysRequest { NetworkId = networkId }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken)).ApiKeys;
            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject { ["networkId"] = networkId, ["apiKeys"] = JsonOutput.Array(keys) });
                return ExitCodes.Ok;
            }

            var table = new TextTable("ID", "NAME", "PREFIX", "SCOPES", "OWNER", "CREATED", "STATE");
            foreach (var key in keys)
            {
                table.Add(key.ApiKeyId, key.Name, key.Prefix + "…", string.Join(",", key.Scopes), key.UserId, Display.Time(key.CreateTime), key.Revoked ? "revoked" : "active");
            }

            table.WriteTo(ctx.Out);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Revoke(CliRuntime runtime)
    {
        var id = new Argument<string>("API_KEY_ID") { Description = "The key's id (key_…), from `meshnet api-keys list`" };
        var command = new Command("revoke", "Revoke an API key; its next request is refused") { id };
        runtime.Bind(command, async ctx =>
        {
            using var client = await ctx.ConnectAsync();
            var keyId = ctx.Get(id)?.Trim() ?? "";
            await client.Identity.RevokeApiKeyAsync(new RevokeApiKeyRequest { ApiKeyId = keyId }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject { ["apiKeyId"] = keyId, ["revoked"] = true });
                return ExitCodes.Ok;
            }

            ctx.Out.WriteLine($"Revoked API key {keyId}.");
            return ExitCodes.Ok;
        });
        return command;
    }
}

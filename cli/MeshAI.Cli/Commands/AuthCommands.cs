using System.CommandLine;
using System.Text.Json.Nodes;
using MeshAI.Cli.Config;
using MeshAI.Cli.Output;
using MeshAI.Common.Local;
using MeshAI.Contracts.Identity.V1;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet auth login|whoami|logout|dashboard`.</summary>
public static class AuthCommands
{
    /// <summary>The `auth` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var auth = new Command("auth", "Sign in and out");
        auth.Add(Login(runtime));
        auth.Add(WhoAmI(runtime));
        auth.Add(Logout(runtime));
        auth.Add(Dashboard(runtime));
        return auth;
    }

    /// <summary>Normalises a fingerprint ("AB:CD:…" → "abcd…"); null when it is not 64 hex digits.</summary>
    public static string? NormalizeFingerprint(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return "";
        }

        var hex = text.Trim().Replace(":", "", StringComparison.Ordinal).ToLowerInvariant();
        return hex.Length == 64 && hex.All(char.IsAsciiHexDigit) ? hex : null;
    }

    /// <summary>Normalises a server URL (trailing slash removed); null when it is not an absolute http(s) URL.</summary>
    public static string? NormalizeServer(string? text) =>
        Uri.TryCreate(text?.Trim(), UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp)
            ? uri.GetLeftPart(UriPartial.Path).TrimEnd('/')
            : null;

    private static Command Login(CliRuntime runtime)
    {
        var server = new Option<string>("--server") { Description = "Server URL, e.g. https://127.0.0.1:7443 (default: the configured one, else the local server of $MESHAI_HOME)", HelpName = "URL" };
        server.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && NormalizeServer(result.Tokens[0].Value) is null)
            {
                result.AddError($"--server must be an absolute https:// (or http://) URL, got '{result.Tokens[0].Value}'.");
            }
        });
        var fingerprint = new Option<string>("--fingerprint") { Description = "SHA-256 fingerprint of a self-signed server's TLS certificate", HelpName = "FP" };
        fingerprint.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && NormalizeFingerprint(result.Tokens[0].Value) is null)
            {
                result.AddError("--fingerprint must be 64 hex digits (colons allowed), as printed in MESHAI_SERVER_READY.");
            }
        });
        var email = new Option<string>("--email") { Description = "Your email address; a sign-in link is sent there", Required = true, HelpName = "EMAIL" };
        var command = new Command("login", "Sign in with a magic link (device-code flow)") { server, fingerprint, email };
        runtime.Bind(command, ctx => LoginAsync(ctx, server, fingerprint, email));
        return command;
    }

    private static async Task<int> LoginAsync(CliContext ctx, Option<string> serverOption, Option<string> fingerprintOption, Option<string> emailOption)
    {
        var existing = await ctx.ConfigAsync();
        var explicitServer = ctx.Get(serverOption);
        // Without --server: the configured server, else the local one this MESHAI_HOME runs (server/endpoint.json).
        var local = string.IsNullOrEmpty(explicitServer) && string.IsNullOrEmpty(existing.ServerUrl) ? ctx.LocalServer() : null;
        var server = NormalizeServer(!string.IsNullOrEmpty(explicitServer) ? explicitServer : existing.ServerUrl ?? local?.Url)
            ?? throw new CliUsageException("No server given and no local server found. Run: meshnet auth login --server URL --email EMAIL [--fingerprint FP]");
        var sameServer = string.Equals(server, existing.ServerUrl, StringComparison.OrdinalIgnoreCase);
        var fingerprint = ctx.ParseResult.GetResult(fingerprintOption) is not null
            ? NormalizeFingerprint(ctx.Get(fingerprintOption)) ?? ""
            : sameServer ? existing.Fingerprint ?? ""
            : local is not null ? local.Fingerprint : "";
        if (local is not null)
        {
            ctx.Info($"Using the local server {server} (from {MeshHome.EndpointFileName} in $MESHAI_HOME/server).");
        }
        var email = ctx.Get(emailOption)!.Trim();

        using var client = ctx.Connect(new ServerTarget(server, fingerprint.Length == 0 ? null : fingerprint, null));
        var start = await client.Identity.StartDeviceLoginAsync(
            new StartDeviceLoginRequest { Email = email, ClientName = ctx.Environment.ClientName },
            deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
        ctx.Info($"Check {email} for a sign-in link (code {start.UserCode}) and open it to finish signing in…");

        var interval = TimeSpan.FromMilliseconds(start.PollIntervalMs > 0 ? start.PollIntervalMs : 2000);
        var expiry = start.ExpireTime?.ToDateTimeOffset();
        while (true)
        {
            await ctx.Environment.Delay(interval, ctx.CancellationToken);
            var poll = await client.Identity.PollDeviceLoginAsync(
                new PollDeviceLoginRequest { DeviceCode = start.DeviceCode }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            switch (poll.State)
            {
                case DeviceLoginState.Approved:
                    return await SaveLoginAsync(ctx, existing, server, fingerprint, sameServer, poll);
                case DeviceLoginState.Denied:
                    throw new CliException($"Sign-in for {email} was denied.");
                case DeviceLoginState.Expired:
                    throw new CliException($"The sign-in link for {email} expired before it was opened. Run the login again for a new one.");
            }

            // A server that never reports EXPIRED must not keep us polling forever.
            if (expiry is { } end && ctx.Environment.Time.GetUtcNow() > end + TimeSpan.FromSeconds(30))
            {
                throw new CliException($"The sign-in link for {email} expired before it was opened. Run the login again for a new one.");
            }
        }
    }

    private static async Task<int> SaveLoginAsync(CliContext ctx, CliConfig existing, string server, string fingerprint, bool sameServer, PollDeviceLoginResponse poll)
    {
        if (string.IsNullOrEmpty(poll.SessionToken))
        {
            throw new CliException("The server approved the sign-in but returned no session token.");
        }

        var config = new CliConfig
        {
            ServerUrl = server,
            Fingerprint = fingerprint,
            SessionToken = poll.SessionToken,
            DefaultNetworkId = sameServer ? existing.DefaultNetworkId : null,
            Email = poll.User?.Email,
            UserId = poll.User?.UserId,
        };
        await ctx.SaveConfigAsync(config);
        if (ctx.Json)
        {
            ctx.WriteJson(new JsonObject
            {
                ["server"] = server,
                ["fingerprint"] = fingerprint,
                ["configPath"] = ctx.Store.Path,
                ["user"] = poll.User is null ? null : JsonOutput.Node(poll.User),
            });
        }
        else
        {
            ctx.Out.WriteLine($"Logged in to {server} as {poll.User?.Email ?? "?"} ({poll.User?.UserId ?? "?"}).");
        }

        return ExitCodes.Ok;
    }

    private static Command WhoAmI(CliRuntime runtime)
    {
        var command = new Command("whoami", "Show the signed-in user");
        runtime.Bind(command, async ctx =>
        {
            var config = await ctx.RequireLoginAsync();
            using var client = await ctx.ConnectAsync();
            var response = await client.Identity.GetCurrentUserAsync(new GetCurrentUserRequest(), deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject
                {
                    ["server"] = config.ServerUrl,
                    ["fingerprint"] = config.Fingerprint ?? "",
                    ["defaultNetworkId"] = config.DefaultNetworkId ?? "",
                    ["user"] = response.User is null ? null : JsonOutput.Node(response.User),
                });
                return ExitCodes.Ok;
            }

            ctx.Out.WriteLine($"Logged in to {config.ServerUrl} as {response.User?.Email} ({response.User?.UserId}).");
            ctx.Out.WriteLine("Default network: " + (string.IsNullOrEmpty(config.DefaultNetworkId) ? "none (run: meshnet net use ID)" : config.DefaultNetworkId));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Logout(CliRuntime runtime)
    {
        var command = new Command("logout", "Forget the session token (the server and fingerprint are kept)");
        runtime.Bind(command, async ctx =>
        {
            var config = await ctx.ConfigAsync();
            var wasLoggedIn = config.IsLoggedIn;
            if (wasLoggedIn)
            {
                config.SessionToken = null;
                await ctx.SaveConfigAsync(config);
            }

            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject { ["loggedOut"] = wasLoggedIn, ["server"] = config.ServerUrl ?? "" });
            }
            else
            {
                ctx.Out.WriteLine(wasLoggedIn ? $"Logged out of {config.ServerUrl}." : "Not logged in.");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Dashboard(CliRuntime runtime)
    {
        var command = new Command("dashboard", "Print the web dashboard's URL and a one-time link that signs a browser in as you");
        runtime.Bind(command, async ctx =>
        {
            var config = await ctx.RequireLoginAsync();
            using var client = await ctx.ConnectAsync();
            var next = string.IsNullOrEmpty(config.DefaultNetworkId) ? "" : "/networks/" + config.DefaultNetworkId;
            var link = await client.Identity.CreateSignInLinkAsync(new CreateSignInLinkRequest { NextPath = next }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            var url = config.ServerUrl + "/";
            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject
                {
                    ["dashboardUrl"] = url,
                    ["signInLink"] = link.SignInLink,
                    ["expireTime"] = link.ExpireTime?.ToDateTimeOffset().ToString("O", System.Globalization.CultureInfo.InvariantCulture),
                });
                return ExitCodes.Ok;
            }

            ctx.Out.WriteLine("Dashboard: " + url);
            ctx.Out.WriteLine("One-time sign-in link (valid until " + link.ExpireTime?.ToDateTimeOffset().ToLocalTime().ToString("HH:mm", System.Globalization.CultureInfo.InvariantCulture) + "): " + link.SignInLink);
            if (!string.IsNullOrEmpty(config.Fingerprint))
            {
                ctx.Out.WriteLine("The certificate is self-signed: your browser will warn once; its SHA-256 fingerprint is " + config.Fingerprint + ".");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}

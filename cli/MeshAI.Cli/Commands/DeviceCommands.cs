using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using MeshAI.Cli.Output;
using MeshAI.Contracts.Device.V1;
using QRCoder;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet device join|approve|revoke` and `meshnet devices list`.</summary>
public static class DeviceCommands
{
    /// <summary>The `device` command group.</summary>
    public static Command BuildDevice(CliRuntime runtime)
    {
        var device = new Command("device", "Add, approve and revoke devices");
        device.Add(Join(runtime));
        device.Add(Approve(runtime));
        device.Add(Revoke(runtime));
        return device;
    }

    /// <summary>The `devices` command group.</summary>
    public static Command BuildDevices(CliRuntime runtime)
    {
        var devices = new Command("devices", "List devices");
        devices.Add(List(runtime));
        return devices;
    }

    /// <summary>The device table (the devices tab's device card fields).</summary>
    public static TextTable Table(IEnumerable<Device> devices)
    {
        var table = new TextTable("NAME", "ID", "PLATFORM", "STATUS", "TIER", "BATTERY", "THERMAL", "LATENCY>", "CONTRIBUTION");
        foreach (var device in devices)
        {
            table.Add(
                device.Name,
                device.DeviceId,
                Display.Name(device.Platform),
                Display.Name(device.OnlineStatus) + (device.AntiAbuseFlag.Length > 0 ? " (flagged)" : ""),
                Display.Name(device.CapabilityTier),
                Battery(device.BatteryStateIfMobile),
                Display.Name(device.ThermalStateIfAvailable),
                Display.Millis(device.LatencyEstimate),
                Display.Name(device.ContributionMode) + (device.ContributionEnabled ? " (on)" : " (off)"));
        }

        return table;
    }

    /// <summary>Every device of the network, page by page (at most 10,000).</summary>
    public static async Task<List<Device>> ListAllAsync(CliContext ctx, MeshAI.Client.MeshClient client, string networkId)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ArgumentNullException.ThrowIfNull(client);
        var devices = new List<Device>();
        var request = new ListDevicesRequest { NetworkId = networkId, PageSize = 200 };
        do
        {
            var page = await client.Devices.ListDevicesAsync(request, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            devices.AddRange(page.Devices);
            request.PageToken = page.NextPageToken;
        }
        while (!string.IsNullOrEmpty(request.PageToken) && devices.Count < 10_000);
        return devices;
    }

    /// <summary>"85% charging", "40%", or "-" without a battery.</summary>
    public static string Battery(BatteryState? battery) =>
        battery is null ? "-" : battery.Percent.ToString(CultureInfo.InvariantCulture) + "%" + (battery.Charging ? " charging" : "");

    /// <summary>The link as a terminal QR code (two rows per text line).</summary>
    public static string RenderQr(string text)
    {
        using var generator = new QRCodeGenerator();
        using var data = generator.CreateQrCode(text, QRCodeGenerator.ECCLevel.L);
        using var ascii = new AsciiQRCode(data);
        return ascii.GetGraphicSmall(drawQuietZones: true, invert: false, endOfLine: "\n");
    }

    /// <summary>The command to run on the new device, quoted for POSIX shells.</summary>
    public static string AgentCommand(string link) => "meshai-agent join '" + link.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static Command Join(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var ttl = new Option<int>("--ttl") { Description = "Seconds the link stays valid (default 3600, at most 604800)", HelpName = "SECONDS" };
        ttl.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<int>();
            if (value < 1 || value > 604_800)
            {
                result.AddError("--ttl must be between 1 and 604800 seconds (7 days).");
            }
        });
        var maxUses = new Option<int>("--max-uses") { Description = "How many devices may use the link (default 1)", HelpName = "N" };
        var web = new Option<bool>("--web")
        {
            Description = "Show the browser link instead (a phone scans the QR code and contributes from its browser, no install)",
        };
        var command = new Command("join", "Create a join link and QR code for a new device") { network, ttl, maxUses, web };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var response = await client.Devices.CreateJoinTokenAsync(
                new CreateJoinTokenRequest { NetworkId = networkId, TtlSeconds = ctx.Get(ttl), MaxUses = ctx.Get(maxUses) },
                deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            var agentCommand = AgentCommand(response.JoinLink);
            if (ctx.Json)
            {
                var node = JsonOutput.Node(response).AsObject();
                node["agentCommand"] = agentCommand;
                ctx.WriteJson(node);
                return ExitCodes.Ok;
            }

            var token = response.JoinToken;
            var uses = token is null || token.MaxUses <= 0 ? 1 : token.MaxUses;
            if (ctx.Get(web))
            {
                ctx.Out.WriteLine($"Browser join link for network {networkId} (expires {Display.Time(token?.ExpireTime)}, {uses} use{(uses == 1 ? "" : "s")}):");
                ctx.Out.WriteLine();
                ctx.Out.WriteLine("  " + response.WebJoinLink);
                ctx.Out.WriteLine();
                ctx.Out.Write(RenderQr(response.WebJoinLink));
                ctx.Out.WriteLine();
                ctx.Out.WriteLine("Scan it with the phone's camera: the page joins this network as a device and contributes while the");
                ctx.Out.WriteLine("phone is charging on Wi-Fi. The server must be reachable from the phone (--listen 0.0.0.0 --public-url).");
                return ExitCodes.Ok;
            }

            ctx.Out.WriteLine($"Join link for network {networkId} (expires {Display.Time(token?.ExpireTime)}, {uses} use{(uses == 1 ? "" : "s")}):");
            ctx.Out.WriteLine();
            ctx.Out.WriteLine("  " + response.JoinLink);
            ctx.Out.WriteLine();
            ctx.Out.Write(string.IsNullOrEmpty(response.JoinLink) ? response.QrText : RenderQr(response.JoinLink));
            ctx.Out.WriteLine();
            ctx.Out.WriteLine("On the device, run:");
            ctx.Out.WriteLine();
            ctx.Out.WriteLine("  " + agentCommand);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Approve(CliRuntime runtime)
    {
        var code = new Argument<string>("CODE") { Description = "The code the device shows, e.g. KXQF-7TRM" };
        var network = CliRuntime.NetworkOption();
        var command = new Command("approve", "Approve a device-code pairing into the network") { code, network };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            var userCode = ctx.Get(code)!.Trim().ToUpperInvariant();
            using var client = await ctx.ConnectAsync();
            await client.Devices.ApproveDevicePairingAsync(
                new ApproveDevicePairingRequest { UserCode = userCode, NetworkId = networkId },
                deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject { ["approved"] = true, ["userCode"] = userCode, ["networkId"] = networkId });
            }
            else
            {
                ctx.Out.WriteLine($"Approved device code {userCode} into network {networkId}; the device finishes joining on its own.");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Revoke(CliRuntime runtime)
    {
        var id = new Argument<string>("ID") { Description = "Device id (dev_…)" };
        var network = CliRuntime.NetworkOption();
        var reason = new Option<string>("--reason") { Description = "Why (kept in the audit log)" };
        var command = new Command("revoke", "Revoke a device: its certificate is denylisted and its stream cut") { id, network, reason };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var response = await client.Devices.RevokeDeviceAsync(
                new RevokeDeviceRequest { NetworkId = networkId, DeviceId = ctx.Get(id)!.Trim(), Reason = ctx.Get(reason) ?? "" },
                deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(response);
            }
            else
            {
                ctx.Out.WriteLine($"Revoked device {response.Device?.Name} ({response.Device?.DeviceId ?? ctx.Get(id)}).");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command List(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var command = new Command("list", "Devices of the network with live presence") { network };
        command.Aliases.Add("ls");
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var devices = await ListAllAsync(ctx, client, networkId);

            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject { ["networkId"] = networkId, ["devices"] = JsonOutput.Array(devices) });
                return ExitCodes.Ok;
            }

            if (devices.Count == 0)
            {
                ctx.Out.WriteLine($"No devices in {networkId} yet. Add one with: meshnet device join");
                return ExitCodes.Ok;
            }

            Table(devices).WriteTo(ctx.Out);
            return ExitCodes.Ok;
        });
        return command;
    }
}

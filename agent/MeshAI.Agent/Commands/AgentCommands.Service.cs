using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MeshAI.Agent.Service;
using MeshAI.Agent.State;

namespace MeshAI.Agent.Commands;

/// <summary>`meshai-agent service unit|install` and `meshai-agent status --json`.</summary>
public sealed partial class AgentCommands
{
    // `run` options a service passes on (values that are paths are made absolute: the unit does not run in this folder).
    private static readonly string[] RunPathOptions = ["model-dir", "chat-model-dir", "mobile-profile", "contribution-policy"];
    private static readonly string[] RunValueOptions = ["chat-openai-url", "chat-openai-model", "worker-memory-mb", "tesseract", "pocketsphinx", "default-model", "model-origin"];

    private async Task<int> ServiceAsync(CommandLine line, CancellationToken cancellationToken)
    {
        var action = line.Positional.ElementAtOrDefault(1);
        if (action is not ("unit" or "install"))
        {
            await _err.WriteLineAsync("error: service needs 'unit' (print the systemd unit) or 'install' (write it and enable it)");
            return ExitCodes.Usage;
        }

        if (line.Has("user") && line.Has("system"))
        {
            await _err.WriteLineAsync("error: choose one of --user and --system");
            return ExitCodes.Usage;
        }

        var store = new AgentStateStore(line.Get("state-dir") is { } dir ? Path.GetFullPath(dir) : null);
        var userService = line.Has("user") || (!line.Has("system") && !IsRoot());
        var options = new SystemdUnitOptions
        {
            Program = SystemdUnit.CurrentProgram(),
            StateDirectory = Path.GetFullPath(store.Directory),
            RunArguments = RunArgumentsForService(line),
            UserService = userService,
            RunAsUser = line.Get("run-as") ?? Environment.UserName,
        };
        var unit = SystemdUnit.Render(options);
        if (action == "unit")
        {
            await _out.WriteAsync(unit);
            return ExitCodes.Ok;
        }

        if (store.LoadEnrollment() is null)
        {
            await _err.WriteLineAsync($"error: this device has not joined a network (no state in {store.Directory}); run `meshai-agent join <link>` first, then install the service");
            return ExitCodes.Usage;
        }

        var unitDirectory = line.Get("unit-dir") ?? SystemdUnit.DefaultDirectory(userService);
        var path = Path.Combine(unitDirectory, SystemdUnit.Name);
        try
        {
            Directory.CreateDirectory(unitDirectory);
            await File.WriteAllTextAsync(path, unit, cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await _err.WriteLineAsync($"error: cannot write {path}: {ex.Message}" + (userService ? "" : " (a system service needs root: sudo meshai-agent service install, or --user)"));
            return ExitCodes.Error;
        }

        await _out.WriteLineAsync($"Wrote {path}");
        if (line.Has("no-start") || line.Get("unit-dir") is not null)
        {
            await _out.WriteLineAsync($"Start it with: systemctl {(userService ? "--user " : "")}daemon-reload && systemctl {(userService ? "--user " : "")}enable --now {SystemdUnit.Name}");
            return ExitCodes.Ok;
        }

        var scope = userService ? new[] { "--user" } : [];
        foreach (var args in new[] { scope.Append("daemon-reload"), scope.Concat(["enable", "--now", SystemdUnit.Name]) })
        {
            var (code, output) = await RunSystemctlAsync(args.ToList(), cancellationToken);
            if (code != 0)
            {
                await _err.WriteLineAsync($"error: systemctl {string.Join(' ', args)} failed ({output.Trim()}); the unit is written, start it once systemd runs: systemctl {string.Join(' ', scope.Concat(["enable", "--now", SystemdUnit.Name]))}");
                return ExitCodes.Error;
            }
        }

        await _out.WriteLineAsync($"Enabled and started {SystemdUnit.Name}; it starts again after a reboot. Status: systemctl {(userService ? "--user " : "")}status meshai-agent");
        if (userService)
        {
            await _out.WriteLineAsync($"To run it before you log in, allow lingering once: loginctl enable-linger {Environment.UserName}");
        }

        return ExitCodes.Ok;
    }

    private static List<string> RunArgumentsForService(CommandLine line)
    {
        var args = new List<string>();
        foreach (var name in RunPathOptions)
        {
            if (line.Get(name) is { Length: > 0 } value)
            {
                args.AddRange(["--" + name, Path.GetFullPath(value)]);
            }
        }

        foreach (var name in RunValueOptions)
        {
            if (line.Get(name) is { Length: > 0 } value)
            {
                args.AddRange(["--" + name, value]);
            }
        }

        if (line.Get("model-cache") is { Length: > 0 } caches)
        {
            args.AddRange(["--model-cache", string.Join(',', caches.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(Path.GetFullPath))]);
        }

        foreach (var flag in new[] { "no-sandbox", "no-model-sync" })
        {
            if (line.Has(flag))
            {
                args.Add("--" + flag);
            }
        }

        return args;
    }

    private static async Task<(int Code, string Output)> RunSystemctlAsync(IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo("systemctl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        try
        {
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            return (process.ExitCode, (await stderr) + (await stdout));
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (127, "systemctl not found: " + ex.Message);
        }
    }

    private static bool IsRoot() => !OperatingSystem.IsWindows() && Environment.UserName == "root";

    private int StatusJson(AgentStateStore store)
    {
        var enrollment = store.LoadEnrollment();
        var node = new JsonObject
        {
            ["stateDir"] = store.Directory,
            ["joined"] = enrollment is not null,
            ["deviceId"] = enrollment?.DeviceId,
            ["deviceName"] = enrollment?.DeviceName,
            ["networkId"] = enrollment?.NetworkId,
            ["server"] = enrollment?.ServerUrl,
        };
        _out.WriteLine(node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return ExitCodes.Ok;
    }
}

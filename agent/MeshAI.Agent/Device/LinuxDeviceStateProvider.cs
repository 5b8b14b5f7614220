using System.Diagnostics;
using System.Globalization;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using MeshAI.Contracts.Device.V1;

namespace MeshAI.Agent.Device;

/// <summary>
/// Linux device state from procfs/sysfs: /proc/meminfo, /proc/stat (idle delta), /sys/class/drm (GPU),
/// /dev/accel (NPU), /sys/class/power_supply (battery), /sys/class/thermal (temperature), /sys/class/net + /proc/net/route
/// (network type of the default route). Roots are injectable so tests can point it at a fake tree.
/// </summary>
public sealed class LinuxDeviceStateProvider : IDeviceStateProvider
{
    private readonly string _proc;
    private readonly string _sys;
    private readonly string _dev;
    private readonly Lazy<(bool Present, long VramMb)> _gpu;
    private (ulong Idle, ulong Total)? _lastCpu;

    /// <summary>Creates a provider over the given roots (defaults: the real /proc, /sys and /dev).</summary>
    public LinuxDeviceStateProvider(string procRoot = "/proc", string sysRoot = "/sys", string devRoot = "/dev")
    {
        _proc = procRoot;
        _sys = sysRoot;
        _dev = devRoot;
        _gpu = new Lazy<(bool, long)>(DetectGpu);
    }

    /// <inheritdoc />
    public CapabilityReport Capture()
    {
        var report = CaptureLive();
        report.CpuArch = RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant();
        report.RamMb = ReadRamMb();
        report.GpuPresent = _gpu.Value.Present;
        report.GpuVramMb = _gpu.Value.VramMb;
        report.NpuPresent = Directory.Exists(_dev) && Directory.EnumerateFileSystemEntries(_dev, "accel*").Any();
        report.Os = RuntimeInformation.OSDescription;
        report.LanAddresses.AddRange(LanAddresses());
        return report;
    }

    /// <inheritdoc />
    /// <remarks>
    /// Reads only /proc/stat (idle), /proc/net/route + /sys/class/net (network type), /sys/class/power_supply and
    /// /sys/class/thermal: no network-interface enumeration, /proc/meminfo or /dev scan (about a fifth of a full capture's
    /// CPU; the full one ran per job before, issue #11).
    /// </remarks>
    public CapabilityReport CaptureLive() => CaptureLive(LiveReads.All);

    /// <inheritdoc />
    /// <remarks>
    /// Reads only the sources of the fields named: with the desktop defaults (a thermal stop only) an offer reads the
    /// thermal zones and nothing else; the route table, /sys/class/net, /proc/stat and the power supplies were ~15 % of the
    /// agent's CPU per echo job (perf, 2026-12-03, issue #11).
    /// </remarks>
    public CapabilityReport CaptureLive(LiveReads reads)
    {
        var report = new CapabilityReport
        {
            CpuCores = Environment.ProcessorCount,
            Platform = OperatingSystem.IsLinux() ? Platform.Linux : OperatingSystem.IsMacOS() ? Platform.Macos : OperatingSystem.IsWindows() ? Platform.Windows : Platform.Unspecified,
            IsMobile = false,
        };
        if (reads.HasFlag(LiveReads.Network))
        {
            report.NetworkType = ReadNetworkType();
        }

        if (reads.HasFlag(LiveReads.Idle))
        {
            report.IdleScore = ReadIdleScore();
        }

        if (reads.HasFlag(LiveReads.Battery) && ReadBattery() is { } battery)
        {
            report.BatteryStateOptional = battery;
        }

        if (reads.HasFlag(LiveReads.Thermal) && ReadHottestZone() is { } mc)
        {
            report.ThermalMillicelsius = mc;
            report.ThermalStateOptional = ClassifyThermal(mc);
        }

        return report;
    }

    /// <summary>Thermal state from the hottest zone: &lt;60 °C nominal, &lt;75 fair, &lt;90 serious, else critical.</summary>
    public static ThermalState ClassifyThermal(int millicelsius) => millicelsius switch
    {
        < 60_000 => ThermalState.Nominal,
        < 75_000 => ThermalState.Fair,
        < 90_000 => ThermalState.Serious,
        _ => ThermalState.Critical,
    };

    private long ReadRamMb()
    {
        foreach (var line in ReadLines(Path.Combine(_proc, "meminfo")))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 2 && long.TryParse(parts[1], CultureInfo.InvariantCulture, out var kb))
                {
                    return kb / 1024;
                }
            }
        }

        return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024 * 1024);
    }

    private double ReadIdleScore()
    {
        var line = ReadLines(Path.Combine(_proc, "stat")).FirstOrDefault(l => l.StartsWith("cpu ", StringComparison.Ordinal));
        if (line is null)
        {
            return 0;
        }

        var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(f => ulong.TryParse(f, CultureInfo.InvariantCulture, out var v) ? v : 0).ToArray();
        if (fields.Length < 4)
        {
            return 0;
        }

        // idle + iowait count as idle; guest fields are already part of user/nice.
        var idle = fields[3] + (fields.Length > 4 ? fields[4] : 0);
        var total = fields.Take(Math.Min(fields.Length, 8)).Aggregate(0UL, (a, b) => a + b);
        var previous = _lastCpu;
        _lastCpu = (idle, total);
        if (previous is { } p && total > p.Total)
        {
            return Math.Clamp((double)(idle - Math.Min(idle, p.Idle)) / (total - p.Total), 0, 1);
        }

        return total == 0 ? 0 : Math.Clamp((double)idle / total, 0, 1);
    }

    private (bool Present, long VramMb) DetectGpu()
    {
        var present = false;
        long vram = 0;
        var drm = Path.Combine(_sys, "class", "drm");
        if (Directory.Exists(drm))
        {
            foreach (var card in Directory.EnumerateDirectories(drm, "card*").Where(d => !Path.GetFileName(d).Contains('-', StringComparison.Ordinal)))
            {
                var vendor = ReadText(Path.Combine(card, "device", "vendor"))?.Trim().ToLowerInvariant();
                // NVIDIA, AMD, Intel: real GPUs. Virtual display adapters (QEMU, VMware, virtio) do not count.
                if (vendor is "0x10de" or "0x1002" or "0x8086")
                {
                    present = true;
                    if (long.TryParse(ReadText(Path.Combine(card, "device", "mem_info_vram_total"))?.Trim(), CultureInfo.InvariantCulture, out var bytes))
                    {
                        vram = Math.Max(vram, bytes / (1024 * 1024));
                    }
                }
            }
        }

        var nvidiaVram = QueryNvidiaSmi();
        if (nvidiaVram is { } mb)
        {
            present = true;
            vram = Math.Max(vram, mb);
        }

        return (present, vram);
    }

    private static long? QueryNvidiaSmi()
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, "nvidia-smi")).FirstOrDefault(File.Exists);
        if (path is null)
        {
            return null;
        }

        try
        {
            using var process = Process.Start(new ProcessStartInfo(path, "--query-gpu=memory.total --format=csv,noheader,nounits")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            });
            if (process is null)
            {
                return null;
            }

            var output = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(5000) || process.ExitCode != 0)
            {
                return null;
            }

            return output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => long.TryParse(l.Trim(), CultureInfo.InvariantCulture, out var v) ? v : 0).DefaultIfEmpty(0).Max();
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception or IOException)
        {
            return null;
        }
    }

    private BatteryState? ReadBattery()
    {
        var root = Path.Combine(_sys, "class", "power_supply");
        if (!Directory.Exists(root))
        {
            return null;
        }

        BatteryState? battery = null;
        var mainsOnline = false;
        foreach (var supply in Directory.EnumerateDirectories(root))
        {
            var type = ReadText(Path.Combine(supply, "type"))?.Trim();
            if (type == "Battery" && int.TryParse(ReadText(Path.Combine(supply, "capacity"))?.Trim(), CultureInfo.InvariantCulture, out var capacity))
            {
                var status = ReadText(Path.Combine(supply, "status"))?.Trim();
                battery ??= new BatteryState { Percent = Math.Clamp(capacity, 0, 100), Charging = status is "Charging" or "Full" };
            }
            else if (type is "Mains" or "USB" && ReadText(Path.Combine(supply, "online"))?.Trim() == "1")
            {
                mainsOnline = true;
            }
        }

        if (battery is not null)
        {
            battery.PluggedIn = mainsOnline || battery.Charging;
        }

        return battery;
    }

    private int? ReadHottestZone()
    {
        var root = Path.Combine(_sys, "class", "thermal");
        if (!Directory.Exists(root))
        {
            return null;
        }

        int? hottest = null;
        foreach (var zone in Directory.EnumerateDirectories(root, "thermal_zone*"))
        {
            if (int.TryParse(ReadText(Path.Combine(zone, "temp"))?.Trim(), CultureInfo.InvariantCulture, out var mc) && mc > 0)
            {
                hottest = Math.Max(hottest ?? 0, mc);
            }
        }

        return hottest;
    }

    private NetworkType ReadNetworkType()
    {
        // The interface of the default route decides: wireless → Wi-Fi, anything else → Ethernet.
        var defaultInterface = ReadLines(Path.Combine(_proc, "net", "route")).Skip(1)
            .Select(l => l.Split('\t', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .FirstOrDefault(f => f.Length > 2 && f[1] == "00000000")?[0];
        var net = Path.Combine(_sys, "class", "net");
        if (defaultInterface is null)
        {
            if (!Directory.Exists(net))
            {
                return NetworkType.Unspecified;
            }

            var up = Directory.EnumerateDirectories(net).Where(d => Path.GetFileName(d) != "lo" && ReadText(Path.Combine(d, "operstate"))?.Trim() == "up").ToList();
            if (up.Count == 0)
            {
                return NetworkType.Unspecified;
            }

            return up.All(d => Directory.Exists(Path.Combine(d, "wireless"))) ? NetworkType.Wifi : NetworkType.Ethernet;
        }

        return Directory.Exists(Path.Combine(net, defaultInterface, "wireless")) ? NetworkType.Wifi : NetworkType.Ethernet;
    }

    private static IEnumerable<string> LanAddresses()
    {
        NetworkInterface[] interfaces;
        try
        {
            interfaces = NetworkInterface.GetAllNetworkInterfaces();
        }
        catch (NetworkInformationException)
        {
            yield break;
        }

        foreach (var nic in interfaces.Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback))
        {
            foreach (var address in nic.GetIPProperties().UnicastAddresses)
            {
                var ip = address.Address;
                if (ip.AddressFamily == AddressFamily.InterNetwork ||
                    (ip.AddressFamily == AddressFamily.InterNetworkV6 && !ip.IsIPv6LinkLocal))
                {
                    yield return $"{ip}/{address.PrefixLength}";
                }
            }
        }
    }

    private static string? ReadText(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string[] ReadLines(string path) =>
        ReadText(path)?.Split('\n', StringSplitOptions.RemoveEmptyEntries) ?? [];
}

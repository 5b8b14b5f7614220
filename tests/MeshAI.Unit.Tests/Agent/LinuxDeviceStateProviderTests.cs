using MeshAI.Agent.Contribution;
using MeshAI.Agent.Device;
using MeshAI.Contracts.Device.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

[TestFixture]
[Category("Unit")]
public sealed class LinuxDeviceStateProviderTests
{
    [Test]
    public void Capability_report_is_populated_on_this_machine()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("reads procfs/sysfs");
        }

        var provider = new LinuxDeviceStateProvider();
        var report = provider.Capture();
        var second = provider.Capture();

        Assert.That(report.CpuCores, Is.EqualTo(Environment.ProcessorCount));
        Assert.That(report.CpuArch, Is.Not.Empty);
        Assert.That(report.RamMb, Is.GreaterThan(0));
        Assert.That(report.Os, Is.Not.Empty);
        Assert.That(report.Platform, Is.EqualTo(Platform.Linux));
        Assert.That(report.IdleScore, Is.InRange(0.0, 1.0));
        Assert.That(second.IdleScore, Is.InRange(0.0, 1.0));
        Assert.That(report.NetworkType, Is.Not.EqualTo(NetworkType.Cellular));
    }

    [Test]
    public void Battery_thermal_gpu_npu_and_wifi_are_read_from_sysfs()
    {
        var root = Path.Combine(Path.GetTempPath(), "meshai-sysfs-" + Guid.NewGuid().ToString("N"));
        try
        {
            void Write(string relative, string content)
            {
                var path = Path.Combine(root, relative);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllText(path, content);
            }

            Write("proc/meminfo", "MemTotal:        8192000 kB\nMemFree: 1 kB\n");
            Write("proc/stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n");
            Write("proc/net/route", "Iface\tDestination\tGateway\nwlan0\t00000000\t0101A8C0\n");
            Write("sys/class/net/wlan0/operstate", "up\n");
            Directory.CreateDirectory(Path.Combine(root, "sys/class/net/wlan0/wireless"));
            Write("sys/class/power_supply/BAT0/type", "Battery\n");
            Write("sys/class/power_supply/BAT0/capacity", "42\n");
            Write("sys/class/power_supply/BAT0/status", "Discharging\n");
            Write("sys/class/power_supply/AC/type", "Mains\n");
            Write("sys/class/power_supply/AC/online", "0\n");
            Write("sys/class/thermal/thermal_zone0/temp", "45000\n");
            Write("sys/class/thermal/thermal_zone1/temp", "81000\n");
            Write("sys/class/drm/card0/device/vendor", "0x1002\n");
            Write("sys/class/drm/card0/device/mem_info_vram_total", (8L * 1024 * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture));
            Write("dev/accel0", "");

            var provider = new LinuxDeviceStateProvider(Path.Combine(root, "proc"), Path.Combine(root, "sys"), Path.Combine(root, "dev"));
            var report = provider.Capture();

            // A per-offer read of only what the rules need (issue #11): the named fields are read, the others left unset.
            var thermalOnly = provider.CaptureLive(LiveReads.Thermal);
            Assert.That(thermalOnly.ThermalMillicelsius, Is.EqualTo(81000));
            Assert.That(thermalOnly.ThermalStateOptional, Is.EqualTo(ThermalState.Serious));
            Assert.That(thermalOnly.BatteryStateOptional, Is.Null);
            Assert.That(thermalOnly.NetworkType, Is.EqualTo(NetworkType.Unspecified));
            Assert.That(thermalOnly.IdleScore, Is.EqualTo(0.0));
            var batteryAndNetwork = provider.CaptureLive(LiveReads.Battery | LiveReads.Network);
            Assert.That(batteryAndNetwork.BatteryStateOptional.Percent, Is.EqualTo(42));
            Assert.That(batteryAndNetwork.NetworkType, Is.EqualTo(NetworkType.Wifi));
            Assert.That(batteryAndNetwork.ThermalMillicelsius, Is.EqualTo(0));
            var all = provider.CaptureLive(LiveReads.All);
            Assert.That(all.IdleScore, Is.InRange(0.0, 1.0));
            Assert.That(all.NetworkType, Is.EqualTo(NetworkType.Wifi));
            Assert.That(all.BatteryStateOptional.Percent, Is.EqualTo(42));
            Assert.That(all.ThermalMillicelsius, Is.EqualTo(81000));

            // What an offer reads under a policy decides as the full report does: the desktop thermal stop still fires.
            Write("sys/class/thermal/thermal_zone1/temp", "95000\n");
            var desktop = ContributionPolicy.DesktopDefaults;
            var decision = desktop.Evaluate(provider.CaptureLive(desktop.LiveReads), new TimeOnly(12, 0));
            Assert.That(decision.Allowed, Is.False);
            Assert.That(decision.Reason, Does.Contain("95.0 °C"));
            Assert.That(desktop.Evaluate(provider.Capture(), new TimeOnly(12, 0)), Is.EqualTo(decision));
            var mobile = ContributionPolicy.MobileDefaults;
            Assert.That(mobile.Evaluate(provider.CaptureLive(mobile.LiveReads), new TimeOnly(12, 0)), Is.EqualTo(mobile.Evaluate(provider.Capture(), new TimeOnly(12, 0))));

            Assert.That(report.RamMb, Is.EqualTo(8000));
            Assert.That(report.IdleScore, Is.EqualTo(0.8).Within(1e-9));
            Assert.That(report.NetworkType, Is.EqualTo(NetworkType.Wifi));
            Assert.That(report.BatteryStateOptional, Is.Not.Null);
            Assert.That(report.BatteryStateOptional.Percent, Is.EqualTo(42));
            Assert.That(report.BatteryStateOptional.Charging, Is.False);
            Assert.That(report.BatteryStateOptional.PluggedIn, Is.False);
            Assert.That(report.ThermalMillicelsius, Is.EqualTo(81000));
            Assert.That(report.ThermalStateOptional, Is.EqualTo(ThermalState.Serious));
            Assert.That(report.GpuPresent, Is.True);
            Assert.That(report.GpuVramMb, Is.GreaterThanOrEqualTo(8192));
            Assert.That(report.NpuPresent, Is.True);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [TestCase(30_000, ThermalState.Nominal)]
    [TestCase(65_000, ThermalState.Fair)]
    [TestCase(80_000, ThermalState.Serious)]
    [TestCase(95_000, ThermalState.Critical)]
    public void Thermal_thresholds_map_to_states(int millicelsius, ThermalState expected) =>
        Assert.That(LinuxDeviceStateProvider.ClassifyThermal(millicelsius), Is.EqualTo(expected));
}

using MeshAI.Agent.Contribution;
using MeshAI.Agent.Device;
using MeshAI.Contracts.Device.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

[Category("Unit")]
public sealed class ContributionPolicyTests
{
    private static readonly TimeOnly Noon = new(12, 0);

    private static CapabilityReport Phone(int battery = 80, bool charging = true, bool wifi = true, double thermalC = 33, double idle = 0.9) =>
        MobileProfileProvider.ToReport(new MobileProfile { BatteryPercent = battery, Charging = charging, Wifi = wifi, ThermalC = thermalC, IdleScore = idle });

    [Test]
    public void Live_reads_are_the_fields_the_rules_in_force_read()
    {
        Assert.That(ContributionPolicy.DesktopDefaults.LiveReads, Is.EqualTo(LiveReads.Thermal));
        Assert.That(ContributionPolicy.MobileDefaults.LiveReads, Is.EqualTo(LiveReads.Battery | LiveReads.Network | LiveReads.Thermal));
        Assert.That(new ContributionPolicy { MinIdleScore = 0.5 }.LiveReads, Is.EqualTo(LiveReads.Idle));
        Assert.That(new ContributionPolicy { MinBatteryPercent = 20 }.LiveReads, Is.EqualTo(LiveReads.Battery));
        Assert.That(new ContributionPolicy { Mode = "manual", MaxThermalC = 90 }.LiveReads, Is.EqualTo(LiveReads.None));
        Assert.That(new ContributionPolicy { Mode = "scheduled", RequireWifi = true }.LiveReads, Is.EqualTo(LiveReads.None));
        Assert.That(new ContributionPolicy { Enabled = false, MaxThermalC = 90 }.LiveReads, Is.EqualTo(LiveReads.None));
    }

    [Test]
    public void Mobile_defaults_allow_a_charging_phone_on_wifi() =>
        Assert.That(ContributionPolicy.MobileDefaults.Evaluate(Phone(), Noon).Allowed, Is.True);

    [Test]
    public void Mobile_defaults_stop_when_not_charging()
    {
        var decision = ContributionPolicy.MobileDefaults.Evaluate(Phone(charging: false), Noon);
        Assert.That(decision.Allowed, Is.False);
        Assert.That(decision.Reason, Does.Contain("not charging"));
    }

    [Test]
    public void Mobile_defaults_stop_on_cellular_data()
    {
        var decision = ContributionPolicy.MobileDefaults.Evaluate(Phone(wifi: false), Noon);
        Assert.That(decision.Allowed, Is.False);
        Assert.That(decision.Reason, Does.Contain("Wi-Fi"));
    }

    [Test]
    public void Mobile_defaults_stop_below_the_battery_threshold()
    {
        Assert.That(ContributionPolicy.MobileDefaults.Evaluate(Phone(battery: 29), Noon).Reason, Does.Contain("battery 29%"));
        Assert.That(ContributionPolicy.MobileDefaults.Evaluate(Phone(battery: 30), Noon).Allowed, Is.True);
    }

    [Test]
    public void Mobile_defaults_stop_at_the_thermal_threshold()
    {
        Assert.That(ContributionPolicy.MobileDefaults.Evaluate(Phone(thermalC: 42), Noon).Reason, Does.Contain("temperature"));
        Assert.That(ContributionPolicy.MobileDefaults.Evaluate(Phone(thermalC: 41.9), Noon).Allowed, Is.True);
    }

    [Test]
    public void Manual_toggle_off_stops_everything_and_on_ignores_device_rules()
    {
        Assert.That(new ContributionPolicy { Mode = "manual", Enabled = false }.Evaluate(Phone(), Noon).Allowed, Is.False);
        Assert.That(new ContributionPolicy { Mode = "manual", Enabled = true, RequireCharging = true }.Evaluate(Phone(charging: false), Noon).Allowed, Is.True);
    }

    [Test]
    public void Scheduled_windows_may_wrap_midnight()
    {
        var policy = new ContributionPolicy { Mode = "scheduled", Windows = [new ContributionWindow("22:00", "06:00")] };
        Assert.That(policy.Evaluate(Phone(), new TimeOnly(23, 30)).Allowed, Is.True);
        Assert.That(policy.Evaluate(Phone(), new TimeOnly(5, 59)).Allowed, Is.True);
        Assert.That(policy.Evaluate(Phone(), Noon).Allowed, Is.False);
    }

    [Test]
    public void Desktop_idle_rule_gates_new_work_but_not_a_running_job()
    {
        var policy = ContributionPolicy.DesktopDefaults with { MinIdleScore = 0.5 };
        var busy = new CapabilityReport { IdleScore = 0.2 };
        Assert.That(policy.Evaluate(busy, Noon).Allowed, Is.False);
        Assert.That(policy.Evaluate(busy, Noon, midJob: true).Allowed, Is.True, "the running job itself makes the CPU busy");
        Assert.That(policy.Evaluate(new CapabilityReport { IdleScore = 0.8 }, Noon).Allowed, Is.True);
    }

    [Test]
    public void Mobile_profile_file_is_reread_on_every_capture()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, """{"battery_percent": 55, "charging": true, "wifi": true, "thermal_c": 30}""");
            var provider = new MobileProfileProvider(path);
            Assert.That(provider.Capture().BatteryStateOptional.Percent, Is.EqualTo(55));
            File.WriteAllText(path, """{"battery_percent": 20, "charging": false, "wifi": false, "thermal_c": 45}""");
            var report = provider.Capture();
            Assert.That(report.IsMobile, Is.True);
            Assert.That(report.BatteryStateOptional.Charging, Is.False);
            Assert.That(report.NetworkType, Is.EqualTo(NetworkType.Cellular));
            Assert.That(report.ThermalMillicelsius, Is.EqualTo(45_000));
            File.WriteAllText(path, "{ half-written");
            Assert.That(provider.Capture().BatteryStateOptional.Percent, Is.EqualTo(20), "a torn file keeps the last good state");
        }
        finally
        {
            File.Delete(path);
        }
    }
}

using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using MeshAI.Agent.Device;
using MeshAI.Contracts.Device.V1;

namespace MeshAI.Agent.Contribution;

/// <summary>Whether the device may take (or keep) work now, and why not.</summary>
public sealed record ContributionDecision(bool Allowed, string Reason)
{
    /// <summary>Contribution allowed.</summary>
    public static ContributionDecision Yes { get; } = new(true, "");
}

/// <summary>A daily local-time window, e.g. 22:00–06:00 (may wrap midnight).</summary>
public sealed record ContributionWindow(
    [property: JsonPropertyName("start")] string Start,
    [property: JsonPropertyName("end")] string End)
{
    /// <summary>True when <paramref name="time"/> is inside the window.</summary>
    public bool Contains(TimeOnly time)
    {
        var start = TimeOnly.Parse(Start, CultureInfo.InvariantCulture);
        var end = TimeOnly.Parse(End, CultureInfo.InvariantCulture);
        return start <= end ? time >= start && time < end : time >= start || time < end;
    }
}

/// <summary>
/// When this device contributes compute: <c>manual</c> (a toggle), <c>scheduled</c> (daily windows) or <c>policy</c>
/// (rules on the live device state). Mobile defaults: charging + Wi-Fi only, stop at 42 °C, stop below 30 % battery.
/// Desktop defaults: always on; <c>min_idle_score</c> makes it contribute only when idle. Rules are checked before
/// accepting an offer and every second while a job runs; a device that stops contributing mid-job hands it back.
/// </summary>
public sealed record ContributionPolicy
{
    /// <summary>manual | scheduled | policy.</summary>
    [JsonPropertyName("mode")]
    public string Mode { get; init; } = "policy";

    /// <summary>The manual toggle (manual mode), and a master switch in every mode.</summary>
    [JsonPropertyName("enabled")]
    public bool Enabled { get; init; } = true;

    /// <summary>Local-time windows for scheduled mode.</summary>
    [JsonPropertyName("windows")]
    public IReadOnlyList<ContributionWindow> Windows { get; init; } = [];

    /// <summary>Only while charging (devices with a battery).</summary>
    [JsonPropertyName("require_charging")]
    public bool RequireCharging { get; init; }

    /// <summary>Only on Wi-Fi or Ethernet (never on cellular data).</summary>
    [JsonPropertyName("require_wifi")]
    public bool RequireWifi { get; init; }

    /// <summary>Stop below this battery charge (percent); 0 = no rule.</summary>
    [JsonPropertyName("min_battery_percent")]
    public int MinBatteryPercent { get; init; }

    /// <summary>Stop at or above this temperature (°C); 0 = no rule.</summary>
    [JsonPropertyName("max_thermal_c")]
    public double MaxThermalC { get; init; }

    /// <summary>Take new work only when the CPU idle share is at least this (desktop "when idle"); 0 = no rule.</summary>
    [JsonPropertyName("min_idle_score")]
    public double MinIdleScore { get; init; }

    /// <summary>Most of the machine a job may use, percent (sizes the worker's threads); 100 = all.</summary>
    [JsonPropertyName("max_utilization_percent")]
    public int MaxUtilizationPercent { get; init; } = 100;

    /// <summary>Mobile defaults: charging + Wi-Fi only, stop at 42 °C, stop below 30 %.</summary>
    public static ContributionPolicy MobileDefaults { get; } = new() { RequireCharging = true, RequireWifi = true, MinBatteryPercent = 30, MaxThermalC = 42 };

    /// <summary>Desktop defaults: contribute; thermal stop at 90 °C.</summary>
    public static ContributionPolicy DesktopDefaults { get; } = new() { MaxThermalC = 90 };

    /// <summary>Reads a policy file, or the defaults for the device type when <paramref name="path"/> is null.</summary>
    public static ContributionPolicy Load(string? path, bool mobile)
    {
        var defaults = mobile ? MobileDefaults : DesktopDefaults;
        if (string.IsNullOrEmpty(path))
        {
            return defaults;
        }

        return JsonSerializer.Deserialize<ContributionPolicy>(File.ReadAllText(path)) ?? defaults;
    }

    /// <summary>
    /// The live device fields <see cref="Evaluate"/> reads under this policy: none when contribution is off or the mode is
    /// manual or scheduled, otherwise one per rule that is set (issue #11: an offer reads no device state its rules ignore).
    /// </summary>
    [JsonIgnore]
    public LiveReads LiveReads =>
        !Enabled || Mode is "manual" or "scheduled"
            ? LiveReads.None
            : (RequireCharging || MinBatteryPercent > 0 ? LiveReads.Battery : LiveReads.None)
              | (RequireWifi ? LiveReads.Network : LiveReads.None)
              | (MaxThermalC > 0 ? LiveReads.Thermal : LiveReads.None)
              | (MinIdleScore > 0 ? LiveReads.Idle : LiveReads.None);

    /// <summary>
    /// Decides for the device state <paramref name="report"/> at local time <paramref name="now"/>.
    /// <paramref name="midJob"/> skips the idle rule (the running job itself keeps the CPU busy).
    /// </summary>
    public ContributionDecision Evaluate(CapabilityReport report, TimeOnly now, bool midJob = false)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (!Enabled)
        {
            return new(false, "contribution is switched off");
        }

        switch (Mode)
        {
            case "manual":
                return ContributionDecision.Yes;
            case "scheduled":
                return Windows.Any(w => w.Contains(now))
                    ? ContributionDecision.Yes
                    : new(false, $"outside the contribution windows ({string.Join(", ", Windows.Select(w => w.Start + "-" + w.End))})");
            default:
                break;
        }

        var battery = report.BatteryStateOptional;
        if (RequireCharging && battery is not null && !battery.Charging && !battery.PluggedIn)
        {
            return new(false, "not charging");
        }

        if (RequireWifi && report.NetworkType == NetworkType.Cellular)
        {
            return new(false, "not on Wi-Fi (cellular data)");
        }

        if (MinBatteryPercent > 0 && battery is not null && battery.Percent < MinBatteryPercent)
        {
            return new(false, $"battery {battery.Percent}% is below {MinBatteryPercent}%");
        }

        if (MaxThermalC > 0 && report.ThermalMillicelsius >= MaxThermalC * 1000)
        {
            return new(false, string.Create(CultureInfo.InvariantCulture, $"temperature {report.ThermalMillicelsius / 1000.0:F1} °C is at or above {MaxThermalC:F1} °C"));
        }

        if (!midJob && MinIdleScore > 0 && report.IdleScore < MinIdleScore)
        {
            return new(false, string.Create(CultureInfo.InvariantCulture, $"device busy (idle {report.IdleScore:P0}, needs {MinIdleScore:P0})"));
        }

        return ContributionDecision.Yes;
    }
}

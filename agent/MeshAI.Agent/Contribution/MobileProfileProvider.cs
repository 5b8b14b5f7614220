using System.Text.Json;
using System.Text.Json.Serialization;
using MeshAI.Agent.Device;
using MeshAI.Contracts.Device.V1;

namespace MeshAI.Agent.Contribution;

/// <summary>The injectable state of a simulated phone (tier0/tier1), read from a JSON file on every capture.</summary>
public sealed record MobileProfile
{
    /// <summary>Battery charge 0..100.</summary>
    [JsonPropertyName("battery_percent")]
    public int BatteryPercent { get; init; } = 80;

    /// <summary>On a charger.</summary>
    [JsonPropertyName("charging")]
    public bool Charging { get; init; } = true;

    /// <summary>On Wi-Fi (false = cellular).</summary>
    [JsonPropertyName("wifi")]
    public bool Wifi { get; init; } = true;

    /// <summary>Device temperature in °C.</summary>
    [JsonPropertyName("thermal_c")]
    public double ThermalC { get; init; } = 32;

    /// <summary>0..1 share of CPU idle.</summary>
    [JsonPropertyName("idle_score")]
    public double IdleScore { get; init; } = 0.9;

    /// <summary>CPU cores reported.</summary>
    [JsonPropertyName("cpu_cores")]
    public int CpuCores { get; init; } = 8;

    /// <summary>RAM reported in MB.</summary>
    [JsonPropertyName("ram_mb")]
    public long RamMb { get; init; } = 6144;

    /// <summary>android or ios.</summary>
    [JsonPropertyName("platform")]
    public string Platform { get; init; } = "android";
}

/// <summary>
/// Device state of a phone simulated from a JSON profile file (<c>--mobile-profile FILE</c>). The file is re-read on
/// every capture, so a test or demo changes battery, charging, Wi-Fi and temperature while the agent runs.
/// </summary>
public sealed class MobileProfileProvider : IDeviceStateProvider
{
    private readonly string _path;
    private MobileProfile _last = new();

    /// <summary>Creates the provider over <paramref name="path"/>.</summary>
    public MobileProfileProvider(string path) => _path = path;

    /// <summary>The profile now (the last readable one when the file is mid-rewrite).</summary>
    public MobileProfile Read()
    {
        try
        {
            _last = JsonSerializer.Deserialize<MobileProfile>(File.ReadAllText(_path)) ?? _last;
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            // Keep the last good state: a half-written file must not flip the device's contribution.
        }

        return _last;
    }

    /// <inheritdoc />
    public CapabilityReport Capture() => ToReport(Read());

    /// <summary>The capability report a phone in this state sends.</summary>
    public static CapabilityReport ToReport(MobileProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        var millicelsius = (int)(profile.ThermalC * 1000);
        return new CapabilityReport
        {
            CpuCores = profile.CpuCores,
            CpuArch = "arm64",
            RamMb = profile.RamMb,
            Os = profile.Platform + " (mobile profile)",
            Platform = profile.Platform == "ios" ? Platform.Ios : Platform.Android,
            IsMobile = true,
            NetworkType = profile.Wifi ? NetworkType.Wifi : NetworkType.Cellular,
            IdleScore = profile.IdleScore,
            BatteryStateOptional = new BatteryState { Percent = profile.BatteryPercent, Charging = profile.Charging, PluggedIn = profile.Charging },
            ThermalMillicelsius = millicelsius,
            ThermalStateOptional = LinuxDeviceStateProvider.ClassifyThermal(millicelsius),
        };
    }
}

using System.ComponentModel.DataAnnotations;

namespace MeshAI.Control.Ledger;

/// <summary>Ledger rules and free-tier limits (configuration section "Control:Ledger"); every value is a named option with its default.</summary>
public sealed class LedgerOptions
{
    /// <summary>The agent heartbeat interval minting checks against (the relay's default HeartbeatIntervalMs).</summary>
    [Range(100, 600_000)]
    public int HeartbeatIntervalMs { get; set; } = 5_000;

    /// <summary>
    /// Heartbeats a run may miss and still count as unbroken: a run of R ms needs at least floor(R / interval) − tolerance
    /// heartbeats (one beat of slack absorbs the phase between the run's start and the heartbeat clock).
    /// </summary>
    [Range(0, 100)]
    public int HeartbeatToleranceBeats { get; set; } = 1;

    /// <summary>Share of the earn rate a mobile device mints while on battery or at high thermal, in basis points (5000 = half).</summary>
    [Range(0, 10_000)]
    public int MobileMintCapBps { get; set; } = 5_000;

    /// <summary>Thermal level (meshai.device.v1.ThermalState) at or above which a mobile device counts as hot: 3 = SERIOUS.</summary>
    [Range(1, 4)]
    public int HighThermalLevel { get; set; } = 3;

    /// <summary>Rate limit per device: settlements that may mint per rolling hour; later ones in the hour are billed but mint nothing.</summary>
    [Range(1, int.MaxValue)]
    public int MaxMintingSettlementsPerDevicePerHour { get; set; } = 3_600;

    /// <summary>How many recent runs of a workload on a tier the estimate takes the median of.</summary>
    [Range(1, 10_000)]
    public int EstimateHistoryRuns { get; set; } = 50;

    /// <summary>Runs of a workload on a tier needed before the observed median replaces the default table.</summary>
    [Range(1, 10_000)]
    public int EstimateMinRuns { get; set; } = 3;

    /// <summary>Events per export chunk.</summary>
    [Range(1, 100_000)]
    public int ExportBatchSize { get; set; } = 500;

    /// <summary>Free-tier limits (spec productization.pricing_options.v1.limits); 0 disables a limit.</summary>
    public FreeTierLimits FreeTier { get; set; } = new();
}

/// <summary>Free-tier limits; 0 disables a limit.</summary>
public sealed class FreeTierLimits
{
    /// <summary>Networks one user may create (networks_per_user).</summary>
    [Range(0, int.MaxValue)]
    public int NetworksPerUser { get; set; } = 25;

    /// <summary>Active (not revoked) devices in one network (max_devices_per_network).</summary>
    [Range(0, int.MaxValue)]
    public int MaxDevicesPerNetwork { get; set; } = 50;

    /// <summary>Relay bytes a network's jobs may move per calendar month, UTC (relay_bandwidth_per_month); 10 GiB.</summary>
    [Range(0, long.MaxValue)]
    public long RelayBytesPerMonth { get; set; } = 10L * 1024 * 1024 * 1024;
}

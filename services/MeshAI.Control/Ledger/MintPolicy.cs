using MeshAI.Contracts.Device.V1;

namespace MeshAI.Control.Ledger;

/// <summary>Whether a settlement may mint, and how much of the earn rate (spec credits_and_accounting.minting + anti_abuse_v1).</summary>
/// <param name="WithheldReason">Why nothing is minted; empty when minting is allowed.</param>
/// <param name="CapBps">Share of the earn rate paid, in basis points.</param>
public readonly record struct MintDecision(string WithheldReason, long CapBps);

/// <summary>The minting rules, pure: rooted signal, spot-check flags, per-device rate limit, unbroken heartbeat, mobile cap.</summary>
public static class MintPolicy
{
    /// <summary>Heartbeats a run of <paramref name="runtimeMs"/> must have had to count as unbroken.</summary>
    public static long RequiredHeartbeats(long runtimeMs, LedgerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Math.Max(0, (Math.Max(0, runtimeMs) / options.HeartbeatIntervalMs) - options.HeartbeatToleranceBeats);
    }

    /// <summary>
    /// Heartbeats control observed itself for a run it has no agent metering of (an interrupted chat stream segment whose
    /// device died): the number of whole heartbeat intervals since <paramref name="startMs"/> in which at least one of the
    /// run's frames arrived. A steady stream scores floor(runtime / interval), like an agent that heartbeats throughout; a
    /// stall over a whole interval misses that beat.
    /// </summary>
    public static int ObservedHeartbeats(long startMs, IReadOnlyList<long> frameTimesMs, long intervalMs)
    {
        ArgumentNullException.ThrowIfNull(frameTimesMs);
        if (intervalMs <= 0 || frameTimesMs.Count == 0)
        {
            return 0;
        }

        var last = frameTimesMs.Max();
        var whole = (last - startMs) / intervalMs;
        var seen = new HashSet<long>();
        foreach (var t in frameTimesMs)
        {
            var window = (t - startMs) / intervalMs;
            if (t >= startMs && window < whole)
            {
                seen.Add(window);
            }
        }

        return seen.Count;
    }

    /// <summary>Decides minting for one piece of validated work.</summary>
    public static MintDecision Decide(CapabilityReport capabilities, long runtimeMs, int heartbeatsDuringRun, bool deviceFlagged, int mintingSettlementsLastHour, LedgerOptions options)
    {
        ArgumentNullException.ThrowIfNull(capabilities);
        ArgumentNullException.ThrowIfNull(options);
        if (capabilities.RootedSignal)
        {
            return new MintDecision("device reports a rooted/jailbroken signal", 0);
        }

        if (deviceFlagged)
        {
            return new MintDecision("device flagged by an anti-abuse check (spot-check mismatch or failed canary)", 0);
        }

        if (mintingSettlementsLastHour >= options.MaxMintingSettlementsPerDevicePerHour)
        {
            return new MintDecision($"device rate limit: {options.MaxMintingSettlementsPerDevicePerHour} minting settlements per hour", 0);
        }

        var required = RequiredHeartbeats(runtimeMs, options);
        if (heartbeatsDuringRun < required)
        {
            return new MintDecision($"heartbeat broken during execution: {heartbeatsDuringRun} of {required} heartbeats", 0);
        }

        return new MintDecision("", IsConstrainedMobile(capabilities, options) ? options.MobileMintCapBps : 10_000);
    }

    /// <summary>A mobile device on battery (not plugged in) or at/above the high thermal level.</summary>
    public static bool IsConstrainedMobile(CapabilityReport capabilities, LedgerOptions options)
    {
        ArgumentNullException.ThrowIfNull(capabilities);
        ArgumentNullException.ThrowIfNull(options);
        if (!capabilities.IsMobile)
        {
            return false;
        }

        var onBattery = capabilities.BatteryStateOptional is { } battery && !battery.PluggedIn;
        var hot = (int)capabilities.ThermalStateOptional >= options.HighThermalLevel;
        return onBattery || hot;
    }
}

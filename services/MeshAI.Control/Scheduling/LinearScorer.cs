using MeshAI.Common.Domain;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Control.Scheduling;

/// <summary>The five spec features of one device, raw and normalised to [0,1].</summary>
public readonly record struct FeatureVector(
    double RttRaw, double Rtt,
    double PluggedInRaw, double PluggedIn,
    double ThermalRaw, double ThermalHeadroom,
    double IdleRaw, double Idle,
    double CreditRaw, double CreditEfficiency);

/// <summary>
/// Linear scoring (spec routing_and_scheduling.scoring): total = Σ weight × normalised feature. Every normalisation is a
/// fixed function of the device alone (never of the other candidates), so a device's score does not depend on who else
/// is online: deterministic, and monotonic in each feature in the direction of its weight.
/// </summary>
public static class LinearScorer
{
    /// <summary>Round-trip time at or above which rtt normalises to 1.</summary>
    public const double RttCeilingMs = 1000;

    /// <summary>Temperature (m°C) treated as no headroom left.</summary>
    public const double HotMilliCelsius = 95_000;

    /// <summary>Temperature (m°C) treated as full headroom.</summary>
    public const double CoolMilliCelsius = 40_000;

    /// <summary>Feature names in the order they are reported.</summary>
    public static readonly IReadOnlyList<string> FeatureNames = ["rtt_ms", "is_plugged_in", "thermal_headroom", "idle_score", "credit_rate_efficiency"];

    /// <summary>The spec's default weights.</summary>
    public static ScoringWeights DefaultWeights() => new() { RttMs = -0.30, IsPluggedIn = 0.20, ThermalHeadroom = 0.20, IdleScore = 0.15, CreditRateEfficiency = 0.15 };

    /// <summary>Burn rate per tier (index = (int)Tier) and the cheapest of them, from the network's credit settings.</summary>
    public static (long[] BurnByTier, long CheapestBurn) Rates(CreditSettings? credits)
    {
        var burn = new long[6];
        foreach (var rate in (IEnumerable<TierRate>?)credits?.TierRates ?? Tiers.DefaultRates)
        {
            if ((int)rate.Tier is > 0 and < 6)
            {
                burn[(int)rate.Tier] = rate.BurnMicroPerMin;
            }
        }

        for (var t = 1; t < 6; t++)
        {
            if (burn[t] <= 0)
            {
                burn[t] = Tiers.DefaultRates.FirstOrDefault(r => (int)r.Tier == t)?.BurnMicroPerMin ?? 1;
            }
        }

        return (burn, burn.Skip(1).Min());
    }

    /// <summary>The device's features.</summary>
    public static FeatureVector Features(CapabilityReport caps, int rttMs, Tier tier, long[] burnByTier, long cheapestBurn)
    {
        ArgumentNullException.ThrowIfNull(caps);
        ArgumentNullException.ThrowIfNull(burnByTier);
        var rtt = Math.Clamp(Math.Max(0, rttMs) / RttCeilingMs, 0, 1);
        var battery = caps.BatteryStateOptional;
        var plugged = battery is null || battery.Charging ? 1.0 : 0.0;
        double thermalRaw;
        double thermal;
        if (caps.ThermalStateOptional != ThermalState.Unspecified)
        {
            thermalRaw = (int)caps.ThermalStateOptional;
            thermal = caps.ThermalStateOptional switch
            {
                ThermalState.Nominal => 1.0,
                ThermalState.Fair => 2.0 / 3,
                ThermalState.Serious => 1.0 / 3,
                _ => 0.0,
            };
        }
        else if (caps.ThermalMillicelsius > 0)
        {
            thermalRaw = caps.ThermalMillicelsius;
            thermal = Math.Clamp((HotMilliCelsius - caps.ThermalMillicelsius) / (HotMilliCelsius - CoolMilliCelsius), 0, 1);
        }
        else
        {
            thermalRaw = 0;
            thermal = 1.0; // no sensor: assume nominal (documented)
        }

        var idle = double.IsFinite(caps.IdleScore) ? Math.Clamp(caps.IdleScore, 0, 1) : 0;
        var burn = (int)tier is > 0 and < 6 ? burnByTier[(int)tier] : cheapestBurn;
        var credit = burn <= 0 ? 1 : Math.Clamp(cheapestBurn / (double)burn, 0, 1);
        return new FeatureVector(Math.Max(0, rttMs), rtt, plugged, plugged, thermalRaw, thermal, caps.IdleScore, idle, burn / (double)Tiers.MicroPerCredit, credit);
    }

    /// <summary>Σ weight × normalised feature, always summed in the same order.</summary>
    public static double Total(in FeatureVector f, ScoringWeights w)
    {
        ArgumentNullException.ThrowIfNull(w);
        return (w.RttMs * f.Rtt) + (w.IsPluggedIn * f.PluggedIn) + (w.ThermalHeadroom * f.ThermalHeadroom) + (w.IdleScore * f.Idle) + (w.CreditRateEfficiency * f.CreditEfficiency);
    }

    /// <summary>The explainable form: every feature raw → normalised × weight = contribution.</summary>
    public static CandidateScore Explain(string deviceId, in FeatureVector f, ScoringWeights w, bool sameLan)
    {
        ArgumentNullException.ThrowIfNull(w);
        var score = new CandidateScore { DeviceId = deviceId, Total = Total(f, w), SameLan = sameLan };
        void Add(string name, double raw, double normalised, double weight) =>
            score.Features.Add(new FeatureScore { Name = name, RawValue = raw, NormalizedValue = normalised, Weight = weight, Contribution = weight * normalised });
        Add("rtt_ms", f.RttRaw, f.Rtt, w.RttMs);
        Add("is_plugged_in", f.PluggedInRaw, f.PluggedIn, w.IsPluggedIn);
        Add("thermal_headroom", f.ThermalRaw, f.ThermalHeadroom, w.ThermalHeadroom);
        Add("idle_score", f.IdleRaw, f.Idle, w.IdleScore);
        Add("credit_rate_efficiency", f.CreditRaw, f.CreditEfficiency, w.CreditRateEfficiency);
        return score;
    }
}

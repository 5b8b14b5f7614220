using System.Globalization;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Common.Domain;

/// <summary>Micro-credits as people read them, and the submitter's cost cap under its unit-correct name.</summary>
public static class Money
{
    /// <summary>"12.500000", "-0.066667": credits with six decimals (1 credit = 1 000 000 micro-credits).</summary>
    public static string Credits(long micro) =>
        ((decimal)micro / Tiers.MicroPerCredit).ToString("0.000000", CultureInfo.InvariantCulture);

    /// <summary>"0.100000 credits (100000 µ)": for messages that must name both the amount and the unit of the wire field.</summary>
    public static string CreditsWithMicro(long micro) =>
        $"{Credits(micro)} credits ({micro.ToString(CultureInfo.InvariantCulture)} micro-credits)";

    /// <summary>
    /// The envelope's cap in micro-credits: <c>max_cost_micro</c>, else the deprecated alias <c>max_cost_credits</c> that
    /// older clients fill (it always held micro-credits); 0 = no cap. Call <see cref="CapConflict"/> first to refuse both
    /// set to different values.
    /// </summary>
    public static long CapMicro(this JobEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        return envelope.MaxCostMicro != 0 ? envelope.MaxCostMicro : envelope.MaxCostCredits;
    }

    /// <summary>Why the envelope's cap fields cannot be used (negative, or both set and different), or null.</summary>
    public static (string Field, string Description)? CapConflict(JobEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        if (envelope.MaxCostMicro < 0)
        {
            return ("envelope.max_cost_micro", "must not be negative");
        }

        if (envelope.MaxCostCredits < 0)
        {
            return ("envelope.max_cost_credits", "must not be negative");
        }

        return envelope.MaxCostMicro != 0 && envelope.MaxCostCredits != 0 && envelope.MaxCostMicro != envelope.MaxCostCredits
            ? ("envelope.max_cost_credits", "set max_cost_micro only; max_cost_credits is its deprecated alias and, when both are set, must be equal")
            : null;
    }
}

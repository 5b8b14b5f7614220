using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Ledger;

namespace MeshAI.Control.Jobs;

/// <summary>Phase-0 runtime guesses per workload (no history yet), priced with the network's rates.</summary>
public static class JobCostEstimator
{
    /// <summary>Expected runtime of the input; a rough per-workload constant plus per-item work.</summary>
    public static long EstimateRuntimeMs(WorkloadClass workload, WorkloadInput? input) => workload switch
    {
        WorkloadClass.Embeddings => 500 + (20L * (input?.Embeddings?.Texts.Count ?? 16)),
        WorkloadClass.OcrPreprocess => 3_000,
        WorkloadClass.SmallChat => 10_000,
        WorkloadClass.AudioTranscribeChunked => 30_000,
        WorkloadClass.BatchJobsEvalOrSynth => 1_000L * Math.Max(1, input?.Batch?.Items.Count ?? 1),
        WorkloadClass.DiagnosticEcho => 100L + (input?.Echo?.DelayMs ?? 0),
        _ => 1_000,
    };

    /// <summary>Estimated burn in micro-credits at the given tier.</summary>
    public static (long RuntimeMs, long CostMicro) Estimate(WorkloadClass workload, WorkloadInput? input, Tier tier, CreditSettings credits)
    {
        var runtime = EstimateRuntimeMs(workload, input);
        return (runtime, CreditCalculator.Charge(runtime, tier, credits).BurnMicro);
    }
}

using MeshAI.Common.Observability;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Control.Observability;

/// <summary>Records a job that reached its end (called once per job, by the instance that ran it, from <see cref="Jobs.JobWatchHub"/>).</summary>
public static class JobOutcomes
{
    /// <summary>job_latency_ms for <paramref name="job"/> (outcome completed, failed or cancelled).</summary>
    public static void Record(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        MeshTelemetry.RecordJobEnded(job.NetworkId, Workload(job.WorkloadId), Outcome(job.State), job.LatencyMs);
    }

    /// <summary>The label value of a job state.</summary>
    public static string Outcome(JobState state) => state switch
    {
        JobState.Completed => "completed",
        JobState.Failed => "failed",
        JobState.Cancelled => "cancelled",
        _ => "other",
    };

    /// <summary>The spec's workload id (embeddings, small_chat, …) as a label value.</summary>
    public static string Workload(MeshAI.Contracts.Common.V1.WorkloadClass workload) => workload switch
    {
        MeshAI.Contracts.Common.V1.WorkloadClass.Embeddings => "embeddings",
        MeshAI.Contracts.Common.V1.WorkloadClass.OcrPreprocess => "ocr_preprocess",
        MeshAI.Contracts.Common.V1.WorkloadClass.SmallChat => "small_chat",
        MeshAI.Contracts.Common.V1.WorkloadClass.AudioTranscribeChunked => "audio_transcribe_chunked",
        MeshAI.Contracts.Common.V1.WorkloadClass.BatchJobsEvalOrSynth => "batch_jobs_eval_or_synth",
        MeshAI.Contracts.Common.V1.WorkloadClass.DiagnosticEcho => "diagnostic_echo",
        _ => "unspecified",
    };
}

using Google.Protobuf.WellKnownTypes;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Jobs;

/// <summary>Maps stored jobs to the wire shape.</summary>
public static class JobViews
{
    /// <summary>States after which nothing changes.</summary>
    public static readonly IReadOnlyCollection<int> TerminalStates = [(int)JobState.Completed, (int)JobState.Failed, (int)JobState.Cancelled];

    /// <summary>True for COMPLETED, FAILED and CANCELLED.</summary>
    public static bool IsTerminal(JobState state) => TerminalStates.Contains((int)state);

    /// <summary>The Job message with its attempts.</summary>
    public static Job ToProto(JobRow row, IEnumerable<JobAttemptRow> attempts)
    {
        var job = new Job
        {
            JobId = row.JobId,
            NetworkId = row.NetworkId,
            SubmittedByUserId = row.SubmittedByUserId,
            WorkloadId = (WorkloadClass)row.WorkloadId,
            State = (JobState)row.State,
            RoutingMode = (RoutingMode)row.RoutingMode,
            DataSensitivityTag = (DataSensitivityTag)row.DataSensitivityTag,
            DeviceId = row.DeviceId ?? "",
            Tier = (Tier)row.Tier,
            Attempts = { attempts.Select(ToProto) },
            CreateTime = Ts(row.CreateTimeMs),
            RuntimeMs = row.RuntimeMs,
            BilledRuntimeMs = row.BilledRuntimeMs,
            CostMicro = row.CostMicro,
            MaxCostCredits = row.MaxCostCredits,
            MaxCostMicro = row.MaxCostCredits,
            ErrorMessage = row.ErrorMessage,
            RelayBytes = row.RelayBytes,
            TraceId = row.TraceId,
            ChunkCount = row.ChunkCount,
            ChunksCompleted = row.ChunksCompleted,
        };
        if (row.StartTimeMs is { } start)
        {
            job.StartTime = Ts(start);
        }

        if (row.EndTimeMs is { } end)
        {
            job.EndTime = Ts(end);
            job.LatencyMs = end - row.CreateTimeMs;
        }

        return job;
    }

    /// <summary>The result frame of a completed job (null otherwise).</summary>
    public static JobResultFrame? Result(JobRow row, Job job) =>
        row.State != (int)JobState.Completed || row.Output is null
            ? null
            : new JobResultFrame
            {
                Output = Google.Protobuf.ByteString.CopyFrom(row.Output),
                Nonce = Google.Protobuf.ByteString.CopyFrom(row.OutputNonce ?? []),
                Encrypted = row.OutputEncrypted,
                Job = job,
            };

    /// <summary>Maps an attempt.</summary>
    public static JobAttempt ToProto(JobAttemptRow a)
    {
        var attempt = new JobAttempt
        {
            Attempt = a.Attempt,
            DeviceId = a.DeviceId,
            Cause = (AttemptCause)a.Cause,
            StartTime = Ts(a.StartTimeMs),
            Detail = a.Detail,
            ChunkId = a.ChunkId,
        };
        if (a.EndTimeMs is { } end)
        {
            attempt.EndTime = Ts(end);
        }

        return attempt;
    }

    private static Timestamp Ts(long ms) => Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(ms));
}

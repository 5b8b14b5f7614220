using MeshAI.Contracts.Job.V1;

namespace MeshAI.Client;

/// <summary>A job ended without a usable result (failed, cancelled, or the stream ended early).</summary>
public sealed class MeshJobException : Exception
{
    /// <summary>Creates the exception for <paramref name="job"/>.</summary>
    public MeshJobException(string message, Job? job)
        : base(message)
    {
        Job = job;
    }

    /// <summary>Creates the exception without a job.</summary>
    public MeshJobException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public MeshJobException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public MeshJobException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The job as last seen, when known.</summary>
    public Job? Job { get; }

    /// <summary>The job's final state, UNSPECIFIED when unknown.</summary>
    public JobState State => Job?.State ?? JobState.Unspecified;

    /// <summary>The exception for a job that reached FAILED or CANCELLED.</summary>
    public static MeshJobException ForTerminal(Job job)
    {
        var verb = job.State == JobState.Cancelled ? "was cancelled" : "failed";
        var where = string.IsNullOrEmpty(job.DeviceId) ? "" : " on " + job.DeviceId;
        var why = string.IsNullOrEmpty(job.ErrorMessage) ? "" : ": " + job.ErrorMessage;
        return new MeshJobException($"Job {job.JobId} {verb}{where}{why}", job);
    }
}

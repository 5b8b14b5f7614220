using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Workloads;

/// <summary>What a running handler may report while it works.</summary>
public interface IJobContext
{
    /// <summary>Reports progress (0..1).</summary>
    ValueTask ReportProgressAsync(double fraction, string message, CancellationToken cancellationToken);

    /// <summary>A structured log event for the job's debug view.</summary>
    ValueTask LogAsync(LogLevel level, string message, CancellationToken cancellationToken);

    /// <summary>Blobs that travelled beside the input (e.g. the OCR image), by name.</summary>
    IReadOnlyList<Blob> Blobs => [];

    /// <summary>Working directory the job may write scratch files to (the sandbox's restricted directory).</summary>
    string WorkDirectory => Path.GetTempPath();

    /// <summary>Streams one generated token to the submitter as soon as it exists (chat).</summary>
    ValueTask EmitTokenAsync(string text, int index, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>The blob named <paramref name="name"/> with inline bytes, or an invalid-input error.</summary>
    byte[] RequireBlob(string name)
    {
        var blob = Blobs.FirstOrDefault(b => string.Equals(b.Name, name, StringComparison.Ordinal))
            ?? throw new InvalidWorkloadInputException($"blob '{name}' is not in the input manifest");
        if (blob.SourceCase != Blob.SourceOneofCase.InlineData)
        {
            throw new InvalidWorkloadInputException($"blob '{name}' is not inline (references are not fetched by this agent yet)");
        }

        return blob.InlineData.ToByteArray();
    }
}

/// <summary>Runs one workload class: decoded WorkloadInput in, WorkloadOutput out.</summary>
public interface IWorkloadHandler
{
    /// <summary>The workload class this handler serves.</summary>
    WorkloadClass Workload { get; }

    /// <summary>The input case this handler reads.</summary>
    WorkloadInput.InputOneofCase InputCase { get; }

    /// <summary>Runs the workload; throws on failure (reported as a JobFailure).</summary>
    Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken);
}

/// <summary>Thrown for inputs no device could run (another attempt elsewhere would fail the same way).</summary>
public sealed class InvalidWorkloadInputException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InvalidWorkloadInputException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public InvalidWorkloadInputException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public InvalidWorkloadInputException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

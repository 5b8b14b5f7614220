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

    /// <summary>
    /// Local files of the stored blobs (<c>meshai-blob:</c> references) the agent fetched for this job, by blob name. Only
    /// the agent fills this (Jobs/JobBlobFetcher): a submitter's <c>ref_uri</c> never becomes a path.
    /// </summary>
    IReadOnlyDictionary<string, string> BlobPaths => new Dictionary<string, string>();

    /// <summary>The blob named <paramref name="name"/> with inline bytes (or its fetched file read whole), or an invalid-input error.</summary>
    byte[] RequireBlob(string name)
    {
        var blob = FindBlob(name);
        if (BlobPaths.TryGetValue(name, out var path))
        {
            return File.ReadAllBytes(path);
        }

        if (blob.SourceCase != Blob.SourceOneofCase.InlineData)
        {
            throw new InvalidWorkloadInputException($"blob '{name}' is neither inline nor a stored blob this device fetched (ref_uri {blob.RefUri})");
        }

        return blob.InlineData.ToByteArray();
    }

    /// <summary>Opens the blob named <paramref name="name"/> for reading: its fetched file (streamed, never whole in memory) or its inline bytes.</summary>
    Stream OpenBlob(string name)
    {
        var blob = FindBlob(name);
        if (BlobPaths.TryGetValue(name, out var path))
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
        }

        if (blob.SourceCase != Blob.SourceOneofCase.InlineData)
        {
            throw new InvalidWorkloadInputException($"blob '{name}' is neither inline nor a stored blob this device fetched (ref_uri {blob.RefUri})");
        }

        return new MemoryStream(blob.InlineData.ToByteArray(), writable: false);
    }

    private Blob FindBlob(string name) => Blobs.FirstOrDefault(b => string.Equals(b.Name, name, StringComparison.Ordinal))
        ?? throw new InvalidWorkloadInputException($"blob '{name}' is not in the input manifest");
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

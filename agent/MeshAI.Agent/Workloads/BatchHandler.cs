using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Workloads;

/// <summary>
/// batch_jobs_eval_or_synth: applies one deterministic text operation to every item, in order. Operations: "upper",
/// "lower", "reverse", "sha256", "length", "echo"; an optional ":delay=MS" suffix ("upper:delay=500") waits that long per
/// item (bounded), so chunked jobs can be observed and interrupted mid-way.
/// </summary>
public sealed class BatchHandler : IWorkloadHandler
{
    /// <summary>Longest per-item delay honoured.</summary>
    public const int MaxItemDelayMs = 60_000;

    /// <summary>Operations this handler knows.</summary>
    public static readonly IReadOnlyList<string> Operations = ["upper", "lower", "reverse", "sha256", "length", "echo"];

    /// <inheritdoc />
    public WorkloadClass Workload => WorkloadClass.BatchJobsEvalOrSynth;

    /// <inheritdoc />
    public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Batch;

    /// <inheritdoc />
    public async Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(context);
        var batch = input.Batch ?? throw new InvalidWorkloadInputException("batch input missing");
        var (operation, delayMs) = Parse(batch.Operation);
        var output = new BatchOutput();
        for (var i = 0; i < batch.Items.Count; i++)
        {
            if (delayMs > 0)
            {
                await Task.Delay(delayMs, cancellationToken);
            }

            output.Results.Add(Apply(operation, batch.Items[i]));
            await context.ReportProgressAsync((i + 1) / (double)batch.Items.Count, $"{i + 1}/{batch.Items.Count} items", cancellationToken);
        }

        return new WorkloadOutput { Batch = output };
    }

    /// <summary>The operation name and per-item delay of an operation string.</summary>
    public static (string Operation, int DelayMs) Parse(string operation)
    {
        var parts = (operation ?? "").Split(':', 2, StringSplitOptions.TrimEntries);
        var name = parts[0].Length == 0 ? "echo" : parts[0].ToLowerInvariant();
        if (!Operations.Contains(name))
        {
            throw new InvalidWorkloadInputException($"unknown batch operation '{parts[0]}'; known: {string.Join(", ", Operations)}");
        }

        var delay = 0;
        if (parts.Length == 2)
        {
            if (!parts[1].StartsWith("delay=", StringComparison.Ordinal) ||
                !int.TryParse(parts[1]["delay=".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out delay))
            {
                throw new InvalidWorkloadInputException("batch operation options are ':delay=MS'");
            }
        }

        return (name, Math.Min(delay, MaxItemDelayMs));
    }

    /// <summary>One item through one operation.</summary>
    public static string Apply(string operation, string item) => operation switch
    {
        "upper" => item.ToUpperInvariant(),
        "lower" => item.ToLowerInvariant(),
        "reverse" => new string(item.EnumerateRunes().Reverse().SelectMany(r => r.ToString()).ToArray()),
        "sha256" => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(item))),
        "length" => item.Length.ToString(CultureInfo.InvariantCulture),
        _ => item,
    };
}

using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Control.Ledger;

/// <summary>How a spot-check ended.</summary>
public enum SpotCheckVerdict
{
    /// <summary>The outputs agree: the original device's held mint is released.</summary>
    Match,

    /// <summary>The outputs disagree: the original device is flagged and its mint withheld.</summary>
    Mismatch,

    /// <summary>Nothing could be concluded (no second device, the re-run failed, the workload is not compared): the mint is released.</summary>
    Inconclusive,
}

/// <summary>The outcome of comparing two outputs, with a human-readable reason.</summary>
public readonly record struct SpotCheckComparison(SpotCheckVerdict Verdict, string Detail);

/// <summary>
/// Anti-abuse v1 spot-checks (pure parts): which jobs are sampled, and whether two devices' outputs of the same plaintext
/// job agree. The runner (Jobs/JobRunner.SpotCheck.cs) re-runs the job on a second device and acts on the verdict.
/// </summary>
public static class SpotCheck
{
    /// <summary>Minimum cosine similarity per embedding vector for two embeddings outputs to match.</summary>
    public const double MinEmbeddingCosine = 0.99;

    /// <summary>mint_withheld_reason of a settlement whose mint is held until its spot-check finishes.</summary>
    public const string PendingReason = "spot-check pending: mint held until the re-run on a second device is compared";

    /// <summary>Prefix of the mint_withheld_reason a mismatch leaves on the original settlement.</summary>
    public const string MismatchReasonPrefix = "spot-check mismatch: ";

    /// <summary>Prefix of the detail of a spot-check attempt in job_attempts.</summary>
    public const string AttemptDetailPrefix = "spot-check";

    /// <summary>Workloads whose outputs are compared (chat and transcription are free-form and are not spot-checked).</summary>
    public static bool IsCompared(WorkloadClass workload) => workload is
        WorkloadClass.Embeddings or WorkloadClass.OcrPreprocess or WorkloadClass.DiagnosticEcho or WorkloadClass.BatchJobsEvalOrSynth;

    /// <summary>
    /// Deterministic sampling: the first 8 bytes of SHA-256(job id), big-endian, modulo 10 000, below
    /// <paramref name="sampleBps"/>. 0 (or less) samples nothing, 10 000 (or more) samples everything.
    /// </summary>
    public static bool IsSampled(string jobId, int sampleBps)
    {
        ArgumentNullException.ThrowIfNull(jobId);
        if (sampleBps <= 0)
        {
            return false;
        }

        if (sampleBps >= 10_000)
        {
            return true;
        }

        return Bucket(jobId) < (ulong)sampleBps;
    }

    /// <summary>The job's sampling bucket in [0, 10 000).</summary>
    public static ulong Bucket(string jobId)
    {
        ArgumentNullException.ThrowIfNull(jobId);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(jobId), hash);
        return BinaryPrimitives.ReadUInt64BigEndian(hash) % 10_000;
    }

    /// <summary>Whether a settled job is spot-checked: plaintext, unchunked, a compared workload, and sampled.</summary>
    public static bool ShouldCheck(string jobId, WorkloadClass workload, bool encrypted, bool chunked, int sampleBps) =>
        !encrypted && !chunked && IsCompared(workload) && IsSampled(jobId, sampleBps);

    /// <summary>Compares serialized <see cref="WorkloadOutput"/>s of the original run and the spot-check re-run.</summary>
    public static SpotCheckComparison Compare(ReadOnlySpan<byte> original, ReadOnlySpan<byte> check)
    {
        WorkloadOutput a;
        try
        {
            a = WorkloadOutput.Parser.ParseFrom(original);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            return new(SpotCheckVerdict.Mismatch, "the original output is not a valid WorkloadOutput");
        }

        WorkloadOutput b;
        try
        {
            b = WorkloadOutput.Parser.ParseFrom(check);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            return new(SpotCheckVerdict.Inconclusive, "the spot-check output is not a valid WorkloadOutput");
        }

        return Compare(a, b);
    }

    /// <summary>
    /// Per workload: embeddings — same number of vectors, same dimension, cosine ≥ 0.99 for every pair; OCR — exact text;
    /// echo — exact bytes; batch — exact result strings; chat and transcription — not compared (inconclusive).
    /// </summary>
    public static SpotCheckComparison Compare(WorkloadOutput original, WorkloadOutput check)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(check);
        if (original.OutputCase != check.OutputCase)
        {
            return new(SpotCheckVerdict.Mismatch, $"output kinds differ: {original.OutputCase} vs {check.OutputCase}");
        }

        return original.OutputCase switch
        {
            WorkloadOutput.OutputOneofCase.Echo => original.Echo.Data.Span.SequenceEqual(check.Echo.Data.Span)
                ? new(SpotCheckVerdict.Match, "echo bytes equal")
                : new(SpotCheckVerdict.Mismatch, $"echo bytes differ ({original.Echo.Data.Length} vs {check.Echo.Data.Length} bytes)"),
            WorkloadOutput.OutputOneofCase.Ocr => string.Equals(original.Ocr.Text, check.Ocr.Text, StringComparison.Ordinal)
                ? new(SpotCheckVerdict.Match, "OCR text equal")
                : new(SpotCheckVerdict.Mismatch, "OCR text differs"),
            WorkloadOutput.OutputOneofCase.Batch => original.Batch.Results.SequenceEqual(check.Batch.Results, StringComparer.Ordinal)
                ? new(SpotCheckVerdict.Match, "batch results equal")
                : new(SpotCheckVerdict.Mismatch, "batch results differ"),
            WorkloadOutput.OutputOneofCase.Embeddings => CompareEmbeddings(original.Embeddings, check.Embeddings),
            WorkloadOutput.OutputOneofCase.Chat or WorkloadOutput.OutputOneofCase.Transcribe =>
                new(SpotCheckVerdict.Inconclusive, $"{original.OutputCase} outputs are not compared"),
            _ => new(SpotCheckVerdict.Inconclusive, "empty outputs are not compared"),
        };
    }

    private static SpotCheckComparison CompareEmbeddings(EmbeddingsOutput a, EmbeddingsOutput b)
    {
        if (a.Embeddings.Count != b.Embeddings.Count)
        {
            return new(SpotCheckVerdict.Mismatch, $"embedding counts differ: {a.Embeddings.Count} vs {b.Embeddings.Count}");
        }

        for (var i = 0; i < a.Embeddings.Count; i++)
        {
            var x = a.Embeddings[i].Values;
            var y = b.Embeddings[i].Values;
            if (x.Count != y.Count)
            {
                return new(SpotCheckVerdict.Mismatch, $"embedding {i}: dimensions differ ({x.Count} vs {y.Count})");
            }

            var cosine = Cosine(x, y);
            if (!(cosine >= MinEmbeddingCosine))
            {
                return new(SpotCheckVerdict.Mismatch, FormattableString.Invariant($"embedding {i}: cosine {cosine:F4} < {MinEmbeddingCosine}"));
            }
        }

        return new(SpotCheckVerdict.Match, FormattableString.Invariant($"{a.Embeddings.Count} embeddings with cosine ≥ {MinEmbeddingCosine}"));
    }

    /// <summary>Cosine similarity; two all-zero vectors count as identical (1), one all-zero vector as unrelated (0); NaN for non-finite input.</summary>
    public static double Cosine(IReadOnlyList<float> x, IReadOnlyList<float> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        double dot = 0, nx = 0, ny = 0;
        for (var i = 0; i < x.Count; i++)
        {
            dot += (double)x[i] * y[i];
            nx += (double)x[i] * x[i];
            ny += (double)y[i] * y[i];
        }

        if (nx == 0 && ny == 0)
        {
            return 1;
        }

        if (nx == 0 || ny == 0)
        {
            return 0;
        }

        return dot / (Math.Sqrt(nx) * Math.Sqrt(ny));
    }
}

using System.Globalization;
using System.Text;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Control.Ledger;

/// <summary>How a canary job ended.</summary>
public enum CanaryVerdict
{
    /// <summary>The device returned the known answer: the held mint is released, nothing else changes.</summary>
    Passed,

    /// <summary>The device returned something else: it is flagged and the held mint is withheld.</summary>
    Failed,

    /// <summary>No answer to judge (declined, timed out, disconnected, failed to run): the held mint is released.</summary>
    Inconclusive,
}

/// <summary>The outcome of comparing a canary's output with its known answer, with a human-readable reason.</summary>
public readonly record struct CanaryComparison(CanaryVerdict Verdict, string Detail);

/// <summary>
/// Anti-abuse canary jobs (pure parts, docs/anti-abuse.md): which settlements are followed by a canary, and whether a
/// device's answer equals the known one. The flow is <c>Jobs/Execution/CanaryStrategy.cs</c>.
/// </summary>
public static class Canary
{
    /// <summary>Default canary rate of a new network: 1 % of settled jobs (the spec names none; conservative).</summary>
    public const int DefaultRateBps = 100;

    /// <summary>Highest settable rate: every settled job (10 000 bps).</summary>
    public const int MaxRateBps = 10_000;

    /// <summary>Minimum cosine similarity between a returned embedding and the known one (same bound as spot-checks).</summary>
    public const double MinEmbeddingCosine = SpotCheck.MinEmbeddingCosine;

    /// <summary>mint_withheld_reason of a settlement whose mint is held until the canary that follows it is judged.</summary>
    public const string PendingReason = "canary pending: mint held until the device answers a known-answer job";

    /// <summary>Prefix of the mint_withheld_reason a failed canary leaves on the held settlement.</summary>
    public const string FailedReasonPrefix = "canary failed: ";

    /// <summary>
    /// Deterministic sampling, independent of the spot-check's: SHA-256("canary:" + job id) bucket below
    /// <paramref name="rateBps"/> (0 or less: never, 10 000 or more: always).
    /// </summary>
    public static bool IsSampled(string jobId, int rateBps)
    {
        ArgumentNullException.ThrowIfNull(jobId);
        return SpotCheck.IsSampled("canary:" + jobId, rateBps);
    }

    /// <summary>Compares an embeddings output with the known vectors: same count and dimension, cosine ≥ <see cref="MinEmbeddingCosine"/> each.</summary>
    public static CanaryComparison CompareEmbeddings(IReadOnlyList<float[]> expected, WorkloadOutput output)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(output);
        if (output.OutputCase != WorkloadOutput.OutputOneofCase.Embeddings)
        {
            return new(CanaryVerdict.Failed, $"expected embeddings, got {output.OutputCase}");
        }

        var got = output.Embeddings.Embeddings;
        if (got.Count != expected.Count)
        {
            return new(CanaryVerdict.Failed, $"expected {expected.Count} embeddings, got {got.Count}");
        }

        var worst = 1.0;
        for (var i = 0; i < expected.Count; i++)
        {
            if (got[i].Values.Count != expected[i].Length)
            {
                return new(CanaryVerdict.Failed, $"embedding {i}: dimension {got[i].Values.Count}, expected {expected[i].Length}");
            }

            var cosine = SpotCheck.Cosine(expected[i], got[i].Values);
            if (!(cosine >= MinEmbeddingCosine))
            {
                return new(CanaryVerdict.Failed, FormattableString.Invariant($"embedding {i}: cosine {cosine:F4} with the known answer < {MinEmbeddingCosine}"));
            }

            worst = Math.Min(worst, cosine);
        }

        return new(CanaryVerdict.Passed, FormattableString.Invariant($"{expected.Count} embedding(s) match the known answer (lowest cosine {worst:F4})"));
    }

    /// <summary>
    /// Compares an OCR output with the known sentence after <see cref="NormalizeText"/> (case, punctuation and whitespace
    /// ignored): equal, or a character error rate of at most <paramref name="maxCharacterErrorRate"/>.
    /// </summary>
    public static CanaryComparison CompareText(string expected, WorkloadOutput output, double maxCharacterErrorRate)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(output);
        if (output.OutputCase != WorkloadOutput.OutputOneofCase.Ocr)
        {
            return new(CanaryVerdict.Failed, $"expected OCR text, got {output.OutputCase}");
        }

        var want = NormalizeText(expected);
        var got = NormalizeText(output.Ocr.Text);
        var rate = want.Length == 0 ? (got.Length == 0 ? 0 : 1) : (double)EditDistance(want, got) / want.Length;
        return rate <= maxCharacterErrorRate
            ? new(CanaryVerdict.Passed, FormattableString.Invariant($"OCR text matches the known sentence (character error rate {rate:P1})"))
            : new(CanaryVerdict.Failed, FormattableString.Invariant($"OCR text differs from the known sentence (character error rate {rate:P1} > {maxCharacterErrorRate:P1})"));
    }

    /// <summary>Lower-case letters and digits with single spaces between words (punctuation dropped, whitespace collapsed).</summary>
    public static string NormalizeText(string text)
    {
        var sb = new StringBuilder(text?.Length ?? 0);
        var space = false;
        foreach (var ch in (text ?? "").Normalize(NormalizationForm.FormKC))
        {
            if (char.IsLetterOrDigit(ch))
            {
                if (space && sb.Length > 0)
                {
                    sb.Append(' ');
                }

                sb.Append(char.ToLower(ch, CultureInfo.InvariantCulture));
                space = false;
            }
            else if (char.IsWhiteSpace(ch))
            {
                space = true;
            }
        }

        return sb.ToString();
    }

    private static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}

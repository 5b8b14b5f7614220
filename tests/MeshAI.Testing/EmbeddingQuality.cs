using System.Globalization;

namespace MeshAI.Testing;

/// <summary>A rated sentence pair of <c>tests/data/similarity-pairs.tsv</c>.</summary>
public sealed record RatedPair(double Rating, string A, string B);

/// <summary>A query of <c>tests/data/retrieval-queries.tsv</c> and the one document it should find.</summary>
public sealed record RetrievalQuery(string Text, string RelevantId);

/// <summary>
/// The project's embedding quality data (written and rated for MeshAI, committed under <c>tests/data</c>) and the
/// metrics over it: cosine, Spearman rank correlation (average ranks for ties), top-k retrieval and recall@k.
/// </summary>
public static class EmbeddingQuality
{
    /// <summary>The rated pairs (≥ 30).</summary>
    public static IReadOnlyList<RatedPair> SimilarityPairs() =>
        [.. Rows("similarity-pairs.tsv").Select(r => new RatedPair(double.Parse(r[0], CultureInfo.InvariantCulture), r[1], r[2]))];

    /// <summary>The 100 documents, in file order (id, text).</summary>
    public static IReadOnlyList<(string Id, string Text)> Documents() => [.. Rows("retrieval-documents.tsv").Select(r => (r[0], r[1]))];

    /// <summary>The 10 queries.</summary>
    public static IReadOnlyList<RetrievalQuery> Queries() => [.. Rows("retrieval-queries.tsv").Select(r => new RetrievalQuery(r[1], r[0]))];

    /// <summary>Cosine similarity (the vectors need not be unit length).</summary>
    public static double Cosine(IReadOnlyList<float> a, IReadOnlyList<float> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Count; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }

        return dot / Math.Max(Math.Sqrt(na) * Math.Sqrt(nb), 1e-12);
    }

    /// <summary>Spearman's rank correlation: Pearson correlation of the average ranks.</summary>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Count != y.Count || x.Count < 2)
        {
            throw new ArgumentException("two equally long series of at least two values are needed");
        }

        var rx = Ranks(x);
        var ry = Ranks(y);
        var mx = rx.Average();
        var my = ry.Average();
        double cov = 0, vx = 0, vy = 0;
        for (var i = 0; i < rx.Length; i++)
        {
            cov += (rx[i] - mx) * (ry[i] - my);
            vx += (rx[i] - mx) * (rx[i] - mx);
            vy += (ry[i] - my) * (ry[i] - my);
        }

        return cov / Math.Sqrt(vx * vy);
    }

    /// <summary>Indices of the <paramref name="k"/> documents most similar to the query (cosine, ties by index).</summary>
    public static int[] TopK(IReadOnlyList<float> query, IReadOnlyList<IReadOnlyList<float>> documents, int k)
    {
        ArgumentNullException.ThrowIfNull(documents);
        return [.. Enumerable.Range(0, documents.Count).OrderByDescending(i => Cosine(query, documents[i])).ThenBy(i => i).Take(k)];
    }

    /// <summary>Share of queries whose relevant document is among their top <paramref name="k"/>, and each query's top-k ids.</summary>
    public static (double Recall, IReadOnlyList<string[]> TopIds) RecallAtK(
        IReadOnlyList<RetrievalQuery> queries, IReadOnlyList<IReadOnlyList<float>> queryVectors, IReadOnlyList<string> documentIds,
        IReadOnlyList<IReadOnlyList<float>> documentVectors, int k)
    {
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(queryVectors);
        ArgumentNullException.ThrowIfNull(documentIds);
        var tops = new List<string[]>();
        var hits = 0;
        for (var q = 0; q < queries.Count; q++)
        {
            var top = TopK(queryVectors[q], documentVectors, k).Select(i => documentIds[i]).ToArray();
            tops.Add(top);
            hits += top.Contains(queries[q].RelevantId) ? 1 : 0;
        }

        return ((double)hits / queries.Count, tops);
    }

    private static double[] Ranks(IReadOnlyList<double> values)
    {
        var order = Enumerable.Range(0, values.Count).OrderBy(i => values[i]).ToArray();
        var ranks = new double[values.Count];
        for (var start = 0; start < order.Length;)
        {
            var end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]])
            {
                end++;
            }

            for (var i = start; i <= end; i++)
            {
                ranks[order[i]] = ((start + end) / 2.0) + 1;
            }

            start = end + 1;
        }

        return ranks;
    }

    private static IEnumerable<string[]> Rows(string file) =>
        File.ReadLines(RepoPaths.Combine("tests", "data", file))
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split('\t'));
}

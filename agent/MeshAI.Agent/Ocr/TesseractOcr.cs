using System.Globalization;
using System.Text;
using MeshAI.Agent.Workloads;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Ocr;

/// <summary>Runs the tesseract CLI on a PNG and reads its text and TSV (word boxes + confidence) output.</summary>
public static class TesseractOcr
{
    /// <summary>Runs tesseract in <paramref name="workDirectory"/>; returns text, words and mean word confidence (0..1).</summary>
    public static async Task<OcrOutput> RecognizeAsync(string tesseract, byte[] png, string language, string workDirectory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(png);
        var input = Path.Combine(workDirectory, "ocr-input.png");
        var outputBase = Path.Combine(workDirectory, "ocr-output");
        await File.WriteAllBytesAsync(input, png, cancellationToken);
        var (code, _, stderr) = await Executables.RunAsync(tesseract, [input, outputBase, "-l", language, "--psm", "3", "txt", "tsv"], workDirectory, cancellationToken);
        if (code != 0)
        {
            throw new InvalidOperationException($"tesseract exited with {code}: {stderr.Trim()}");
        }

        var output = ParseTsv(await File.ReadAllTextAsync(outputBase + ".tsv", cancellationToken));
        output.Text = (await File.ReadAllTextAsync(outputBase + ".txt", cancellationToken)).Replace("\f", "", StringComparison.Ordinal).Trim();
        return output;
    }

    /// <summary>Words (level 5 rows with text) from tesseract's TSV; confidence scaled to 0..1.</summary>
    public static OcrOutput ParseTsv(string tsv)
    {
        ArgumentNullException.ThrowIfNull(tsv);
        var output = new OcrOutput();
        var text = new StringBuilder();
        foreach (var line in tsv.Split('\n').Skip(1))
        {
            var cells = line.TrimEnd('\r').Split('\t');
            if (cells.Length < 12 || cells[0] != "5" || string.IsNullOrWhiteSpace(cells[11]))
            {
                continue;
            }

            var confidence = float.TryParse(cells[10], NumberStyles.Float, CultureInfo.InvariantCulture, out var c) ? Math.Max(0, c) / 100f : 0f;
            output.Words.Add(new OcrWord
            {
                Text = cells[11],
                Left = Int(cells[6]),
                Top = Int(cells[7]),
                Width = Int(cells[8]),
                Height = Int(cells[9]),
                Confidence = confidence,
            });
            text.Append(text.Length == 0 ? "" : " ").Append(cells[11]);
        }

        output.Text = text.ToString();
        output.MeanConfidence = output.Words.Count == 0 ? 0 : output.Words.Average(w => w.Confidence);
        return output;

        static int Int(string s) => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : 0;
    }
}

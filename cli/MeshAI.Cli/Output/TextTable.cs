namespace MeshAI.Cli.Output;

/// <summary>A plain-text table: upper-case headers, columns padded to their widest cell, two spaces apart.</summary>
public sealed class TextTable
{
    private readonly string[] headers;
    private readonly bool[] rightAligned;
    private readonly List<string[]> rows = [];

    /// <summary>A table with these column headers; a header ending in ">" is right-aligned (the marker is not printed).</summary>
    public TextTable(params string[] headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        rightAligned = headers.Select(h => h.EndsWith('>')).ToArray();
        this.headers = headers.Select(h => h.TrimEnd('>')).ToArray();
    }

    /// <summary>Number of data rows.</summary>
    public int Count => rows.Count;

    /// <summary>Adds a row; missing cells are blank, null cells print as "-".</summary>
    public TextTable Add(params string?[] cells)
    {
        ArgumentNullException.ThrowIfNull(cells);
        var row = new string[headers.Length];
        for (var i = 0; i < row.Length; i++)
        {
            var cell = i < cells.Length ? cells[i] ?? "-" : "";
            row[i] = cell.ReplaceLineEndings(" ");
        }

        rows.Add(row);
        return this;
    }

    /// <summary>Writes the header and the rows; trailing spaces are trimmed.</summary>
    public void WriteTo(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var widths = new int[headers.Length];
        foreach (var line in rows.Prepend(headers))
        {
            for (var i = 0; i < widths.Length; i++)
            {
                widths[i] = Math.Max(widths[i], line[i].Length);
            }
        }

        foreach (var line in rows.Prepend(headers))
        {
            var cells = line.Select((cell, i) => rightAligned[i] ? cell.PadLeft(widths[i]) : cell.PadRight(widths[i]));
            writer.WriteLine(string.Join("  ", cells).TrimEnd());
        }
    }

    /// <inheritdoc />
    public override string ToString()
    {
        using var writer = new StringWriter();
        writer.NewLine = "\n";
        WriteTo(writer);
        return writer.ToString();
    }
}

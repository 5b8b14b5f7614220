namespace MeshAI.Control.Rpc;

/// <summary>
/// The bound of one proto field, as <see cref="RequestBoundsTable"/> assigns it: how many entries a repeated or map field
/// may hold, how long each string (in characters) or bytes value may be, which range each number must lie in, and whether a
/// string may span lines. Enums need no entry: only values the contract defines are accepted. <see cref="Option"/> names the
/// <see cref="InputLimits"/> (or <see cref="ControlLimits"/>) property the bound comes from, for messages and docs.
/// </summary>
public sealed record FieldBound
{
    /// <summary>Most entries of a repeated or map field.</summary>
    public int? MaxItems { get; init; }

    /// <summary>Longest string (each item of a repeated string; each map value).</summary>
    public int? MaxChars { get; init; }

    /// <summary>True when the string may hold line breaks and tabs (NUL is refused everywhere).</summary>
    public bool MultiLine { get; init; }

    /// <summary>Longest bytes value.</summary>
    public int? MaxBytes { get; init; }

    /// <summary>Longest map key.</summary>
    public int? MaxKeyChars { get; init; }

    /// <summary>Smallest integer (each item of a repeated integer field).</summary>
    public long? Min { get; init; }

    /// <summary>Largest integer.</summary>
    public long? Max { get; init; }

    /// <summary>Smallest floating-point value (NaN and infinities are always refused).</summary>
    public double? RealMin { get; init; }

    /// <summary>Largest floating-point value.</summary>
    public double? RealMax { get; init; }

    /// <summary>The named option the bound comes from ("Control:Input:NameChars"), for messages and docs.</summary>
    public string Option { get; init; } = "";

    /// <summary>This bound, also allowing at most <paramref name="items"/> entries (for repeated fields).</summary>
    public FieldBound Times(int items, string option) => this with { MaxItems = items, Option = Option.Length == 0 ? option : Option + ", " + option };
}

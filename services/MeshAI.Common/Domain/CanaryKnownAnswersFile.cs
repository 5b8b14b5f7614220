using System.Text.Json;
using System.Text.Json.Serialization;

namespace MeshAI.Common.Domain;

/// <summary>One model's known answers: texts and the unit vectors the model returns for them.</summary>
public sealed class KnownEmbeddingAnswers
{
    /// <summary>Model name (CapabilityReport.models.name).</summary>
    [JsonPropertyName("name")]
    public string Name { get; set; } = "";

    /// <summary>Lower-case hex SHA-256 of the weights file the vectors were computed with (CapabilityReport.models.sha256).</summary>
    [JsonPropertyName("sha256")]
    public string Sha256 { get; set; } = "";

    /// <summary>Vector length.</summary>
    [JsonPropertyName("dimension")]
    public int Dimension { get; set; }

    /// <summary>The texts and their vectors.</summary>
    [JsonPropertyName("answers")]
    public List<KnownEmbedding> Answers { get; set; } = [];
}

/// <summary>A text and its embedding.</summary>
public sealed class KnownEmbedding
{
    /// <summary>The text.</summary>
    [JsonPropertyName("text")]
    public string Text { get; set; } = "";

    /// <summary>Its vector.</summary>
    [JsonPropertyName("vector")]
    public float[] Vector { get; set; } = [];
}

/// <summary>
/// The canary known-answer table (docs/anti-abuse.md): written by <c>meshai-agent models known-answers</c> with the agent's
/// embedding pipeline, read by control (<c>Control:Canary:KnownAnswersFile</c>).
/// </summary>
public sealed class KnownAnswersFile
{
    /// <summary>Format tag of this version.</summary>
    public const string CurrentFormat = "meshai-canary-answers-v1";

    /// <summary>Most models, answers per model and vector length a table may hold (bounds on what control loads).</summary>
    public const int MaxModels = 32, MaxAnswers = 64, MaxDimension = 4096, MaxTextChars = 1000;

    /// <summary>Format tag.</summary>
    [JsonPropertyName("format")]
    public string Format { get; set; } = CurrentFormat;

    /// <summary>Generator (tool and version) for the record.</summary>
    [JsonPropertyName("generated_by")]
    public string GeneratedBy { get; set; } = "";

    /// <summary>Per model.</summary>
    [JsonPropertyName("models")]
    public List<KnownEmbeddingAnswers> Models { get; set; } = [];

    /// <summary>Parses and checks the bounds; throws <see cref="InvalidDataException"/> with the reason.</summary>
    public static KnownAnswersFile Parse(string json)
    {
        var file = JsonSerializer.Deserialize<KnownAnswersFile>(json) ?? throw new InvalidDataException("empty known-answer table");
        if (file.Format != CurrentFormat)
        {
            throw new InvalidDataException($"known-answer table format '{file.Format}' is not {CurrentFormat}");
        }

        if (file.Models.Count > MaxModels)
        {
            throw new InvalidDataException($"known-answer table has {file.Models.Count} models (at most {MaxModels})");
        }

        foreach (var model in file.Models)
        {
            if (model.Name.Length == 0 || model.Sha256.Length != 64 || model.Answers.Count is 0 or > MaxAnswers || model.Dimension is <= 0 or > MaxDimension)
            {
                throw new InvalidDataException($"known-answer table entry '{model.Name}' is malformed (name, 64-hex sha256, 1…{MaxAnswers} answers, dimension 1…{MaxDimension})");
            }

            if (model.Answers.Any(a => a.Text.Length is 0 or > MaxTextChars || a.Vector.Length != model.Dimension || a.Vector.Any(v => !float.IsFinite(v))))
            {
                throw new InvalidDataException($"known-answer table entry '{model.Name}' has an answer with an empty or too long text, a vector of the wrong length or a non-finite value");
            }
        }

        return file;
    }

    /// <summary>The table as compact JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this);
}

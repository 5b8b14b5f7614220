using System.Text.Json;
using MeshAI.Common.Domain;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Jobs.Canaries;

/// <summary>Canary settings (section <c>Control:Canary</c>, docs/anti-abuse.md).</summary>
public sealed class CanaryOptions
{
    /// <summary>
    /// The known-answer table written by <c>meshai-agent models known-answers --out FILE</c> (the agent's own embedding
    /// pipeline over manifest-verified models). Empty: this server has no known answers and offers no canaries.
    /// </summary>
    public string KnownAnswersFile { get; set; } = "";

    /// <summary>How long a canary attempt may run before it ends inconclusive (the device was probably busy).</summary>
    public int TimeoutMs { get; set; } = 60_000;
}

/// <summary>
/// The known answers control judges canaries by, loaded once from <see cref="CanaryOptions.KnownAnswersFile"/>: per model
/// name and weights SHA-256 (what a device reports), texts with their vectors. A device whose model (name + hash) has no
/// entry gets no embeddings canary: a device running other weights is never judged against the wrong answer.
/// </summary>
public sealed partial class CanaryKnownAnswers(IOptions<Control.ControlPlaneOptions> options, ILogger<CanaryKnownAnswers> logger)
{
    private readonly Lazy<IReadOnlyDictionary<(string, string), KnownEmbeddingAnswers>> _table = new(() => Load(options.Value.Canary.KnownAnswersFile, logger));

    /// <summary>True when a table is loaded with at least one model.</summary>
    public bool Any => _table.Value.Count > 0;

    /// <summary>The known answers of a model, by its name and weights hash (case-insensitive hex).</summary>
    public KnownEmbeddingAnswers? Find(string modelName, string sha256) =>
        _table.Value.TryGetValue((modelName ?? "", (sha256 ?? "").ToLowerInvariant()), out var answers) ? answers : null;

    private static Dictionary<(string, string), KnownEmbeddingAnswers> Load(string path, ILogger logger)
    {
        var table = new Dictionary<(string, string), KnownEmbeddingAnswers>();
        if (string.IsNullOrWhiteSpace(path))
        {
            return table;
        }

        try
        {
            var file = KnownAnswersFile.Parse(File.ReadAllText(path));
            foreach (var model in file.Models)
            {
                table[(model.Name, model.Sha256.ToLowerInvariant())] = model;
            }

            LogLoaded(logger, path, table.Count);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or JsonException)
        {
            // A broken table must not take the control plane down: no canaries until it is fixed.
            LogRefused(logger, path, ex.Message);
            table.Clear();
        }

        return table;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Canary known answers loaded from {Path}: {Models} model(s)")]
    private static partial void LogLoaded(ILogger logger, string path, int models);

    [LoggerMessage(Level = LogLevel.Error, Message = "Canary known answers in {Path} refused, no canaries will be offered: {Reason}")]
    private static partial void LogRefused(ILogger logger, string path, string reason);
}

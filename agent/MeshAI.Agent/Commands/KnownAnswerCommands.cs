using MeshAI.Agent.Embeddings;
using MeshAI.Agent.ModelPackages;
using MeshAI.Agent.Models;
using MeshAI.Agent.State;
using MeshAI.Agent.Workloads;
using MeshAI.Common.Domain;
using MeshAI.Contracts.Common.V1;

namespace MeshAI.Agent.Commands;

/// <summary>meshai-agent models known-answers: the canary known-answer table (docs/anti-abuse.md).</summary>
public sealed partial class AgentCommands
{
    /// <summary>
    /// The texts canaries embed: ordinary sentences of the kind a network embeds, so a canary's input does not stand out.
    /// Changing them only needs the table regenerated.
    /// </summary>
    public static readonly IReadOnlyList<string> CanaryTexts =
    [
        "Quarterly revenue grew by eight percent, driven mostly by subscriptions in Europe.",
        "Remember to water the tomato plants before the afternoon heat sets in.",
        "The meeting about the new onboarding process has moved to Thursday at ten.",
        "Reset your password from the account settings page if you cannot sign in.",
        "A light rain is expected over the coast tonight, clearing by the morning.",
        "The invoice lists three items: two keyboards and a replacement power supply.",
        "She finished the novel in one sitting and immediately started the sequel.",
        "Preheat the oven to 200 degrees and line the tray with baking paper.",
    ];

    /// <summary>
    /// Embeds <see cref="CanaryTexts"/> with every verified embeddings model of the cache — the agent's own pipeline
    /// (<see cref="EmbeddingModel"/>, each model verified against its manifest before it is loaded) — and writes the table
    /// control judges canaries by, keyed by model name and weights SHA-256.
    /// </summary>
    private int WriteKnownAnswers(CommandLine line)
    {
        var outFile = line.Get("out");
        if (string.IsNullOrEmpty(outFile))
        {
            _err.WriteLine("error: models known-answers needs --out FILE");
            return ExitCodes.Usage;
        }

        var store = new AgentStateStore(line.Get("state-dir"));
        var settings = WorkloadSettings.FromCommandLine(line, store.ModelsDirectory, "");
        var refused = new List<(string Dir, string Reason)>();
        var set = LocalModelSet.Discover(settings.EmbeddingsModelDir, settings.ModelRoots, settings.DefaultModel ?? PackagedModels.DefaultModel, (d, r) => refused.Add((d, r)));
        foreach (var (dir, reason) in refused)
        {
            _err.WriteLine($"refused {dir}: {reason}");
        }

        var table = new KnownAnswersFile { GeneratedBy = "meshai-agent models known-answers" };
        foreach (var local in set.Models.Where(m => m.Workload == WorkloadClass.Embeddings).Take(KnownAnswersFile.MaxModels))
        {
            EmbeddingModel model;
            try
            {
                model = EmbeddingModel.Load(local.Directory);
            }
            catch (ModelVerificationException ex)
            {
                _err.WriteLine($"refused {local.Directory}: {ex.Message}");
                continue;
            }

            using (model)
            {
                var (vectors, _) = model.Embed(CanaryTexts);
                table.Models.Add(new KnownEmbeddingAnswers
                {
                    Name = model.Manifest.Name,
                    Sha256 = model.Manifest.WeightsSha256.ToLowerInvariant(),
                    Dimension = vectors[0].Length,
                    Answers = [.. CanaryTexts.Select((text, i) => new KnownEmbedding { Text = text, Vector = vectors[i] })],
                });
            }
        }

        if (table.Models.Count == 0)
        {
            _err.WriteLine($"error: no verified embeddings model in {string.Join(", ", settings.ModelRoots)}; run `meshai-agent models install` first");
            return ExitCodes.Error;
        }

        var full = Path.GetFullPath(outFile);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + ".tmp";
        File.WriteAllText(temp, table.ToJson());
        File.Move(temp, full, overwrite: true);
        _out.WriteLine($"MESHAI_KNOWN_ANSWERS file={full} models={string.Join(",", table.Models.Select(m => m.Name + "@" + m.Sha256[..12]))} texts={CanaryTexts.Count}");
        return ExitCodes.Ok;
    }
}

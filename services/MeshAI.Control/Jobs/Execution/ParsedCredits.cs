using System.Collections.Concurrent;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Networks;

namespace MeshAI.Control.Jobs.Execution;

/// <summary>
/// A network's credit settings parsed once per distinct stored settings JSON (#11, docs/job-plane.md "The relayed job's own
/// cost"): settling a job reads the network row fresh (an admin may change the rates while it runs) and parsed its
/// <c>settings_json</c> on every settlement — 1.3 % of the server's CPU per echo job. The cache is keyed by the JSON text
/// itself, so a changed setting is new text and is parsed at once: never stale. Bounded (cleared when full). The message is
/// shared: callers read it and never change it.
/// </summary>
internal static class ParsedCredits
{
    private const int Capacity = 1024;
    private static readonly ConcurrentDictionary<string, CreditSettings> Parsed = new(StringComparer.Ordinal);

    /// <summary>The credit settings of this settings JSON (read-only).</summary>
    public static CreditSettings Of(string settingsJson)
    {
        if (Parsed.TryGetValue(settingsJson, out var credits))
        {
            return credits;
        }

        credits = NetworkDefaults.FromJson(settingsJson).Credits ?? new CreditSettings();
        if (Parsed.Count >= Capacity)
        {
            Parsed.Clear();
        }

        Parsed[settingsJson] = credits;
        return credits;
    }
}

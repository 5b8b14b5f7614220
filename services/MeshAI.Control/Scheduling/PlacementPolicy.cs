using MeshAI.Common.Domain;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Scheduling;

/// <summary>An online device of the network as the scheduler sees it.</summary>
public sealed record PlacementCandidate(DeviceRow Device, PresenceRecord Presence)
{
    /// <summary>Live capabilities (from the last heartbeat).</summary>
    public CapabilityReport Capabilities => Presence.Capabilities;

    /// <summary>The device's tier.</summary>
    public Tier Tier { get; } = Tiers.Classify(Presence.Capabilities);
}

/// <summary>What the scheduler is asked: place this envelope on one of these devices, avoiding the excluded ones.</summary>
public sealed record PlacementRequest(JobEnvelope Envelope, IReadOnlyList<PlacementCandidate> Candidates, IReadOnlySet<string> Excluded, NetworkSettings Settings)
{
    /// <summary>The submitter's role in the network (policy dimension member_role).</summary>
    public Role SubmitterRole { get; init; } = Role.Member;

    /// <summary>The network's policy, compiled.</summary>
    public CompiledPolicy Policy { get; init; } = PolicyEngine.DefaultCompiled;

    /// <summary>Minutes since local midnight (policy dimension time_of_day).</summary>
    public int MinuteOfDay { get; init; } = 12 * 60;

    /// <summary>Where the submitter is (local_prefer).</summary>
    public SubmitterLocation Submitter { get; init; } = SubmitterLocation.Unknown;

    /// <summary>How many ranked candidates to return (chunked jobs ask for more to spread over).</summary>
    public int TopK { get; init; } = 5;

    /// <summary>The network's public models (policy public_models_only).</summary>
    public PublicModels PublicModels { get; init; } = PublicModels.None;
}

/// <summary>The scheduler's answer: eligibility of every candidate, the top-ranked scores, and the choice (null when nothing is eligible).</summary>
public sealed class PlacementDecision
{
    private readonly Lazy<IReadOnlyList<DeviceEligibility>> _eligibility;

    /// <summary>A decision with its eligibility list already built.</summary>
    public PlacementDecision(IReadOnlyList<DeviceEligibility> eligibility, IReadOnlyList<CandidateScore> ranked, PlacementCandidate? selected, string reason)
        : this(() => eligibility, ranked, [], selected, reason, eligibility.Count(e => e.Eligible))
    {
    }

    /// <summary>A decision whose per-device eligibility list is built on first use (it is only needed for the debug view).</summary>
    public PlacementDecision(Func<IReadOnlyList<DeviceEligibility>> eligibility, IReadOnlyList<CandidateScore> ranked, IReadOnlyList<PlacementCandidate> rankedCandidates,
        PlacementCandidate? selected, string reason, int eligibleCount)
    {
        _eligibility = new Lazy<IReadOnlyList<DeviceEligibility>>(eligibility);
        Ranked = ranked;
        RankedCandidates = rankedCandidates;
        Selected = selected;
        Reason = reason;
        EligibleCount = eligibleCount;
    }

    /// <summary>Every candidate's eligibility with the first failing filter, ordered by device id.</summary>
    public IReadOnlyList<DeviceEligibility> Eligibility => _eligibility.Value;

    /// <summary>The best candidates' scores, best first.</summary>
    public IReadOnlyList<CandidateScore> Ranked { get; }

    /// <summary>The candidates behind <see cref="Ranked"/>, same order.</summary>
    public IReadOnlyList<PlacementCandidate> RankedCandidates { get; }

    /// <summary>The chosen device, or null.</summary>
    public PlacementCandidate? Selected { get; }

    /// <summary>Why it was chosen (or why nothing was).</summary>
    public string Reason { get; }

    /// <summary>How many candidates passed every filter.</summary>
    public int EligibleCount { get; }
}

/// <summary>The scheduling seam: eligibility filters + scoring.</summary>
public interface IPlacementPolicy
{
    /// <summary>Decides where the job runs.</summary>
    PlacementDecision Place(PlacementRequest request);
}

/// <summary>
/// The v1 scheduler (spec routing_and_scheduling): <see cref="EligibilityFilters"/> in a fixed order (first failure
/// reported per device), then <see cref="LinearScorer"/> over the survivors, highest total first, ties broken by
/// device id (ordinal). Routing modes: auto (best score), pinned_device / pinned_tier (filters narrow the field, then best
/// score), local_prefer (devices on the submitter's LAN rank before all others, then best score). Linear in the number of
/// candidates: a bounded top-K instead of a sort.
/// </summary>
public sealed class LinearPlacementPolicy : IPlacementPolicy
{
    /// <inheritdoc />
    public PlacementDecision Place(PlacementRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var context = new EligibilityContext(request);
        var weights = request.Settings.ScoringWeights ?? LinearScorer.DefaultWeights();
        var (burn, cheapest) = LinearScorer.Rates(request.Settings.Credits);
        var lanFirst = request.Envelope.RoutingMode == RoutingMode.LocalPrefer;
        var candidates = request.Candidates;
        var n = candidates.Count;
        var filters = new EligibilityFilter[n];
        var totals = new double[n];
        var lan = lanFirst ? new bool[n] : [];
        var k = Math.Max(1, request.TopK);
        var best = new int[k];
        var count = 0;
        var eligible = 0;
        var lanEligible = 0;

        for (var i = 0; i < n; i++)
        {
            var c = candidates[i];
            var filter = EligibilityFilters.FirstFailing(c, context);
            filters[i] = filter;
            if (filter != EligibilityFilter.Unspecified)
            {
                continue;
            }

            eligible++;
            var features = LinearScorer.Features(c.Capabilities, c.Presence.RttMs, c.Tier, burn, cheapest);
            totals[i] = LinearScorer.Total(features, weights);
            if (lanFirst && LanMatcher.SameLan(request.Submitter, c.Capabilities))
            {
                lan[i] = true;
                lanEligible++;
            }

            // Bounded insertion into the top-k (k is small): O(n·k), no sort of the whole field.
            if (count < k || Better(i, best[count - 1]))
            {
                var at = count < k ? count++ : count - 1;
                while (at > 0 && Better(i, best[at - 1]))
                {
                    best[at] = best[at - 1];
                    at--;
                }

                best[at] = i;
            }
        }

        var rankedCandidates = new PlacementCandidate[count];
        var ranked = new CandidateScore[count];
        for (var r = 0; r < count; r++)
        {
            var c = candidates[best[r]];
            rankedCandidates[r] = c;
            var features = LinearScorer.Features(c.Capabilities, c.Presence.RttMs, c.Tier, burn, cheapest);
            ranked[r] = LinearScorer.Explain(c.Device.DeviceId, features, weights, lanFirst ? lan[best[r]] : LanMatcher.SameLan(request.Submitter, c.Capabilities));
        }

        var selected = count == 0 ? null : rankedCandidates[0];
        var why = Why(request, selected, ranked, eligible, lanEligible, lanFirst);
        return new PlacementDecision(() => Materialize(candidates, filters, context), ranked, rankedCandidates, selected, why, eligible);

        bool Better(int a, int b)
        {
            if (lanFirst && lan[a] != lan[b])
            {
                return lan[a];
            }

            if (totals[a] != totals[b])
            {
                return totals[a] > totals[b];
            }

            return string.CompareOrdinal(candidates[a].Device.DeviceId, candidates[b].Device.DeviceId) < 0;
        }
    }

    // Reasons are only formatted here, when the debug view needs them: the same filters, deterministic, with explanations.
    private static List<DeviceEligibility> Materialize(IReadOnlyList<PlacementCandidate> candidates, EligibilityFilter[] filters, EligibilityContext context)
    {
        var order = Enumerable.Range(0, candidates.Count).OrderBy(i => candidates[i].Device.DeviceId, StringComparer.Ordinal);
        return order.Select(i => new DeviceEligibility
        {
            DeviceId = candidates[i].Device.DeviceId,
            Eligible = filters[i] == EligibilityFilter.Unspecified,
            FailingFilter = filters[i],
            Reason = filters[i] == EligibilityFilter.Unspecified ? "eligible" : EligibilityFilters.Check(candidates[i], context).Reason ?? "",
        }).ToList();
    }

    private static string Why(PlacementRequest request, PlacementCandidate? selected, CandidateScore[] ranked, int eligible, int lanEligible, bool lanFirst)
    {
        if (selected is null)
        {
            return request.Candidates.Count == 0 ? "no device of the network is online" : "no online device passes the eligibility filters";
        }

        var score = ranked[0].Total.ToString("F4", System.Globalization.CultureInfo.InvariantCulture);
        var runnerUp = ranked.Length > 1
            ? $"; next {ranked[1].DeviceId} at {ranked[1].Total.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}" + (ranked[1].Total == ranked[0].Total ? " (tie broken by device id)" : "")
            : "";
        var best = $"highest linear score {score} among {eligible} eligible device(s){runnerUp}";
        return request.Envelope.RoutingMode switch
        {
            RoutingMode.PinnedDevice => "pinned_device: " + best,
            RoutingMode.PinnedTier => $"pinned_tier {Tiers.Name(EligibilityFilters.PinnedTier(request.Envelope))}: " + best,
            RoutingMode.LocalPrefer when lanFirst && lanEligible > 0 => $"local_prefer: on the submitter's LAN ({lanEligible} eligible LAN peer(s)); " + best,
            RoutingMode.LocalPrefer => "local_prefer: no eligible device on the submitter's LAN, fell back to the relay; " + best,
            _ => "auto: " + best,
        };
    }
}

using MeshAI.Common.Seams;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Jobs;

/// <summary>Gathers the network's online devices (presence + stored rows) and asks the placement policy.</summary>
public sealed class JobPlanner(IPresenceDirectory presence, DeviceRepository devices, IPlacementPolicy policy, TimeProvider clock)
{
    /// <summary>The placement decision for the envelope, skipping <paramref name="excluded"/> devices.</summary>
    public async Task<PlacementDecision> PlanAsync(JobEnvelope envelope, NetworkSettings settings, IReadOnlySet<string> excluded, CancellationToken ct)
    {
        var online = presence.ListOnline(envelope.NetworkId, clock.GetUtcNow());
        var rows = (await devices.GetDevicesAsync(envelope.NetworkId, online.Select(p => p.DeviceId).ToList(), ct)).ToDictionary(r => r.DeviceId, StringComparer.Ordinal);
        var candidates = online.Where(p => rows.ContainsKey(p.DeviceId)).Select(p => new PlacementCandidate(rows[p.DeviceId], p)).ToList();
        return policy.Place(new PlacementRequest(envelope, candidates, excluded, settings));
    }
}

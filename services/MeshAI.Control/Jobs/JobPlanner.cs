using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Jobs.Chunking;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Jobs;

/// <summary>Who asked and from where (policy member_role, local_prefer), plus the chunks of a chunked job.</summary>
public sealed record JobPlacementContext(Role SubmitterRole, SubmitterLocation Submitter, IReadOnlyList<JobChunk>? Chunks = null)
{
    /// <summary>A member with no known location (placement previews).</summary>
    public static JobPlacementContext Anonymous { get; } = new(Role.Member, SubmitterLocation.Unknown);
}

/// <summary>Gathers the network's online devices (presence + stored rows) and its policy, and asks the placement policy.</summary>
public sealed class JobPlanner(IPresenceDirectory presence, DeviceRepository devices, IPlacementPolicy policy, PolicyStore policies, ModelAvailability models, TimeProvider clock)
{
    /// <summary>
    /// NOT_FOUND for a pinned device id that is no device of the envelope's network, so a mistyped id is not reported as
    /// "no eligible device is online". Call after the caller's membership is checked (ids are looked up in that network only).
    /// </summary>
    public async Task RequirePinnedDevicesExistAsync(JobEnvelope envelope, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        var pinned = envelope.ResourceRequest?.RequiresPinnedDeviceIdsOptional;
        if (pinned is null || pinned.Count == 0)
        {
            return;
        }

        var ids = pinned.Distinct(StringComparer.Ordinal).ToList();
        var known = (await devices.GetDevicesAsync(envelope.NetworkId, ids, ct)).Select(r => r.DeviceId).ToHashSet(StringComparer.Ordinal);
        if (ids.FirstOrDefault(id => !known.Contains(id)) is { } missing)
        {
            throw MeshAI.Common.Errors.RpcErrors.NotFound("device", missing);
        }
    }

    /// <summary>The placement decision for the envelope, skipping <paramref name="excluded"/> devices (a member with no known location).</summary>
    public Task<PlacementDecision> PlanAsync(JobEnvelope envelope, NetworkSettings settings, IReadOnlySet<string> excluded, CancellationToken ct) =>
        PlanAsync(envelope, settings, excluded, JobPlacementContext.Anonymous, ct);

    /// <summary>The placement decision for the envelope as submitted by <paramref name="context"/>, skipping <paramref name="excluded"/> devices.</summary>
    public async Task<PlacementDecision> PlanAsync(JobEnvelope envelope, NetworkSettings settings, IReadOnlySet<string> excluded, JobPlacementContext context, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        ArgumentNullException.ThrowIfNull(context);
        var now = clock.GetUtcNow();
        var online = presence.ListOnline(envelope.NetworkId, now);
        var rows = (await devices.GetDevicesAsync(envelope.NetworkId, online.Select(p => p.DeviceId).ToList(), ct)).ToDictionary(r => r.DeviceId, StringComparer.Ordinal);
        // An end-to-end encrypted payload can only run where its content key was wrapped.
        var recipients = MeshAI.Common.Crypto.PayloadCrypto.IsEncrypted(envelope) ? envelope.PayloadEncryption.Recipients.Select(r => r.DeviceId).ToHashSet(StringComparer.Ordinal) : null;
        var candidates = online.Where(p => rows.ContainsKey(p.DeviceId) && (recipients is null || recipients.Contains(p.DeviceId))).Select(p => new PlacementCandidate(rows[p.DeviceId], p)).ToList();
        var local = TimeZoneInfo.ConvertTime(now, clock.LocalTimeZone);
        return policy.Place(new PlacementRequest(envelope, candidates, excluded, settings)
        {
            SubmitterRole = context.SubmitterRole,
            Policy = await policies.LoadCompiledAsync(envelope.NetworkId, ct),
            PublicModels = await models.PublicModelsAsync(envelope.NetworkId, ct), // policy public_models_only (#14)
            MinuteOfDay = (local.Hour * 60) + local.Minute,
            Submitter = context.Submitter,
            TopK = Math.Max(5, Math.Min(JobChunker.MaxChunks, context.Chunks?.Count ?? 0)),
        });
    }
}

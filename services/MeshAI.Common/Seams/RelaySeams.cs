using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Common.Seams;

/// <summary>A device the relay has authenticated: who it is and which network it belongs to.</summary>
public sealed record DeviceIdentity(string DeviceId, string NetworkId, string OwnerUserId, byte[] SigningPublicKey, string CertificateSerial);

/// <summary>Implemented by the control plane; the relay asks it whether a device certificate is trustworthy.</summary>
public interface IDeviceAuthority
{
    /// <summary>Verifies the certificate against the network's CA keys, validity and the revocation denylist; null + reason when refused.</summary>
    Task<(DeviceIdentity? Identity, string Reason)> AuthenticateAsync(DeviceCertificate certificate, CancellationToken cancellationToken);

    /// <summary>True when the device or its certificate serial has been revoked.</summary>
    Task<bool> IsRevokedAsync(string deviceId, string certificateSerial, CancellationToken cancellationToken);
}

/// <summary>Implemented by the control plane; receives everything agents report about jobs through the relay.</summary>
public interface IJobEventSink
{
    /// <summary>The agent accepted an offer.</summary>
    Task OnAcceptedAsync(DeviceIdentity device, JobAccept accept, CancellationToken cancellationToken);

    /// <summary>The agent declined an offer.</summary>
    Task OnDeclinedAsync(DeviceIdentity device, JobDecline decline, CancellationToken cancellationToken);

    /// <summary>Progress of a running job.</summary>
    Task OnProgressAsync(DeviceIdentity device, JobProgress progress, CancellationToken cancellationToken);

    /// <summary>A streamed token of a running job.</summary>
    Task OnTokenAsync(DeviceIdentity device, JobToken token, CancellationToken cancellationToken);

    /// <summary>A structured log event of a running job.</summary>
    Task OnLogAsync(DeviceIdentity device, JobLog log, CancellationToken cancellationToken);

    /// <summary>A result; <paramref name="relayBytes"/> is what the relay counted for this job attempt.</summary>
    Task OnResultAsync(DeviceIdentity device, JobResult result, long relayBytes, CancellationToken cancellationToken);

    /// <summary>A failure reported by the agent.</summary>
    Task OnFailureAsync(DeviceIdentity device, JobFailure failure, long relayBytes, CancellationToken cancellationToken);

    /// <summary>The device's stream ended; its attempts wait for it to come back (reconnect grace), then are retried elsewhere.</summary>
    Task OnDisconnectedAsync(DeviceIdentity device, CancellationToken cancellationToken);

    /// <summary>
    /// The device (re)connected; <paramref name="held"/> lists the attempts it still runs or holds an unacknowledged result of
    /// (null when its protocol version does not say). Attempts on it that it does not hold are lost.
    /// </summary>
    Task OnConnectedAsync(DeviceIdentity device, IReadOnlyCollection<HeldAttempt>? held, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// The control plane's job runner seen from a relay in the same process (the embedded server, or a process running both
/// roles): the relay hands the reports of a job this process runs straight to it instead of over the bus, and
/// <see cref="IJobEventSink"/>'s contract is unchanged (a terminal report completes once handled; a job not run here throws,
/// and the relay retries over the bus). Issue #11: the bus round trip was a serialise, a queue hop, a parse and a reply per
/// report.
/// </summary>
public interface ILocalJobOwner : IJobEventSink
{
    /// <summary>True when this process runs the job now (its reports go to it directly).</summary>
    bool Runs(string jobId);
}

/// <summary>The relay seen from a control plane in the same process: offers to devices whose stream is on it skip the bus (issue #11).</summary>
public interface ILocalRelay : IJobDispatcher
{
    /// <summary>This relay's id, as presence records it.</summary>
    string RelayId { get; }
}

/// <summary>Implemented by the relay; the control plane hands offers and cancellations to the device's live stream.</summary>
public interface IJobDispatcher
{
    /// <summary>Queues the offer on the device's stream; false when the device has no live stream on this relay.</summary>
    bool TryOffer(string deviceId, JobOffer offer);

    /// <summary>Asks the device to stop a job attempt; false when the device is not connected.</summary>
    bool TryCancel(string deviceId, JobCancel cancel);

    /// <summary>Cuts the device's live stream (revocation); false when it was not connected.</summary>
    bool Cut(string deviceId, CutReason reason, string detail);
}

/// <summary>Soft-state presence of a device, refreshed by heartbeats.</summary>
public sealed record PresenceRecord(
    string DeviceId,
    string NetworkId,
    string RelayId,
    CapabilityReport Capabilities,
    bool ContributionEnabled,
    DateTimeOffset LastSeen,
    int RttMs);

/// <summary>The presence directory: device → relay instance, with a grace period (in memory embedded, Redis scaled out).</summary>
public interface IPresenceDirectory
{
    /// <summary>Records a heartbeat (or the stream opening).</summary>
    void Upsert(PresenceRecord record);

    /// <summary>Forgets a device (stream closed or revoked).</summary>
    void Remove(string deviceId);

    /// <summary>The device's record when it is within the grace period.</summary>
    PresenceRecord? GetOnline(string deviceId, DateTimeOffset now);

    /// <summary>Every device of the network within the grace period.</summary>
    IReadOnlyList<PresenceRecord> ListOnline(string networkId, DateTimeOffset now);
}

/// <summary>
/// Implemented by the control plane (over the store); the relay asks it what a device missed of its network's pushed
/// <see cref="NetworkUpdate"/>s and tells it what the device acknowledged (relay protocol 3).
/// </summary>
public interface INetworkUpdateSource
{
    /// <summary>The network's newest serial (0 before its first update).</summary>
    Task<long> LatestSerialAsync(string networkId, CancellationToken cancellationToken);

    /// <summary>
    /// What a device that applied <paramref name="appliedSerial"/> is missing: the missed deltas merged into one update, the
    /// whole state when they are no longer kept (or the device is ahead of the store), or null when it is up to date.
    /// </summary>
    Task<NetworkUpdate?> CatchUpAsync(string networkId, long appliedSerial, CancellationToken cancellationToken);

    /// <summary>The device applied <paramref name="serial"/>: it trusts what that update (and every earlier one) told it from now on.</summary>
    Task AcknowledgeAsync(DeviceIdentity device, long serial, CancellationToken cancellationToken);
}

/// <summary>The source where no control plane pushes updates (a relay tested on its own): nothing to catch up on.</summary>
public sealed class NoNetworkUpdates : INetworkUpdateSource
{
    /// <inheritdoc />
    public Task<long> LatestSerialAsync(string networkId, CancellationToken cancellationToken) => Task.FromResult(0L);

    /// <inheritdoc />
    public Task<NetworkUpdate?> CatchUpAsync(string networkId, long appliedSerial, CancellationToken cancellationToken) => Task.FromResult<NetworkUpdate?>(null);

    /// <inheritdoc />
    public Task AcknowledgeAsync(DeviceIdentity device, long serial, CancellationToken cancellationToken) => Task.CompletedTask;
}

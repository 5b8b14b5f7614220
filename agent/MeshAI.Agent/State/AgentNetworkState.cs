using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Agent.State;

/// <summary>What applying a <see cref="NetworkUpdate"/> did.</summary>
public enum NetworkUpdateOutcome
{
    /// <summary>The update was newer than what the device held: applied and stored.</summary>
    Applied,

    /// <summary>The device already held this serial (a re-send): nothing changed.</summary>
    AlreadyHeld,

    /// <summary>The update names this device as revoked: the agent stops (like a revocation cut).</summary>
    SelfRevoked,
}

/// <summary>
/// The device's view of its network, shared by every relay session of the agent process: its enrollment (certificate,
/// trusted keys, relay addresses), the serial of the last NetworkUpdate it applied, and the devices it knows are revoked.
/// Pushed updates (relay protocol 3) are applied here and stored before the session acknowledges them; offers are verified
/// against <see cref="ControlKeys"/>, so a rotation's new control key is trusted without reconnecting.
/// </summary>
public sealed class AgentNetworkState
{
    /// <summary>Revoked peers kept (the newest).</summary>
    public const int MaxRevokedPeers = 1000;

    private readonly AgentStateStore? _store;
    private readonly Lock _gate = new();
    private AgentEnrollment _enrollment;

    /// <summary>Starts from <paramref name="enrollment"/>; with a <paramref name="store"/> every change is saved.</summary>
    public AgentNetworkState(AgentEnrollment enrollment, AgentStateStore? store = null)
    {
        _enrollment = enrollment ?? throw new ArgumentNullException(nameof(enrollment));
        _store = store;
    }

    /// <summary>The current enrollment.</summary>
    public AgentEnrollment Enrollment => Volatile.Read(ref _enrollment);

    /// <summary>The serial of the last update applied (0: none).</summary>
    public long Serial => Enrollment.NetworkSerial;

    /// <summary>Heartbeat interval an update asked for (0: what Welcome said).</summary>
    public int HeartbeatIntervalMs { get; private set; }

    /// <summary>Control signing keys valid at <paramref name="now"/> (the offer verifier's trust).</summary>
    public IReadOnlyDictionary<string, byte[]> ControlKeys(DateTimeOffset now) => Enrollment.ControlKeys(now);

    /// <summary>Replaces the enrollment (a renewed certificate and its keys), keeping the update serial and revoked peers.</summary>
    public AgentEnrollment Replace(AgentEnrollment renewed)
    {
        ArgumentNullException.ThrowIfNull(renewed);
        lock (_gate)
        {
            var current = _enrollment;
            var next = renewed with { NetworkSerial = Math.Max(renewed.NetworkSerial, current.NetworkSerial), RevokedPeers = renewed.RevokedPeers ?? current.RevokedPeers };
            Save(next);
            return next;
        }
    }

    /// <summary>
    /// Applies a pushed update when it is newer than what the device holds (or is the whole state): the key set and relay
    /// addresses it carries replace the stored ones, its revocations are remembered; the result is stored before returning.
    /// </summary>
    public NetworkUpdateOutcome Apply(NetworkUpdate update)
    {
        ArgumentNullException.ThrowIfNull(update);
        lock (_gate)
        {
            var current = _enrollment;
            if (!update.FullState && update.Serial <= current.NetworkSerial)
            {
                return NetworkUpdateOutcome.AlreadyHeld;
            }

            List<string> revoked = update.FullState ? [] : [.. current.RevokedPeers ?? []];
            revoked.AddRange(update.RevokedDeviceIds.Where(id => !revoked.Contains(id, StringComparer.Ordinal)));
            var next = current with
            {
                NetworkSerial = update.Serial,
                NetworkKeys = update.NetworkKeys.Count > 0
                    ? update.NetworkKeys.Select(k => new TrustedKey(k.KeyId, k.PublicKey.ToByteArray(), k.Purpose.ToString(), k.NotAfter?.ToDateTimeOffset())).ToList()
                    : current.NetworkKeys,
                RelayUrls = update.RelayUrls.Count > 0 ? [.. update.RelayUrls] : current.RelayUrls,
                RevokedPeers = revoked.Skip(Math.Max(0, revoked.Count - MaxRevokedPeers)).ToList(),
            };
            if (update.HeartbeatIntervalMs > 0)
            {
                HeartbeatIntervalMs = update.HeartbeatIntervalMs;
            }

            Save(next);
            return update.RevokedDeviceIds.Contains(current.DeviceId) ? NetworkUpdateOutcome.SelfRevoked : NetworkUpdateOutcome.Applied;
        }
    }

    private void Save(AgentEnrollment next)
    {
        _store?.SaveEnrollment(next);
        Volatile.Write(ref _enrollment, next);
    }
}

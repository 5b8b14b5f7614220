using System.Data.Common;
using Google.Protobuf;
using MeshAI.Common.Bus;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Bus.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Jobs;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Networks;

/// <summary>
/// Control's pushed NetworkUpdate deltas (relay protocol 3, docs/job-plane.md "Network updates"): a rotation (the new key
/// set) or a revocation is recorded under the network's next serial — in the same transaction as the change where there is
/// one — and published to every relay, which sends it down the streams of the network's devices. Agents apply it without
/// reconnecting and acknowledge; an acknowledged key set moves the device's tickets to its new control key. A device that
/// reconnects names the serial it holds and gets what it missed (<see cref="CatchUpAsync"/>).
/// </summary>
public sealed partial class NetworkUpdates(
    Database database,
    NetworkUpdateRepository store,
    NetworkKeyVault keys,
    SecurityRepository security,
    ModelRepository models,
    IMeshBus bus,
    BusNames names,
    ControlInstance instance,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock,
    ILogger<NetworkUpdates> logger) : INetworkUpdateSource
{
    /// <summary>Deltas kept per network; a device further behind gets the whole state.</summary>
    public const int KeptPerNetwork = 256;

    /// <summary>Revoked devices listed in a whole-state update (the most recently revoked).</summary>
    public const int MaxRevokedInFullState = 1000;

    /// <summary>
    /// Records the network's current key set (read in <paramref name="tx"/>, so a rotation's new keys are in it) as the next
    /// delta; returns the update to <see cref="Push"/> once the transaction committed.
    /// </summary>
    public async Task<NetworkUpdate> RecordKeysAsync(DbConnection c, DbTransaction tx, string networkId, CancellationToken ct)
    {
        var rows = (await NetworkRepository.ListKeysAsync(c, tx, networkId, clock.GetUtcNow().ToUnixTimeMilliseconds(), ct)).ToList();
        var update = new NetworkUpdate { NetworkKeys = { NetworkKeyVault.PublicKeys(rows) } };
        var control = rows.FirstOrDefault(r => r.Purpose == (int)NetworkKeyPurpose.ControlSigning)?.KeyId;
        return await RecordAsync(c, tx, networkId, update, control, ct);
    }

    /// <summary>Records revoked devices as the network's next delta and pushes it.</summary>
    public async Task PublishRevokedAsync(string networkId, IReadOnlyCollection<string> deviceIds, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(deviceIds);
        if (deviceIds.Count == 0)
        {
            return;
        }

        var update = await database.InTransactionAsync((c, tx) => RecordAsync(c, tx, networkId, new NetworkUpdate { RevokedDeviceIds = { deviceIds } }, null, ct), ct);
        Push(networkId, update);
    }

    /// <summary>
    /// Records that the network's model manifests changed (a manifest published at <paramref name="publishTimeMs"/>) as the
    /// next delta and pushes it: running agents fetch the auto_install models they lack and re-announce (docs/models.md).
    /// </summary>
    public async Task PublishModelsChangedAsync(string networkId, long publishTimeMs, CancellationToken ct)
    {
        var update = await database.InTransactionAsync((c, tx) => RecordAsync(c, tx, networkId, new NetworkUpdate { ModelsChangedUnixMs = Math.Max(1, publishTimeMs) }, null, ct), ct);
        Push(networkId, update);
    }

    /// <summary>
    /// When the deployment's agent settings differ from the ones last pushed — the relay addresses (<c>--relay-urls</c>) and
    /// the heartbeat interval (<c>Control:Ledger:HeartbeatIntervalMs</c>, the interval minting counts heartbeats against) —
    /// records a <c>NetworkUpdate</c> carrying what changed for every network and pushes it, so connected agents apply it
    /// without a reconnect. A setting seen for the first time (nothing recorded yet) is only recorded: agents got it at
    /// registration or in Welcome. Returns how many networks were told. Called once per start by
    /// <see cref="AgentSettingsPublisher"/> under a control lease.
    /// </summary>
    public async Task<int> PublishAgentSettingsIfChangedAsync(CancellationToken ct)
    {
        var urls = options.Value.RelayUrlList;
        var heartbeat = options.Value.Ledger.HeartbeatIntervalMs;
        var delta = new NetworkUpdate();
        var changed = new List<(string Name, string Value)>();
        if (urls.Count > 0 && await ChangedAsync(RelayUrlsSetting, string.Join(',', urls)) is { } pushUrls)
        {
            changed.Add((RelayUrlsSetting, string.Join(',', urls)));
            if (pushUrls)
            {
                delta.RelayUrls.Add(urls);
            }
        }

        var interval = heartbeat.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (heartbeat > 0 && await ChangedAsync(HeartbeatSetting, interval) is { } pushHeartbeat)
        {
            changed.Add((HeartbeatSetting, interval));
            if (pushHeartbeat)
            {
                delta.HeartbeatIntervalMs = heartbeat;
            }
        }

        var told = 0;
        if (delta.RelayUrls.Count > 0 || delta.HeartbeatIntervalMs > 0)
        {
            foreach (var networkId in await store.ListNetworkIdsAsync(ct))
            {
                var update = await database.InTransactionAsync((c, tx) => RecordAsync(c, tx, networkId, delta.Clone(), null, ct), ct);
                Push(networkId, update);
                told++;
            }
        }

        foreach (var (name, value) in changed)
        {
            await store.SetDeploymentSettingAsync(name, value, clock.GetUtcNow().ToUnixTimeMilliseconds(), ct);
        }

        return told;

        // null: unchanged; false: seen for the first time (record only); true: changed (push).
        async Task<bool?> ChangedAsync(string name, string value) =>
            await store.GetDeploymentSettingAsync(name, ct) is var pushed && pushed == value ? null : pushed is not null;
    }

    /// <summary>The deployment_settings row of the relay addresses last pushed.</summary>
    public const string RelayUrlsSetting = "relay_urls";

    /// <summary>The deployment_settings row of the heartbeat interval last pushed.</summary>
    public const string HeartbeatSetting = "heartbeat_interval_ms";

    /// <summary>Hands a recorded update to every relay (fire and forget: a relay that misses it re-sends on the device's next heartbeat).</summary>
    public void Push(string networkId, NetworkUpdate update)
    {
        ArgumentNullException.ThrowIfNull(update);
        LogPushed(networkId, update.Serial);
        bus.Post(names.AllRelays, new RelayCommand { NetworkId = networkId, NetworkUpdate = update, FromInstance = instance.Id }.ToByteArray());
    }

    /// <inheritdoc />
    public Task<long> LatestSerialAsync(string networkId, CancellationToken cancellationToken) => store.LatestSerialAsync(networkId, cancellationToken);

    /// <inheritdoc />
    public async Task<NetworkUpdate?> CatchUpAsync(string networkId, long appliedSerial, CancellationToken cancellationToken)
    {
        var latest = await store.LatestSerialAsync(networkId, cancellationToken);
        if (latest == 0 || appliedSerial == latest)
        {
            return null;
        }

        var missed = appliedSerial > 0 && appliedSerial < latest ? (await store.ListAfterAsync(networkId, appliedSerial, cancellationToken)).ToList() : [];
        if (missed.Count > 0 && missed[0].Serial == appliedSerial + 1 && missed[^1].Serial == latest && missed.Count == latest - appliedSerial)
        {
            return Merge(missed.Select(r => NetworkUpdate.Parser.ParseFrom(r.Payload)));
        }

        // Too far behind (deltas trimmed), new (serial 0) or ahead of the store (restored from a backup): the whole state.
        var set = await keys.GetKeysAsync(networkId, cancellationToken);
        return new NetworkUpdate
        {
            Serial = latest,
            FullState = true,
            NetworkKeys = { NetworkKeyVault.PublicKeys(set.Rows) },
            RevokedDeviceIds = { await store.ListRevokedAsync(networkId, MaxRevokedInFullState, cancellationToken) },
            RelayUrls = { options.Value.RelayUrlList },
            ModelsChangedUnixMs = (await models.ListLatestAsync(networkId, cancellationToken)).Select(r => r.PublishTimeMs).DefaultIfEmpty(0).Max(),
        };
    }

    /// <inheritdoc />
    public async Task AcknowledgeAsync(DeviceIdentity device, long serial, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(device);
        await store.RecordAcknowledgedAsync(device.DeviceId, serial, cancellationToken);
        var latest = await store.LatestSerialAsync(device.NetworkId, cancellationToken);
        // The key set the device holds now: the one the newest kept delta up to its serial carried (a whole-state update of
        // the latest serial carried the current keys).
        var controlKeyId = await store.ControlKeyAtAsync(device.NetworkId, serial, cancellationToken);
        if (serial >= latest)
        {
            controlKeyId ??= (await keys.GetKeysAsync(device.NetworkId, cancellationToken)).ControlKeyId;
        }

        if (controlKeyId is not null)
        {
            await security.SetDeviceControlKeyAsync(device.DeviceId, controlKeyId, cancellationToken);
        }

        LogAcknowledged(device.DeviceId, serial);
    }

    /// <summary>Missed deltas as one update: the newest key set and relay addresses, every revocation, the newest model change, the newest serial.</summary>
    public static NetworkUpdate Merge(IEnumerable<NetworkUpdate> deltas)
    {
        ArgumentNullException.ThrowIfNull(deltas);
        var merged = new NetworkUpdate();
        foreach (var delta in deltas)
        {
            merged.Serial = delta.Serial;
            if (delta.NetworkKeys.Count > 0)
            {
                merged.NetworkKeys.Clear();
                merged.NetworkKeys.Add(delta.NetworkKeys);
            }

            if (delta.RelayUrls.Count > 0)
            {
                merged.RelayUrls.Clear();
                merged.RelayUrls.Add(delta.RelayUrls);
            }

            if (delta.HeartbeatIntervalMs > 0)
            {
                merged.HeartbeatIntervalMs = delta.HeartbeatIntervalMs;
            }

            merged.ModelsChangedUnixMs = Math.Max(merged.ModelsChangedUnixMs, delta.ModelsChangedUnixMs);
            merged.RevokedDeviceIds.Add(delta.RevokedDeviceIds.Where(id => !merged.RevokedDeviceIds.Contains(id)));
        }

        return merged;
    }

    private async Task<NetworkUpdate> RecordAsync(DbConnection c, DbTransaction tx, string networkId, NetworkUpdate delta, string? controlKeyId, CancellationToken ct)
    {
        var serial = await NetworkUpdateRepository.AppendAsync(c, tx, networkId, s =>
        {
            delta.Serial = s;
            return delta.ToByteArray();
        }, controlKeyId, clock.GetUtcNow().ToUnixTimeMilliseconds(), KeptPerNetwork, ct);
        delta.Serial = serial;
        return delta;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Network {NetworkId}: pushing update {Serial} to every relay")]
    private partial void LogPushed(string networkId, long serial);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Device {DeviceId} applied network update {Serial}")]
    private partial void LogAcknowledged(string deviceId, long serial);
}

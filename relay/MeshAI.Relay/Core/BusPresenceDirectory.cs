using Google.Protobuf;
using MeshAI.Common.Bus;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Bus.V1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MeshAI.Relay.Core;

/// <summary>
/// Presence shared through the bus (device → relay instance, soft state): every instance keeps a local mirror (reads stay
/// in memory, on the scheduler's hot path); a relay's heartbeat updates its mirror, publishes the update and refreshes the
/// device's key with a TTL of the grace period, so an instance that starts (or a Redis that restarted empty) rebuilds
/// presence from the keys and the next heartbeat of every device.
/// </summary>
public sealed class BusPresenceDirectory : IPresenceDirectory, IHostedService, IAsyncDisposable
{
    private readonly IMeshBus _bus;
    private readonly BusNames _names;
    private readonly InMemoryPresenceDirectory _mirror;
    private readonly TimeProvider _clock;
    private readonly TimeSpan _grace;
    private IAsyncDisposable? _subscription;

    /// <summary>Creates the directory with the relay options' grace period.</summary>
    public BusPresenceDirectory(IMeshBus bus, BusNames names, IOptions<RelayOptions> options, TimeProvider clock)
    {
        ArgumentNullException.ThrowIfNull(options);
        _bus = bus;
        _names = names;
        _clock = clock;
        _grace = TimeSpan.FromSeconds(options.Value.HeartbeatGraceSeconds);
        _mirror = new InMemoryPresenceDirectory(_grace);
    }

    /// <inheritdoc />
    public void Upsert(PresenceRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        _mirror.Upsert(record);
        var update = ToUpdate(record).ToByteArray();
        _bus.Post(_names.Presence, update);
        _bus.SetWithTtl(_names.PresenceKey(record.DeviceId), update, _grace);
    }

    /// <inheritdoc />
    public void Remove(string deviceId)
    {
        // Only the relay that held the stream forgets it: the device may already be on another relay.
        var relayId = _mirror.GetOnline(deviceId, _clock.GetUtcNow())?.RelayId ?? "";
        _mirror.Remove(deviceId);
        _bus.Post(_names.Presence, new PresenceUpdate { DeviceId = deviceId, RelayId = relayId, Removed = true }.ToByteArray());
    }

    /// <inheritdoc />
    public PresenceRecord? GetOnline(string deviceId, DateTimeOffset now) => _mirror.GetOnline(deviceId, now);

    /// <inheritdoc />
    public IReadOnlyList<PresenceRecord> ListOnline(string networkId, DateTimeOffset now) => _mirror.ListOnline(networkId, now);

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _subscription = await _bus.SubscribeAsync(_names.Presence, message =>
        {
            Apply(PresenceUpdate.Parser.ParseFrom(message));
            return Task.CompletedTask;
        }, cancellationToken);
        foreach (var (_, value) in await _bus.ScanAsync(_names.PresenceKeys, cancellationToken))
        {
            Apply(PresenceUpdate.Parser.ParseFrom(value));
        }
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_subscription is not null)
        {
            await _subscription.DisposeAsync();
        }
    }

    private void Apply(PresenceUpdate update)
    {
        if (update.Removed)
        {
            if (_mirror.GetOnline(update.DeviceId, _clock.GetUtcNow()) is { } current && current.RelayId == update.RelayId)
            {
                _mirror.Remove(update.DeviceId);
            }

            return;
        }

        _mirror.Upsert(new PresenceRecord(update.DeviceId, update.NetworkId, update.RelayId, update.Capabilities ?? new Contracts.Device.V1.CapabilityReport(),
            update.ContributionEnabled, DateTimeOffset.FromUnixTimeMilliseconds(update.LastSeenMs), update.RttMs));
    }

    private static PresenceUpdate ToUpdate(PresenceRecord r) => new()
    {
        DeviceId = r.DeviceId,
        NetworkId = r.NetworkId,
        RelayId = r.RelayId,
        Capabilities = r.Capabilities,
        ContributionEnabled = r.ContributionEnabled,
        LastSeenMs = r.LastSeen.ToUnixTimeMilliseconds(),
        RttMs = r.RttMs,
    };
}

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
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _published = new(StringComparer.Ordinal);
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

    /// <summary>
    /// Records a heartbeat. The local mirror (what this instance's scheduler reads) is updated every time; the bus message and
    /// the TTL key — what other instances see — only when the record is new or its relay, contribution flag, workloads or
    /// models changed, and otherwise at most once per <see cref="PublishInterval"/> (a third of the grace; issue #11: one
    /// serialized message and one key write per heartbeat were most of a heartbeat's cost). So another instance sees a device's
    /// last-seen time and its volatile capabilities (RTT, battery, thermal) at most a third of the grace plus one heartbeat
    /// interval late, well inside the grace, and a change that decides placement at once.
    /// </summary>
    public void Upsert(PresenceRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var before = _mirror.Get(record.DeviceId);
        _mirror.Upsert(record);
        var nowMs = record.LastSeen.ToUnixTimeMilliseconds();
        if (before is not null && SameAnnouncement(before, record) &&
            _published.TryGetValue(record.DeviceId, out var publishedMs) && nowMs - publishedMs < (long)PublishInterval.TotalMilliseconds)
        {
            return;
        }

        _published[record.DeviceId] = nowMs;
        var update = ToUpdate(record).ToByteArray();
        _bus.Post(_names.Presence, update);
        _bus.SetWithTtl(_names.PresenceKey(record.DeviceId), update, _grace);
    }

    /// <summary>How often an unchanged device's presence is re-published to the other instances (a third of the grace).</summary>
    public TimeSpan PublishInterval => _grace / 3;

    private static bool SameAnnouncement(PresenceRecord a, PresenceRecord b) =>
        a.ContributionEnabled == b.ContributionEnabled &&
        string.Equals(a.RelayId, b.RelayId, StringComparison.Ordinal) &&
        string.Equals(a.NetworkId, b.NetworkId, StringComparison.Ordinal) &&
        a.Capabilities.Workloads.Equals(b.Capabilities.Workloads) &&
        a.Capabilities.Models.Equals(b.Capabilities.Models);

    /// <inheritdoc />
    public void Remove(string deviceId)
    {
        _published.TryRemove(deviceId, out _);
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

using System.Collections.Concurrent;
using MeshAI.Common.Seams;
using Microsoft.Extensions.Options;

namespace MeshAI.Relay.Core;

/// <summary>The embedded presence directory: device → latest heartbeat record, online while within the grace period.</summary>
public sealed class InMemoryPresenceDirectory : IPresenceDirectory
{
    private readonly ConcurrentDictionary<string, PresenceRecord> _records = new(StringComparer.Ordinal);
    private readonly TimeSpan _grace;

    /// <summary>Creates a directory with the grace period from <see cref="RelayOptions.HeartbeatGraceSeconds"/>.</summary>
    public InMemoryPresenceDirectory(IOptions<RelayOptions> options)
        : this(TimeSpan.FromSeconds(options.Value.HeartbeatGraceSeconds))
    {
    }

    /// <summary>Creates a directory with an explicit grace period.</summary>
    public InMemoryPresenceDirectory(TimeSpan grace)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(grace, TimeSpan.Zero);
        _grace = grace;
    }

    /// <summary>The grace period after the last heartbeat.</summary>
    public TimeSpan Grace => _grace;

    /// <inheritdoc />
    public void Upsert(PresenceRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        _records.AddOrUpdate(record.DeviceId, static (_, r) => r, static (_, existing, r) => existing.LastSeen > r.LastSeen ? existing : r, record);
    }

    /// <summary>The latest record of a device, fresh or not (null when none).</summary>
    public PresenceRecord? Get(string deviceId) => _records.TryGetValue(deviceId, out var record) ? record : null;

    /// <inheritdoc />
    public void Remove(string deviceId) => _records.TryRemove(deviceId, out _);

    /// <inheritdoc />
    public PresenceRecord? GetOnline(string deviceId, DateTimeOffset now) =>
        _records.TryGetValue(deviceId, out var record) && IsFresh(record, now) ? record : null;

    /// <inheritdoc />
    public IReadOnlyList<PresenceRecord> ListOnline(string networkId, DateTimeOffset now) =>
        _records.Values
            .Where(r => string.Equals(r.NetworkId, networkId, StringComparison.Ordinal) && IsFresh(r, now))
            .OrderBy(r => r.DeviceId, StringComparer.Ordinal)
            .ToList();

    private bool IsFresh(PresenceRecord record, DateTimeOffset now) => now - record.LastSeen <= _grace;
}

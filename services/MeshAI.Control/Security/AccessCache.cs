using System.Collections.Concurrent;
using Google.Protobuf;
using MeshAI.Common.Bus;
using MeshAI.Contracts.Bus.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Jobs;
using MeshAI.Control.Networks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Security;

/// <summary>
/// The authorisation cache (docs/security.md, "Authorisation cache"): bearer token → caller, and (network, user) → active
/// membership, kept per control instance for at most <see cref="SecurityOptions.AccessCacheTtlMs"/> so the calls of the job
/// hot path do not read the session, member and network rows every time (#11). Every check still runs on every call; only
/// the rows it reads may come from here.
/// Invalidation is explicit: the store writes that change who may call (session and API-key revocation, membership state
/// and role, network settings) clear the kind's table on this instance once the write is committed and post an
/// <see cref="AccessInvalidation"/> on the bus, which clears it on every other instance. The TTL is the bound when a bus
/// message is lost. A read that overlaps an invalidation is not kept (the table's epoch moved), so a value read before a
/// write committed never outlives it here. Only positive answers are kept: a refused caller is read again every time.
/// </summary>
public sealed class AccessCache(IMeshBus bus, BusNames names, ControlInstance instance, TimeProvider clock, IOptions<SecurityOptions> options) : IHostedService, IAsyncDisposable
{
    private readonly Table<string, Caller> _callers = new(options.Value.AccessCacheEntries);
    private readonly Table<(string NetworkId, string UserId), Membership> _memberships = new(options.Value.AccessCacheEntries);
    private readonly Table<string, IReadOnlyList<Storage.NetworkKeyRow>> _networkKeys = new(options.Value.AccessCacheEntries);
    private readonly Table<string, string> _deviceKeys = new(options.Value.AccessCacheEntries);
    private IAsyncDisposable? _subscription;

    private long Ttl => options.Value.AccessCacheTtlMs;

    private long NowMs => clock.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>The caller for a token hash: cached, or read by <paramref name="read"/> (null: unknown, kept nowhere) and kept until the TTL or <c>ExpireMs</c>, whichever comes first.</summary>
    public async Task<Caller?> CallerAsync(string tokenHash, Func<Task<(Caller Caller, long ExpireMs)?>> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        return await ReadThroughAsync(_callers, tokenHash, async () => await read() is { } f ? (f.Caller, f.ExpireMs) : (null, null));
    }

    /// <summary>The active membership of <paramref name="userId"/> in <paramref name="networkId"/>: cached, or read by <paramref name="read"/> (null: not an active member, kept nowhere).</summary>
    public async Task<Membership?> MembershipAsync(string networkId, string userId, Func<Task<Membership?>> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        return await ReadThroughAsync(_memberships, (networkId, userId), async () => await read() is { } m ? (m, long.MaxValue) : (null, null));
    }

    /// <summary>
    /// The network's valid key rows for signing placement tickets (<see cref="NetworkKeyVault.TicketKeyAsync"/>): cached, or
    /// read by <paramref name="read"/>; an empty list is not kept. The caller still drops rows whose not_after has passed.
    /// </summary>
    public async Task<IReadOnlyList<Storage.NetworkKeyRow>> NetworkKeysAsync(string networkId, Func<Task<IReadOnlyList<Storage.NetworkKeyRow>>> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        return await ReadThroughAsync(_networkKeys, networkId, async () => await read() is { Count: > 0 } rows ? (rows, long.MaxValue) : ([], null)) ?? [];
    }

    /// <summary>The control key id a device was last given (null: none recorded, kept as such): cached, or read by <paramref name="read"/>.</summary>
    public async Task<string?> DeviceControlKeyAsync(string deviceId, Func<Task<string?>> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        var keyId = await ReadThroughAsync(_deviceKeys, deviceId, async () => (await read() ?? "", long.MaxValue));
        return string.IsNullOrEmpty(keyId) ? null : keyId;
    }

    /// <summary>A network's keys rotated or a device was given another control key (committed): forget the cached key rows, here and on every other instance.</summary>
    public void KeysChanged() => Changed(AccessInvalidation.Types.Kind.Keys);

    /// <summary>A session or API key was revoked (committed): forget every cached caller, here and on every other instance.</summary>
    public void CallersChanged() => Changed(AccessInvalidation.Types.Kind.Callers);

    /// <summary>A membership or a network's settings changed (committed): forget every cached membership, here and on every other instance.</summary>
    public void MembershipsChanged() => Changed(AccessInvalidation.Types.Kind.Memberships);

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken) =>
        _subscription = await bus.SubscribeAsync(names.AccessInvalidations, OnMessageAsync, cancellationToken);

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

    // The one read-through path of every table: the cached value, or what `read` returns — kept (when it names a time, and the
    // cache is on) until then or the TTL, whichever comes first, unless an invalidation ran while it was read.
    private async Task<TValue?> ReadThroughAsync<TKey, TValue>(Table<TKey, TValue> table, TKey key, Func<Task<(TValue? Value, long? KeepUntilMs)>> read)
        where TKey : notnull
        where TValue : class
    {
        var now = NowMs;
        if (Ttl > 0 && table.TryGet(key, now, out var known))
        {
            return known;
        }

        var epoch = table.Epoch;
        var (value, keepUntil) = await read();
        if (Ttl > 0 && value is not null && keepUntil is { } until)
        {
            table.Add(key, value, Math.Min(now + Ttl, until), epoch);
        }

        return value;
    }

    private void Changed(AccessInvalidation.Types.Kind kind)
    {
        Clear(kind);
        bus.Post(names.AccessInvalidations, new AccessInvalidation { Kind = kind, OriginInstance = instance.Id }.ToByteArray());
    }

    private Task OnMessageAsync(byte[] message)
    {
        var m = AccessInvalidation.Parser.ParseFrom(message);
        if (m.OriginInstance != instance.Id)
        {
            Clear(m.Kind);
        }

        return Task.CompletedTask;
    }

    private void Clear(AccessInvalidation.Types.Kind kind)
    {
        switch (kind)
        {
            case AccessInvalidation.Types.Kind.Callers:
                _callers.Clear();
                break;
            case AccessInvalidation.Types.Kind.Memberships:
                _memberships.Clear();
                break;
            case AccessInvalidation.Types.Kind.Keys:
                _networkKeys.Clear();
                _deviceKeys.Clear();
                break;
            default:
                _callers.Clear();
                _memberships.Clear();
                _networkKeys.Clear();
                _deviceKeys.Clear();
                break;
        }
    }

    // A bounded map whose every clear moves an epoch: a value read while a clear ran is dropped instead of kept.
    private sealed class Table<TKey, TValue>(int capacity)
        where TKey : notnull
    {
        private readonly ConcurrentDictionary<TKey, (TValue Value, long ExpiresMs)> _entries = new();
        private long _epoch;

        public long Epoch => Interlocked.Read(ref _epoch);

        public bool TryGet(TKey key, long nowMs, out TValue value)
        {
            if (_entries.TryGetValue(key, out var entry))
            {
                if (entry.ExpiresMs > nowMs)
                {
                    value = entry.Value;
                    return true;
                }

                _entries.TryRemove(KeyValuePair.Create(key, entry));
            }

            value = default!;
            return false;
        }

        public void Add(TKey key, TValue value, long expiresMs, long epochAtRead)
        {
            if (_entries.Count >= capacity)
            {
                _entries.Clear();
            }

            _entries[key] = (value, expiresMs);
            if (Epoch != epochAtRead)
            {
                _entries.TryRemove(key, out _); // invalidated while it was read: it may predate the write
            }
        }

        public void Clear()
        {
            Interlocked.Increment(ref _epoch);
            _entries.Clear();
        }
    }
}

using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Devices;
using MeshAI.Control.Identity;
using MeshAI.Control.Jobs;
using MeshAI.Control.Ledger;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Networks;

/// <summary>
/// WatchNetwork: a snapshot of a network (summary, device cards with live presence, recent jobs, balances, members), then
/// deltas with a monotonic serial (docs/dashboard.md). Each stream re-reads the store and the presence directory every
/// <see cref="ControlLimits.WatchIntervalMs"/> and sends only what changed, so the same code serves the embedded default
/// and a scaled-out deployment (where presence lives in Redis and jobs finish on other instances). Membership is re-checked
/// on every summary refresh: a member who is removed loses the stream (NOT_FOUND).
/// </summary>
public sealed class NetworkWatch(
    NetworkAccess access,
    NetworkRegistry registry,
    MemberDirectory members,
    DeviceDirectory devices,
    NetworkWatchRepository store,
    LedgerQueries ledger,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock)
{
    /// <summary>The network summary and members are refreshed every this many intervals (devices and jobs every interval).</summary>
    public const int SummaryEvery = 5;

    private int _streams;

    private ControlLimits Limits => options.Value.Limits;

    /// <summary>Streams the watch until <paramref name="ct"/> ends it; <paramref name="write"/> sends one frame.</summary>
    public async Task StreamAsync(Caller caller, string networkId, Func<WatchNetworkResponse, CancellationToken, Task> write, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(write);
        await access.RequireMemberOrAdminAsync(caller, networkId, "watch the network", ct);
        if (Interlocked.Increment(ref _streams) > Limits.MaxWatchStreams)
        {
            Interlocked.Decrement(ref _streams);
            throw RpcErrors.ResourceExhausted("watch_streams", $"this server already serves {Limits.MaxWatchStreams} watch streams; try again later");
        }

        try
        {
            var view = new View();
            var serial = 0L;
            var lastSent = clock.GetUtcNow();
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(Limits.WatchIntervalMs), clock);
            var tick = 0;
            do
            {
                var frame = await NextFrameAsync(caller, networkId, view, tick % SummaryEvery == 0, ct);
                var now = clock.GetUtcNow();
                if (serial == 0 || HasChanges(frame) || now - lastSent >= TimeSpan.FromMilliseconds(Limits.WatchKeepaliveMs))
                {
                    frame.Serial = ++serial;
                    frame.Snapshot = serial == 1;
                    frame.Time = Timestamp.FromDateTimeOffset(now);
                    await write(frame, ct);
                    lastSent = now;
                }

                tick++;
            }
            while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away.
        }
        finally
        {
            Interlocked.Decrement(ref _streams);
        }
    }

    private async Task<WatchNetworkResponse> NextFrameAsync(Caller caller, string networkId, View view, bool refreshSummary, CancellationToken ct)
    {
        var frame = new WatchNetworkResponse();
        var head = await store.LedgerHeadAsync(networkId, ct);
        var ledgerMoved = head != view.LedgerHead;
        var (cards, _) = await devices.ListAsync(caller, new ListDevicesRequest { NetworkId = networkId, PageSize = Limits.MaxPageSize }, ct);
        Diff(view.Devices, cards, d => d.DeviceId, ComparableCard, frame.DevicesChanged, frame.DevicesRemoved);
        var online = cards.Count(d => d.OnlineStatus == OnlineStatus.Online);
        var onlineChanged = online != view.OnlineCount;
        view.OnlineCount = online;

        if (refreshSummary || ledgerMoved || onlineChanged)
        {
            // Re-checks membership (NOT_FOUND once removed) and carries the online count, balance summary and settings.
            var network = await registry.GetAsync(caller, networkId, ct);
            var bytes = network.ToByteArray();
            if (!bytes.AsSpan().SequenceEqual(view.Network))
            {
                view.Network = bytes;
                frame.Network = network;
            }

            if (ledgerMoved)
            {
                view.LedgerHead = head;
                frame.Balances = await ledger.GetBalancesAsync(networkId, network.Settings?.Credits?.SharedPoolEnabled ?? true, ct);
            }
        }

        if (refreshSummary)
        {
            Diff(view.Members, await members.ListAsync(caller, networkId, ct), m => m.UserId, m => m.ToByteArray(), frame.MembersChanged, frame.MembersRemoved);
        }

        await DiffJobsAsync(networkId, view, frame, ct);
        return frame;
    }

    private async Task DiffJobsAsync(string networkId, View view, WatchNetworkResponse frame, CancellationToken ct)
    {
        var rows = (await store.ListRecentJobSummariesAsync(networkId, Limits.WatchRecentJobs, ct)).ToList();
        var changed = rows.Where(r => !view.Jobs.TryGetValue(r.JobId, out var seen) || seen != Signature(r)).ToList();
        if (changed.Count > 0)
        {
            var attempts = await store.ListAttemptsAsync(changed.Select(r => r.JobId).ToList(), ct);
            frame.JobsChanged.Add(changed.Select(r => JobViews.ToProto(r, attempts[r.JobId])));
        }

        view.Jobs.Clear();
        foreach (var row in rows)
        {
            view.Jobs[row.JobId] = Signature(row);
        }
    }

    // What the dashboard shows of a job changes only with these columns.
    private static string Signature(JobRow r) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{r.State}|{r.DeviceId}|{r.ChunksCompleted}|{r.ChunkCount}|{r.EndTimeMs}|{r.StartTimeMs}|{r.CostMicro}|{r.PlacementTimeMs}|{r.ErrorMessage.Length}");

    // Heartbeats move last_seen_time and idle_score every few seconds; those alone are not worth a frame.
    private static byte[] ComparableCard(Device device)
    {
        var copy = device.Clone();
        copy.LastSeenTime = null;
        if (copy.Capabilities is not null)
        {
            copy.Capabilities.IdleScore = 0;
        }

        return copy.ToByteArray();
    }

    /// <summary>Records what is new or changed in <paramref name="current"/> against <paramref name="seen"/>; true when anything changed.</summary>
    private static bool Diff<T>(Dictionary<string, byte[]> seen, IReadOnlyList<T> current, Func<T, string> id, Func<T, byte[]> comparable,
        Google.Protobuf.Collections.RepeatedField<T> changed, Google.Protobuf.Collections.RepeatedField<string> removed)
    {
        var any = false;
        var present = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in current)
        {
            var key = id(item);
            present.Add(key);
            var bytes = comparable(item);
            if (!seen.TryGetValue(key, out var previous) || !previous.AsSpan().SequenceEqual(bytes))
            {
                seen[key] = bytes;
                changed.Add(item);
                any = true;
            }
        }

        foreach (var gone in seen.Keys.Where(k => !present.Contains(k)).ToList())
        {
            seen.Remove(gone);
            removed.Add(gone);
            any = true;
        }

        return any;
    }

    private static bool HasChanges(WatchNetworkResponse frame) =>
        frame.Network is not null || frame.Balances is not null || frame.DevicesChanged.Count > 0 || frame.DevicesRemoved.Count > 0 ||
        frame.JobsChanged.Count > 0 || frame.MembersChanged.Count > 0 || frame.MembersRemoved.Count > 0;

    /// <summary>What this stream has sent so far.</summary>
    private sealed class View
    {
        public byte[] Network { get; set; } = [];

        public long LedgerHead { get; set; } = -1;

        public int OnlineCount { get; set; } = -1;

        public Dictionary<string, byte[]> Devices { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, byte[]> Members { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, string> Jobs { get; } = new(StringComparer.Ordinal);
    }
}

using Dapper;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Observability;

/// <summary>One network's store-derived gauge inputs.</summary>
public sealed record NetworkGauges(long Completed, long Failed, long Devices, long Online, long MintedMicro, long BurnedMicro)
{
    /// <summary>Nothing known.</summary>
    public static NetworkGauges Empty { get; } = new(0, 0, 0, 0, 0, 0);

    /// <summary>job_success_rate: completed / (completed + failed); 1 when no job ended in the window.</summary>
    public double SuccessRate => Completed + Failed == 0 ? 1 : (double)Completed / (Completed + Failed);

    /// <summary>device_online_rate: online / registered (not revoked) devices; 0 without devices.</summary>
    public double OnlineRate => Devices == 0 ? 0 : (double)Online / Devices;

    /// <summary>Sums two networks (the server-wide aggregate).</summary>
    public NetworkGauges Plus(NetworkGauges other) => new(Completed + other.Completed, Failed + other.Failed, Devices + other.Devices, Online + other.Online,
        MintedMicro + other.MintedMicro, BurnedMicro + other.BurnedMicro);
}

/// <summary>
/// The gauges that must agree across control instances, computed from the store (the source of truth) rather than from one
/// instance's memory: job_success_rate, device_online_rate, credits_minted_per_day, credits_burned_per_day. Recomputed at
/// most every <see cref="ObservabilityOptions.StoreGaugeSeconds"/>, whoever scrapes.
/// </summary>
public sealed class StoreGauges(Database database, IPresenceDirectory presence, IOptions<ObservabilityOptions> options, TimeProvider clock) : IDisposable
{
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private (DateTimeOffset At, IReadOnlyDictionary<string, NetworkGauges> Networks)? _cached;

    /// <summary>Per-network gauge inputs (networks with devices, jobs or credits in the windows).</summary>
    public async Task<IReadOnlyDictionary<string, NetworkGauges>> GetAsync(CancellationToken ct)
    {
        var ttl = TimeSpan.FromSeconds(options.Value.StoreGaugeSeconds);
        if (_cached is { } fresh && clock.GetUtcNow() - fresh.At < ttl)
        {
            return fresh.Networks;
        }

        await _refresh.WaitAsync(ct);
        try
        {
            if (_cached is { } again && clock.GetUtcNow() - again.At < ttl)
            {
                return again.Networks;
            }

            var now = clock.GetUtcNow();
            var networks = await ComputeAsync(now, ct);
            _cached = (now, networks);
            return networks;
        }
        finally
        {
            _refresh.Release();
        }
    }

    /// <inheritdoc />
    public void Dispose() => _refresh.Dispose();

    /// <summary>The server-wide sums.</summary>
    public async Task<NetworkGauges> TotalAsync(CancellationToken ct) =>
        (await GetAsync(ct)).Values.Aggregate(NetworkGauges.Empty, (sum, n) => sum.Plus(n));

    private async Task<IReadOnlyDictionary<string, NetworkGauges>> ComputeAsync(DateTimeOffset now, CancellationToken ct)
    {
        var since = now.AddMinutes(-options.Value.SuccessWindowMinutes).ToUnixTimeMilliseconds();
        var day = now.AddDays(-1).ToUnixTimeMilliseconds();
        await using var c = await database.OpenAsync(ct);
        var jobs = await c.QueryAsync<CountRow>(Database.Command(
            "SELECT network_id, state AS kind, COUNT(*) AS amount FROM jobs WHERE create_time_ms >= @since AND state IN (@completed, @failed) GROUP BY network_id, state",
            new { since, completed = (int)JobState.Completed, failed = (int)JobState.Failed }, ct));
        var credits = await c.QueryAsync<CountRow>(Database.Command(
            "SELECT network_id, event_type AS kind, CAST(SUM(ABS(amount_micro)) AS BIGINT) AS amount FROM ledger_events WHERE create_time_ms >= @day AND event_type IN (@minted, @burned) GROUP BY network_id, event_type",
            new { day, minted = (int)LedgerEventType.CreditsMinted, burned = (int)LedgerEventType.CreditsBurned }, ct));
        var devices = await c.QueryAsync<DeviceRef>(Database.Command(
            "SELECT network_id, device_id FROM devices WHERE revoked = FALSE", null, ct));

        var result = new Dictionary<string, NetworkGauges>(StringComparer.Ordinal);
        NetworkGauges Of(string id) => result.TryGetValue(id, out var g) ? g : NetworkGauges.Empty;
        foreach (var row in jobs)
        {
            var g = Of(row.NetworkId);
            result[row.NetworkId] = row.Kind == (int)JobState.Completed ? g with { Completed = g.Completed + row.Amount } : g with { Failed = g.Failed + row.Amount };
        }

        foreach (var row in credits)
        {
            var g = Of(row.NetworkId);
            result[row.NetworkId] = row.Kind == (int)LedgerEventType.CreditsMinted ? g with { MintedMicro = g.MintedMicro + row.Amount } : g with { BurnedMicro = g.BurnedMicro + row.Amount };
        }

        foreach (var row in devices)
        {
            var g = Of(row.NetworkId);
            result[row.NetworkId] = g with { Devices = g.Devices + 1, Online = g.Online + (presence.GetOnline(row.DeviceId, now) is null ? 0 : 1) };
        }

        return result;
    }

    private sealed class CountRow
    {
        public string NetworkId { get; set; } = "";

        public long Kind { get; set; }

        public long Amount { get; set; }
    }

    private sealed class DeviceRef
    {
        public string NetworkId { get; set; } = "";

        public string DeviceId { get; set; } = "";
    }
}

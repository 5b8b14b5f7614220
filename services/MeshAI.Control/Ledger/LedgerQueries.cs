using Google.Protobuf.WellKnownTypes;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Ledger;

/// <summary>Balances and event pages derived from the append-only ledger.</summary>
public sealed class LedgerQueries(LedgerRepository ledger, NetworkRepository networks, DeviceRepository devices)
{
    /// <summary>Pool, per-member and per-device balances; minted vs burned.</summary>
    public async Task<Balances> GetBalancesAsync(string networkId, bool sharedPoolEnabled, CancellationToken ct)
    {
        var aggregates = (await ledger.AggregateAsync(networkId, ct)).ToList();
        var balances = new Balances { NetworkId = networkId, SharedPoolEnabled = sharedPoolEnabled };
        var members = new Dictionary<string, MemberBalance>(StringComparer.Ordinal);
        foreach (var m in await networks.ListMembersAsync(networkId, ct))
        {
            members[m.UserId] = new MemberBalance { UserId = m.UserId, Email = m.Email };
        }

        var deviceBalances = new Dictionary<string, DeviceBalance>(StringComparer.Ordinal);
        foreach (var a in aggregates)
        {
            var type = (LedgerEventType)a.EventType;
            var kind = (AccountKind)a.AccountKind;
            if (kind == AccountKind.Pool)
            {
                balances.PoolBalanceMicro += a.AmountMicro;
            }
            else if (kind == AccountKind.Member && a.UserId.Length > 0)
            {
                if (!members.TryGetValue(a.UserId, out var member))
                {
                    member = members[a.UserId] = new MemberBalance { UserId = a.UserId };
                }

                member.BalanceMicro += a.AmountMicro;
                if (type == LedgerEventType.CreditsMinted)
                {
                    member.MintedMicro += a.AmountMicro;
                }
            }

            // Burns are attributed to the submitter even when paid from the pool.
            if (type == LedgerEventType.CreditsBurned && a.UserId.Length > 0)
            {
                if (!members.TryGetValue(a.UserId, out var burner))
                {
                    burner = members[a.UserId] = new MemberBalance { UserId = a.UserId };
                }

                burner.BurnedMicro += -a.AmountMicro;
            }

            switch (type)
            {
                case LedgerEventType.CreditsMinted:
                    balances.MintedTotalMicro += a.AmountMicro;
                    if (a.DeviceId.Length > 0)
                    {
                        if (!deviceBalances.TryGetValue(a.DeviceId, out var device))
                        {
                            device = deviceBalances[a.DeviceId] = new DeviceBalance { DeviceId = a.DeviceId, OwnerUserId = a.UserId };
                        }

                        device.MintedMicro += a.AmountMicro;
                        device.RuntimeMs += a.RuntimeMs;
                        device.Jobs += (int)a.Events;
                    }

                    break;
                case LedgerEventType.CreditsBurned:
                    balances.BurnedTotalMicro += -a.AmountMicro;
                    break;
                case LedgerEventType.CreditsGranted:
                    balances.GrantedTotalMicro += a.AmountMicro;
                    break;
            }
        }

        foreach (var row in await devices.GetDevicesAsync(networkId, deviceBalances.Keys.ToList(), ct))
        {
            deviceBalances[row.DeviceId].DeviceName = row.Name;
        }

        balances.Members.AddRange(members.Values.OrderBy(m => m.UserId, StringComparer.Ordinal));
        balances.Devices.AddRange(deviceBalances.Values.OrderBy(d => d.DeviceId, StringComparer.Ordinal));
        return balances;
    }

    /// <summary>
    /// What a submitter can spend: the pool's balance when the network shares one, else the member's — one running-balance row
    /// (ledger_balances, kept in the settlement transactions), not an aggregate over the network's history.
    /// </summary>
    public Task<long> AvailableAsync(string networkId, bool sharedPoolEnabled, string userId, CancellationToken ct) =>
        ledger.BalanceAsync(networkId, sharedPoolEnabled, userId, ct);

    /// <summary>One page of events after the sequence cursor (before it, newest first, with <paramref name="newestFirst"/>).</summary>
    public async Task<(IReadOnlyList<LedgerEvent> Events, long? NextAfter)> ListEventsAsync(string networkId, string? jobId, long afterSequence, int pageSize, CancellationToken ct, bool newestFirst = false)
    {
        var job = string.IsNullOrEmpty(jobId) ? null : jobId;
        var rows = (newestFirst
            ? await ledger.ListNewestFirstAsync(networkId, job, afterSequence, pageSize + 1, ct)
            : await ledger.ListAsync(networkId, job, afterSequence, pageSize + 1, ct)).ToList();
        var page = rows.Take(pageSize).Select(ToProto).ToList();
        return (page, rows.Count > pageSize ? page[^1].Sequence : null);
    }

    /// <summary>Maps a stored event.</summary>
    public static LedgerEvent ToProto(LedgerEventRow e) => new()
    {
        Sequence = e.Sequence,
        EventId = e.EventId,
        NetworkId = e.NetworkId,
        EventType = (LedgerEventType)e.EventType,
        JobId = e.JobId,
        ChunkId = e.ChunkId,
        UserId = e.UserId,
        DeviceId = e.DeviceId,
        AccountKind = (AccountKind)e.AccountKind,
        AmountMicro = e.AmountMicro,
        RuntimeMs = e.RuntimeMs,
        BilledRuntimeMs = e.BilledRuntimeMs,
        Tier = (Tier)e.Tier,
        IdempotencyKey = e.IdempotencyKey,
        CreateTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(e.CreateTimeMs)),
        RelayBytes = e.RelayBytes,
    };
}

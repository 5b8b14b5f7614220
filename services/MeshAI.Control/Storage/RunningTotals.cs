using System.Data.Common;
using System.Globalization;
using System.Text;
using Dapper;

namespace MeshAI.Control.Storage;

/// <summary>
/// The shared running totals one or more settlements move — each network's relay bytes of the month (relay_usage) and each
/// account's balance (ledger_balances) — summed per row, then written by ONE command at the end of the settling transaction
/// (<see cref="ApplyAsync"/>). These rows are shared by every settlement of a network, so on PostgreSQL they are the first
/// lock wait at high concurrency: they are taken last (held for one command and the commit only) and in one fixed order
/// (relay_usage by network and month, then ledger_balances by network, account kind and user, ordinal), so concurrent
/// transactions cannot deadlock on them. A settlement group commit (<c>SettlementBatcher</c>) adds a whole batch here and
/// takes each row once per batch instead of once per job (#11).
/// </summary>
public sealed class RunningTotals
{
    private readonly SortedDictionary<(string NetworkId, long MonthStartMs), long> _relay = new(RelayOrder.Instance);
    private readonly SortedDictionary<(string NetworkId, int AccountKind, string UserId), long> _balances = new(BalanceOrder.Instance);

    /// <summary>True when nothing was added (no command to send).</summary>
    public bool IsEmpty => _relay.Count == 0 && _balances.Count == 0;

    /// <summary>relay_usage rows this will write (tests and stats).</summary>
    public int RelayRows => _relay.Count;

    /// <summary>ledger_balances rows this will write.</summary>
    public int BalanceRows => _balances.Count;

    /// <summary>Adds a settlement's relay bytes to its network's month (the row is written even for 0 bytes, as one settlement always did).</summary>
    public void AddRelay(JobMeteringRow metering)
    {
        ArgumentNullException.ThrowIfNull(metering);
        var key = (metering.NetworkId, LedgerRepository.MonthStartMs(metering.CreateTimeMs));
        _relay[key] = _relay.GetValueOrDefault(key) + metering.RelayBytes;
    }

    /// <summary>Adds the amounts of freshly inserted events to their accounts (amount-free job events move no balance).</summary>
    public void AddEvents(IEnumerable<LedgerEventRow> inserted)
    {
        ArgumentNullException.ThrowIfNull(inserted);
        foreach (var e in inserted)
        {
            if (e.AmountMicro != 0 && LedgerRepository.BalanceAccount(e) is { } account)
            {
                var key = (e.NetworkId, account.AccountKind, account.UserId);
                _balances[key] = _balances.GetValueOrDefault(key) + e.AmountMicro;
            }
        }
    }

    /// <summary>Writes every total in one command (one round trip on PostgreSQL), in the fixed lock order; nothing when empty.</summary>
    public async Task ApplyAsync(DbConnection c, DbTransaction tx, CancellationToken ct)
    {
        if (IsEmpty)
        {
            return;
        }

        var sql = new StringBuilder();
        var parameters = new DynamicParameters();
        var i = 0;
        foreach (var ((networkId, month), bytes) in _relay)
        {
            var n = i++.ToString(CultureInfo.InvariantCulture);
            sql.Append("INSERT INTO relay_usage (network_id, month_start_ms, relay_bytes) VALUES (@rn" + n + ", @rm" + n + ", @rb" + n + ") " +
                "ON CONFLICT (network_id, month_start_ms) DO UPDATE SET relay_bytes = relay_usage.relay_bytes + excluded.relay_bytes;");
            parameters.Add("rn" + n, networkId);
            parameters.Add("rm" + n, month);
            parameters.Add("rb" + n, bytes);
        }

        i = 0;
        foreach (var ((networkId, kind, userId), amount) in _balances)
        {
            var n = i++.ToString(CultureInfo.InvariantCulture);
            sql.Append("INSERT INTO ledger_balances (network_id, account_kind, user_id, balance_micro) VALUES (@bn" + n + ", @bk" + n + ", @bu" + n + ", @ba" + n + ") " +
                "ON CONFLICT (network_id, account_kind, user_id) DO UPDATE SET balance_micro = ledger_balances.balance_micro + excluded.balance_micro;");
            parameters.Add("bn" + n, networkId);
            parameters.Add("bk" + n, kind);
            parameters.Add("bu" + n, userId);
            parameters.Add("ba" + n, amount);
        }

        await c.ExecuteAsync(Database.Command(sql.ToString(), parameters, ct, tx));
    }

    private sealed class RelayOrder : IComparer<(string NetworkId, long MonthStartMs)>
    {
        public static readonly RelayOrder Instance = new();

        public int Compare((string NetworkId, long MonthStartMs) x, (string NetworkId, long MonthStartMs) y)
        {
            var byNetwork = string.CompareOrdinal(x.NetworkId, y.NetworkId);
            return byNetwork != 0 ? byNetwork : x.MonthStartMs.CompareTo(y.MonthStartMs);
        }
    }

    private sealed class BalanceOrder : IComparer<(string NetworkId, int AccountKind, string UserId)>
    {
        public static readonly BalanceOrder Instance = new();

        public int Compare((string NetworkId, int AccountKind, string UserId) x, (string NetworkId, int AccountKind, string UserId) y)
        {
            var byNetwork = string.CompareOrdinal(x.NetworkId, y.NetworkId);
            if (byNetwork != 0)
            {
                return byNetwork;
            }

            var byKind = x.AccountKind.CompareTo(y.AccountKind);
            return byKind != 0 ? byKind : string.CompareOrdinal(x.UserId, y.UserId);
        }
    }
}

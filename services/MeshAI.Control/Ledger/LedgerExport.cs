using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using MeshAI.Common.Domain;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Ledger;

/// <summary>
/// ExportLedger: the network's events in sequence order as JSON lines or RFC 4180 CSV (header first), with the spec's event
/// names (credits_minted, credits_burned, job_started, job_completed, job_failed; plus credits_granted). Amounts stay integer
/// micro-credits; times are ISO 8601 UTC with milliseconds.
/// </summary>
public sealed class LedgerExport(LedgerRepository ledger)
{
    /// <summary>The columns of both formats, in order.</summary>
    public static readonly IReadOnlyList<string> Columns =
    [
        "sequence", "event_id", "create_time", "network_id", "event_type", "job_id", "chunk_id", "user_id", "device_id", "account",
        "amount_micro", "runtime_ms", "billed_runtime_ms", "tier", "relay_bytes", "idempotency_key",
    ];

    /// <summary>Export chunks (each a whole number of lines) of events created at or after <paramref name="sinceMs"/>.</summary>
    public async IAsyncEnumerable<byte[]> ExportAsync(string networkId, ExportFormat format, long sinceMs, int batchSize, [EnumeratorCancellation] CancellationToken ct)
    {
        var csv = format == ExportFormat.Csv;
        if (csv)
        {
            yield return Encoding.UTF8.GetBytes(CsvHeader());
        }

        var after = 0L;
        while (true)
        {
            var rows = (await ledger.ListSinceAsync(networkId, sinceMs, after, batchSize, ct)).ToList();
            if (rows.Count == 0)
            {
                yield break;
            }

            var text = new StringBuilder();
            foreach (var row in rows)
            {
                text.Append(csv ? CsvLine(row) : JsonLine(row));
            }

            yield return Encoding.UTF8.GetBytes(text.ToString());
            after = rows[^1].Sequence;
            if (rows.Count < batchSize)
            {
                yield break;
            }
        }
    }

    /// <summary>The spec's name of an event type ("credits_minted").</summary>
    public static string EventName(LedgerEventType type) => type switch
    {
        LedgerEventType.CreditsMinted => "credits_minted",
        LedgerEventType.CreditsBurned => "credits_burned",
        LedgerEventType.JobStarted => "job_started",
        LedgerEventType.JobCompleted => "job_completed",
        LedgerEventType.JobFailed => "job_failed",
        LedgerEventType.CreditsGranted => "credits_granted",
        _ => "unspecified",
    };

    /// <summary>"pool", "member" or "" for events that move no money.</summary>
    public static string AccountName(AccountKind kind) => kind switch
    {
        AccountKind.Pool => "pool",
        AccountKind.Member => "member",
        _ => "",
    };

    /// <summary>The CSV header line.</summary>
    public static string CsvHeader() => string.Join(",", Columns) + "\r\n";

    /// <summary>One CSV line (CRLF-terminated).</summary>
    public static string CsvLine(LedgerEventRow e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return string.Join(",", Values(e).Select(v => Csv(v))) + "\r\n";
    }

    /// <summary>One JSON line (LF-terminated); numbers stay JSON integers.</summary>
    public static string JsonLine(LedgerEventRow e)
    {
        ArgumentNullException.ThrowIfNull(e);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("sequence", e.Sequence);
            json.WriteString("event_id", e.EventId);
            json.WriteString("create_time", Time(e.CreateTimeMs));
            json.WriteString("network_id", e.NetworkId);
            json.WriteString("event_type", EventName((LedgerEventType)e.EventType));
            json.WriteString("job_id", e.JobId);
            json.WriteString("chunk_id", e.ChunkId);
            json.WriteString("user_id", e.UserId);
            json.WriteString("device_id", e.DeviceId);
            json.WriteString("account", AccountName((AccountKind)e.AccountKind));
            json.WriteNumber("amount_micro", e.AmountMicro);
            json.WriteNumber("runtime_ms", e.RuntimeMs);
            json.WriteNumber("billed_runtime_ms", e.BilledRuntimeMs);
            json.WriteString("tier", e.Tier == 0 ? "" : Tiers.Name((Tier)e.Tier));
            json.WriteNumber("relay_bytes", e.RelayBytes);
            json.WriteString("idempotency_key", e.IdempotencyKey);
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static IEnumerable<string> Values(LedgerEventRow e) =>
    [
        Int(e.Sequence), e.EventId, Time(e.CreateTimeMs), e.NetworkId, EventName((LedgerEventType)e.EventType), e.JobId, e.ChunkId, e.UserId, e.DeviceId,
        AccountName((AccountKind)e.AccountKind), Int(e.AmountMicro), Int(e.RuntimeMs), Int(e.BilledRuntimeMs), e.Tier == 0 ? "" : Tiers.Name((Tier)e.Tier),
        Int(e.RelayBytes), e.IdempotencyKey,
    ];

    private static string Int(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static string Csv(string value) =>
        value.IndexOfAny([',', '"', '\r', '\n']) >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
}

using System.Globalization;
using System.Text;
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common;
using MeshAI.Contracts.Audit.V1;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Security;

/// <summary>
/// The append-only security audit log: login, invite, approval, role change, removal, device join/revoke, key rotation,
/// policy and settings changes, API keys. Rows are never updated or deleted (the migration adds triggers that refuse it).
/// Entries are bounded (<see cref="SecurityOptions.AuditTargetChars"/>, <see cref="SecurityOptions.AuditDetails"/>,
/// <see cref="SecurityOptions.AuditDetailChars"/>; longer values are cut with "…"), so no caller-supplied text can make a page of
/// the log or its export exceed the message size limit.
/// </summary>
public sealed partial class AuditLog(SecurityRepository store, TimeProvider clock, ILogger<AuditLog> logger, Microsoft.Extensions.Options.IOptions<SecurityOptions> options)
{
    private static readonly AsyncLocal<string?> CurrentRemote = new();

    /// <summary>The peer address of the call being served (set by the authorisation interceptor), recorded with events.</summary>
    public static string? RemoteAddress
    {
        get => CurrentRemote.Value;
        set => CurrentRemote.Value = value;
    }

    /// <summary>Appends one event. <paramref name="networkId"/> is empty for platform-level events (login).</summary>
    public async Task RecordAsync(string networkId, string actorUserId, AuditAction action, string target, IReadOnlyDictionary<string, string>? details, CancellationToken ct)
    {
        var limits = options.Value;
        var bounded = (details ?? new Dictionary<string, string>())
            .Take(limits.AuditDetails)
            .ToDictionary(d => Cut(d.Key, 64), d => Cut(d.Value ?? "", limits.AuditDetailChars), StringComparer.Ordinal);
        var row = new AuditEventRow
        {
            EventId = Ids.New("aud"),
            NetworkId = networkId ?? "",
            ActorUserId = actorUserId ?? "",
            Action = (int)action,
            Target = Cut(target ?? "", limits.AuditTargetChars),
            DetailsJson = JsonSerializer.Serialize(bounded),
            TimeMs = clock.GetUtcNow().ToUnixTimeMilliseconds(),
            RemoteAddress = RemoteAddress ?? "",
        };
        await store.AppendAuditAsync(row, ct);
        LogRecorded(logger, action, row.NetworkId, row.ActorUserId, row.Target);
    }

    /// <summary><paramref name="value"/> cut to <paramref name="max"/> characters (the last one an ellipsis).</summary>
    public static string Cut(string value, int max) =>
        string.IsNullOrEmpty(value) || value.Length <= max ? value ?? "" : value[..(max - 1)] + "…";

    /// <summary>A page of the network's events in order; the page token is the last sequence seen.</summary>
    public async Task<(IReadOnlyList<AuditEvent> Events, string NextPageToken)> ListAsync(string networkId, int pageSize, string pageToken, CancellationToken ct)
    {
        var after = PageTokens.DecodeId(pageToken) is { Length: > 0 } text && long.TryParse(text, CultureInfo.InvariantCulture, out var seq) ? seq : 0;
        var rows = (await store.ListAuditAsync(networkId, after, pageSize + 1, ct)).ToList();
        var page = rows.Take(pageSize).Select(ToProto).ToList();
        var next = rows.Count > pageSize ? PageTokens.EncodeId(rows[pageSize - 1].Sequence.ToString(CultureInfo.InvariantCulture)) : "";
        return (page, next);
    }

    /// <summary>Every event of the network rendered as JSONL or CSV, in chunks.</summary>
    public async IAsyncEnumerable<byte[]> ExportAsync(string networkId, AuditExportFormat format, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var csv = format == AuditExportFormat.Csv;
        if (csv)
        {
            yield return Encoding.UTF8.GetBytes("sequence,event_id,network_id,actor_user_id,action,target,details,time,remote_address\n");
        }

        long after = 0;
        while (true)
        {
            var rows = (await store.ListAuditAsync(networkId, after, 500, ct)).ToList();
            if (rows.Count == 0)
            {
                yield break;
            }

            var chunk = new StringBuilder();
            foreach (var row in rows)
            {
                chunk.Append(csv ? CsvLine(row) : JsonLine(row)).Append('\n');
            }

            yield return Encoding.UTF8.GetBytes(chunk.ToString());
            after = rows[^1].Sequence;
        }
    }

    /// <summary>The proto form of a row.</summary>
    public static AuditEvent ToProto(AuditEventRow row)
    {
        var e = new AuditEvent
        {
            Sequence = row.Sequence,
            EventId = row.EventId,
            NetworkId = row.NetworkId,
            ActorUserId = row.ActorUserId,
            Action = (AuditAction)row.Action,
            Target = row.Target,
            Time = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(row.TimeMs)),
            RemoteAddress = row.RemoteAddress,
        };
        foreach (var (k, v) in Details(row))
        {
            e.Details[k] = v;
        }

        return e;
    }

    private static Dictionary<string, string> Details(AuditEventRow row) =>
        JsonSerializer.Deserialize<Dictionary<string, string>>(string.IsNullOrEmpty(row.DetailsJson) ? "{}" : row.DetailsJson) ?? [];

    private static string Time(AuditEventRow row) => DateTimeOffset.FromUnixTimeMilliseconds(row.TimeMs).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);

    private static string ActionName(AuditEventRow row) => ((AuditAction)row.Action).ToString();

    private static string JsonLine(AuditEventRow row) => JsonSerializer.Serialize(new SortedDictionary<string, object>(StringComparer.Ordinal)
    {
        ["sequence"] = row.Sequence,
        ["event_id"] = row.EventId,
        ["network_id"] = row.NetworkId,
        ["actor_user_id"] = row.ActorUserId,
        ["action"] = ActionName(row),
        ["target"] = row.Target,
        ["details"] = Details(row),
        ["time"] = Time(row),
        ["remote_address"] = row.RemoteAddress,
    });

    private static string CsvLine(AuditEventRow row) => string.Join(',',
        row.Sequence.ToString(CultureInfo.InvariantCulture), Csv(row.EventId), Csv(row.NetworkId), Csv(row.ActorUserId), Csv(ActionName(row)), Csv(row.Target),
        Csv(JsonSerializer.Serialize(Details(row))), Csv(Time(row)), Csv(row.RemoteAddress));

    // RFC 4180 quoting; a leading formula character is neutralised so spreadsheets do not execute it.
    private static string Csv(string value)
    {
        if (value.Length > 0 && "=+-@".Contains(value[0], StringComparison.Ordinal))
        {
            value = "'" + value;
        }

        return value.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Audit {Action} network={NetworkId} actor={ActorUserId} target={Target}")]
    private static partial void LogRecorded(ILogger logger, AuditAction action, string networkId, string actorUserId, string target);
}

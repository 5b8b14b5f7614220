using Google.Protobuf;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Api;

/// <summary>meshai.ledger.v1.LedgerService: balances, events, export, reconcile and credit rates.</summary>
public sealed class LedgerApi(
    LedgerQueries ledger,
    LedgerReconciler reconciler,
    LedgerExport export,
    CreditRates rates,
    NetworkAccess access,
    SessionAuthenticator auth,
    IOptions<ControlPlaneOptions> options) : LedgerService.LedgerServiceBase
{
    /// <inheritdoc />
    public override async Task<GetBalancesResponse> GetBalances(GetBalancesRequest request, ServerCallContext context)
    {
        var membership = await access.RequireMemberAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        return new GetBalancesResponse { Balances = await ledger.GetBalancesAsync(request.NetworkId, membership.Settings.Credits.SharedPoolEnabled, context.CancellationToken) };
    }

    /// <inheritdoc />
    public override async Task<ListLedgerEventsResponse> ListLedgerEvents(ListLedgerEventsRequest request, ServerCallContext context)
    {
        await access.RequireMemberAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        var after = PageTokens.DecodeId(request.PageToken) is { Length: > 0 } text && long.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var seq) ? seq : 0;
        var (events, next) = await ledger.ListEventsAsync(request.NetworkId, request.JobId, after, PageTokens.Size(request.PageSize, options.Value.Limits), context.CancellationToken, request.NewestFirst);
        return new ListLedgerEventsResponse
        {
            Events = { events },
            NextPageToken = next is { } n ? PageTokens.EncodeId(n.ToString(System.Globalization.CultureInfo.InvariantCulture)) : "",
        };
    }

    /// <inheritdoc />
    public override async Task ExportLedger(ExportLedgerRequest request, IServerStreamWriter<ExportLedgerResponse> responseStream, ServerCallContext context)
    {
        await access.RequireMemberAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        var format = request.Format == ExportFormat.Unspecified ? ExportFormat.Jsonl : request.Format;
        if (format is not (ExportFormat.Jsonl or ExportFormat.Csv))
        {
            throw RpcErrors.InvalidArgument("format", "EXPORT_FORMAT_JSONL or EXPORT_FORMAT_CSV");
        }

        var since = request.Since is { } ts ? ts.ToDateTimeOffset().ToUnixTimeMilliseconds() : long.MinValue;
        await foreach (var chunk in export.ExportAsync(request.NetworkId, format, since, options.Value.Ledger.ExportBatchSize, context.CancellationToken))
        {
            await responseStream.WriteAsync(new ExportLedgerResponse { Data = ByteString.CopyFrom(chunk) }, context.CancellationToken);
        }
    }

    /// <inheritdoc />
    public override async Task<ReconcileLedgerResponse> ReconcileLedger(ReconcileLedgerRequest request, ServerCallContext context)
    {
        var membership = await access.RequireMemberAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        return await reconciler.ReconcileAsync(request.NetworkId, membership.Settings.Credits.SharedPoolEnabled, context.CancellationToken);
    }

    /// <inheritdoc />
    public override async Task<GetCreditRatesResponse> GetCreditRates(GetCreditRatesRequest request, ServerCallContext context)
    {
        var membership = await access.RequireMemberAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        var credits = membership.Settings.Credits;
        return new GetCreditRatesResponse { TierRates = { Effective(credits) }, MultiplierBps = credits.MultiplierBps, BillingGranularityMs = credits.BillingGranularityMs };
    }

    /// <inheritdoc />
    public override async Task<UpdateCreditRatesResponse> UpdateCreditRates(UpdateCreditRatesRequest request, ServerCallContext context)
    {
        var membership = await access.RequireMemberAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        if (!membership.IsAdmin)
        {
            throw RpcErrors.PermissionDenied("only network admins can change credit rates", ErrorReasons.AdminRequired);
        }

        var credits = await rates.UpdateAsync(request.NetworkId, request, context.CancellationToken);
        return new UpdateCreditRatesResponse { TierRates = { Effective(credits) }, MultiplierBps = credits.MultiplierBps, BillingGranularityMs = credits.BillingGranularityMs };
    }

    private static IEnumerable<MeshAI.Contracts.Common.V1.TierRate> Effective(MeshAI.Contracts.Network.V1.CreditSettings credits) =>
        Enum.GetValues<MeshAI.Contracts.Common.V1.Tier>().Where(t => t != MeshAI.Contracts.Common.V1.Tier.Unspecified).Select(t => CreditCalculator.RateFor(credits, t).Clone());
}

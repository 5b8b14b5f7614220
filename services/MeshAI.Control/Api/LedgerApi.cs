using Grpc.Core;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Api;

/// <summary>meshai.ledger.v1.LedgerService: balances, events and rates (export, reconcile and rate updates arrive later).</summary>
public sealed class LedgerApi(LedgerQueries ledger, NetworkAccess access, SessionAuthenticator auth, IOptions<ControlPlaneOptions> options) : LedgerService.LedgerServiceBase
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
        var (events, next) = await ledger.ListEventsAsync(request.NetworkId, request.JobId, after, PageTokens.Size(request.PageSize, options.Value.Limits), context.CancellationToken);
        return new ListLedgerEventsResponse
        {
            Events = { events },
            NextPageToken = next is { } n ? PageTokens.EncodeId(n.ToString(System.Globalization.CultureInfo.InvariantCulture)) : "",
        };
    }

    /// <inheritdoc />
    public override async Task<GetCreditRatesResponse> GetCreditRates(GetCreditRatesRequest request, ServerCallContext context)
    {
        var membership = await access.RequireMemberAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        var credits = membership.Settings.Credits;
        return new GetCreditRatesResponse { TierRates = { credits.TierRates }, MultiplierBps = credits.MultiplierBps, BillingGranularityMs = credits.BillingGranularityMs };
    }
}

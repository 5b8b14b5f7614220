using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common;
using MeshAI.Common.Domain;
using MeshAI.Common.Errors;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Ledger;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Networks;

/// <summary>Creates networks (admin = creator, default settings, fresh keys, starting grant) and lists them with live counts.</summary>
public sealed class NetworkRegistry(
    Database database,
    NetworkRepository networks,
    NetworkAccess access,
    NetworkKeyVault keys,
    LedgerQueries ledger,
    IPresenceDirectory presence,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock,
    JobBudget budget,
    NetworkSettingsRules rules)
{
    /// <summary>Creates a network owned by the caller.</summary>
    public async Task<Network> CreateAsync(Caller caller, CreateNetworkRequest request, CancellationToken ct)
    {
        var name = (request.Name ?? "").Trim();
        if (name.Length == 0)
        {
            throw RpcErrors.Required("name");
        }

        var visibility = request.Visibility == NetworkVisibility.Unspecified ? NetworkVisibility.Private : request.Visibility;
        if (visibility != NetworkVisibility.Private)
        {
            throw RpcErrors.InvalidArgument("visibility", "only PRIVATE networks exist in v1");
        }

        var billing = request.BillingMode == BillingMode.Unspecified ? BillingMode.CreditsInternal : request.BillingMode;
        if (billing != BillingMode.CreditsInternal)
        {
            throw RpcErrors.InvalidArgument("billing_mode", "only CREDITS_INTERNAL exists in v1");
        }

        await budget.EnsureCanCreateNetworkAsync(caller.UserId, ct);
        var grant = options.Value.Limits.StartingGrantCredits * Tiers.MicroPerCredit;
        var settings = rules.Validate(NetworkDefaults.WithOverrides(grant, request.Settings));
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var row = new NetworkRow
        {
            NetworkId = Ids.New("net"),
            Name = name,
            Visibility = (int)visibility,
            BillingMode = (int)billing,
            CreatedByUserId = caller.UserId,
            CreateTimeMs = now,
            SettingsJson = NetworkDefaults.ToJson(settings),
        };

        await database.InTransactionAsync(async (c, tx) =>
        {
            await NetworkRepository.InsertNetworkAsync(c, tx, row, ct);
            await NetworkRepository.InsertMemberAsync(c, tx, new MemberRow
            {
                NetworkId = row.NetworkId, UserId = caller.UserId, Role = (int)Role.Admin, State = (int)MemberState.Active, JoinTimeMs = now,
            }, ct);
            await keys.CreateKeysAsync(c, tx, row.NetworkId, ct);
            var startingGrant = settings.Credits.StartingGrantMicro;
            if (startingGrant > 0)
            {
                await LedgerRepository.AppendAsync(c, tx, new LedgerEventRow
                {
                    EventId = Ids.New("lev"),
                    NetworkId = row.NetworkId,
                    EventType = (int)LedgerEventType.CreditsGranted,
                    UserId = caller.UserId,
                    AccountKind = (int)(settings.Credits.SharedPoolEnabled ? AccountKind.Pool : AccountKind.Member),
                    AmountMicro = startingGrant,
                    IdempotencyKey = LedgerKeys.StartingGrant(row.NetworkId),
                    CreateTimeMs = now,
                }, ct);
            }

            return 0;
        }, ct);

        return await DescribeAsync(new Membership(row, settings, Role.Admin), caller, ct);
    }

    /// <summary>One network the caller belongs to.</summary>
    public async Task<Network> GetAsync(Caller caller, string networkId, CancellationToken ct) =>
        await DescribeAsync(await access.RequireMemberAsync(caller, networkId, ct), caller, ct);

    /// <summary>The caller's networks, in creation order, paged by an opaque cursor.</summary>
    public async Task<(IReadOnlyList<Network> Networks, string NextPageToken)> ListAsync(Caller caller, int pageSize, string pageToken, CancellationToken ct)
    {
        var (afterTime, afterId) = PageTokens.DecodeTimeId(pageToken, long.MinValue, "");
        var rows = (await networks.ListNetworksForUserAsync(caller.UserId, (int)MemberState.Active, afterTime, afterId, pageSize + 1, ct)).ToList();
        var result = new List<Network>();
        foreach (var row in rows.Take(pageSize))
        {
            var member = await networks.GetMemberAsync(row.NetworkId, caller.UserId, ct);
            result.Add(await DescribeAsync(new Membership(row, NetworkDefaults.FromJson(row.SettingsJson), (Role)(member?.Role ?? 0)), caller, ct));
        }

        var next = rows.Count > pageSize ? PageTokens.EncodeTimeId(rows[pageSize - 1].CreateTimeMs, rows[pageSize - 1].NetworkId) : "";
        return (result, next);
    }

    private async Task<Network> DescribeAsync(Membership membership, Caller caller, CancellationToken ct)
    {
        var row = membership.Network;
        var keySet = await keys.GetKeysAsync(row.NetworkId, ct);
        var balances = await ledger.GetBalancesAsync(row.NetworkId, membership.Settings.Credits.SharedPoolEnabled, ct);
        var callerBalance = balances.Members.FirstOrDefault(m => m.UserId == caller.UserId)?.BalanceMicro ?? 0;
        return new Network
        {
            NetworkId = row.NetworkId,
            Name = row.Name,
            Visibility = (NetworkVisibility)row.Visibility,
            BillingMode = (BillingMode)row.BillingMode,
            CreatedByUserId = row.CreatedByUserId,
            CreateTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(row.CreateTimeMs)),
            Settings = membership.Settings,
            OnlineDevicesCount = presence.ListOnline(row.NetworkId, clock.GetUtcNow()).Count,
            CreditBalanceSummary = new CreditBalanceSummary
            {
                PoolBalanceMicro = balances.PoolBalanceMicro,
                CallerBalanceMicro = callerBalance,
                MintedTotalMicro = balances.MintedTotalMicro,
                BurnedTotalMicro = balances.BurnedTotalMicro,
            },
            CallerRole = membership.Role,
            CaPublicKey = ByteString.CopyFrom(keySet.Ca.PublicKey),
            CaKeyId = keySet.CaKeyId,
            ControlPublicKey = ByteString.CopyFrom(keySet.Control.PublicKey),
            ControlKeyId = keySet.ControlKeyId,
        };
    }
}

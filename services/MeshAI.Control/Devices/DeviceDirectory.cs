using MeshAI.Common.Errors;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Devices;

/// <summary>The devices of a network with live presence; rename, contribution toggles, pins and revocation.</summary>
public sealed class DeviceDirectory(
    DeviceRepository devices,
    NetworkAccess access,
    IPresenceDirectory presence,
    IJobDispatcher dispatcher,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock,
    ILogger<DeviceDirectory> logger,
    MeshAI.Control.Security.AuditLog audit,
    NetworkUpdates updates,
    LedgerRepository ledger)
{
    /// <summary>One device of a network the caller belongs to.</summary>
    public async Task<Device> GetAsync(Caller caller, string networkId, string deviceId, CancellationToken ct)
    {
        await access.RequireMemberAsync(caller, networkId, ct);
        var row = await RequireDeviceAsync(networkId, deviceId, ct);
        return Card(row, await ledger.NewestFlagReasonsAsync(networkId, ct));
    }

    /// <summary>A page of the network's devices ordered by id.</summary>
    public async Task<(IReadOnlyList<Device> Devices, string NextPageToken)> ListAsync(Caller caller, ListDevicesRequest request, CancellationToken ct)
    {
        await access.RequireMemberAsync(caller, request.NetworkId, ct);
        var size = PageTokens.Size(request.PageSize, options.Value.Limits);
        var rows = (await devices.ListDevicesAsync(request.NetworkId, PageTokens.DecodeId(request.PageToken), size + 1, ct)).ToList();
        var flags = await ledger.NewestFlagReasonsAsync(request.NetworkId, ct);
        var page = rows.Take(size).Select(r => Card(r, flags)).ToList();
        return (page, rows.Count > size ? PageTokens.EncodeId(rows[size - 1].DeviceId) : "");
    }

    /// <summary>Owner or admin: rename, contribution mode/toggle, pinned workloads.</summary>
    public async Task<Device> UpdateAsync(Caller caller, UpdateDeviceRequest request, CancellationToken ct)
    {
        var row = await RequireOwnerOrAdminAsync(caller, request.NetworkId, request.DeviceId, "change", ct);
        var name = (request.Name ?? "").Trim();
        if (name.Length > 0)
        {
            row.Name = name;
        }

        if (request.ContributionMode != ContributionMode.Unspecified)
        {
            row.ContributionMode = (int)request.ContributionMode;
        }

        if (request.HasContributionEnabled)
        {
            row.ContributionEnabled = request.ContributionEnabled;
        }

        if (request.ClearPinnedWorkloads)
        {
            if (request.PinnedWorkloads.Count > 0)
            {
                throw RpcErrors.InvalidArgument("pinned_workloads", "must be empty when clear_pinned_workloads is set");
            }

            row.PinnedWorkloads = "";
        }
        else if (request.PinnedWorkloads.Count > 0)
        {
            row.PinnedWorkloads = DeviceCards.PinnedWorkloadsText(request.PinnedWorkloads.Where(w => w != MeshAI.Contracts.Common.V1.WorkloadClass.Unspecified));
        }

        await devices.UpdateDeviceSettingsAsync(row, ct);
        return Card(row);
    }

    /// <summary>
    /// Owner or admin: denylists the certificate and cuts the live stream at once. Idempotent: revoking a revoked device
    /// cuts again (harmless) but keeps the first reason and writes no second audit event.
    /// </summary>
    public async Task<Device> RevokeAsync(Caller caller, RevokeDeviceRequest request, CancellationToken ct)
    {
        var row = await RequireOwnerOrAdminAsync(caller, request.NetworkId, request.DeviceId, "revoke", ct);
        var reason = string.IsNullOrWhiteSpace(request.Reason) ? "revoked by " + caller.UserId : request.Reason.Trim();
        var revokedNow = await devices.RevokeDeviceAsync(row.NetworkId, row.DeviceId, row.CertificateSerial, reason, clock.GetUtcNow().ToUnixTimeMilliseconds(), ct);
        dispatcher.Cut(row.DeviceId, CutReason.Revoked, reason);
        presence.Remove(row.DeviceId);
        if (revokedNow)
        {
            await updates.PublishRevokedAsync(row.NetworkId, [row.DeviceId], ct);
            logger.LogWarning("Device {DeviceId} in {NetworkId} revoked: {Reason}", row.DeviceId, row.NetworkId, reason);
            await audit.RecordAsync(row.NetworkId, caller.UserId, MeshAI.Contracts.Audit.V1.AuditAction.DeviceRevoked, row.DeviceId,
                new Dictionary<string, string> { ["reason"] = reason, ["serial"] = row.CertificateSerial }, ct);
        }

        row.Revoked = true;
        return Card(row);
    }

    private Device Card(DeviceRow row) => Card(row, null);

    private Device Card(DeviceRow row, IReadOnlyDictionary<string, string>? flags) =>
        DeviceCards.ToProto(row, row.Revoked ? null : presence.GetOnline(row.DeviceId, clock.GetUtcNow()), flags?.GetValueOrDefault(row.DeviceId) ?? "");

    private async Task<DeviceRow> RequireDeviceAsync(string networkId, string deviceId, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(deviceId))
        {
            throw RpcErrors.Required("device_id");
        }

        return await devices.GetDeviceAsync(networkId, deviceId, ct) ?? throw RpcErrors.NotFound("device", deviceId);
    }

    private async Task<DeviceRow> RequireOwnerOrAdminAsync(Caller caller, string networkId, string deviceId, string action, CancellationToken ct)
    {
        var membership = await access.RequireMemberAsync(caller, networkId, ct);
        var row = await RequireDeviceAsync(networkId, deviceId, ct);
        if (!membership.IsAdmin && row.OwnerUserId != caller.UserId)
        {
            throw RpcErrors.PermissionDenied($"only the device owner or an admin can {action} this device", ErrorReasons.OwnerOrAdminRequired);
        }

        return row;
    }
}

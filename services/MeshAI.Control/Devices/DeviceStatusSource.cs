using MeshAI.Common.Errors;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Devices;

/// <summary>
/// What a browser device's contributor page shows and enforces (WebRelayService.GetDeviceStatus): the network's
/// mobile-safety defaults, the admin's contribution switch, and the device's completed work and minted credits since
/// midnight UTC, read from the execution records and the ledger (the same rows reconcile checks).
/// </summary>
public sealed class DeviceStatusSource(
    DeviceRepository devices,
    NetworkRepository networks,
    LedgerRepository ledger,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock) : IDeviceStatusSource
{
    /// <inheritdoc />
    public async Task<GetDeviceStatusResponse> GetStatusAsync(DeviceIdentity device, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(device);
        var row = await devices.GetDeviceAsync(device.NetworkId, device.DeviceId, cancellationToken);
        var network = await networks.GetNetworkAsync(device.NetworkId, cancellationToken);
        if (row is null || network is null)
        {
            throw RpcErrors.NotFound("device", device.DeviceId);
        }

        var now = clock.GetUtcNow();
        var midnight = new DateTimeOffset(now.UtcDateTime.Date, TimeSpan.Zero).ToUnixTimeMilliseconds();
        var (settlements, minted) = await ledger.DeviceActivitySinceAsync(device.NetworkId, device.DeviceId, midnight, (int)LedgerEventType.CreditsMinted, cancellationToken);
        return new GetDeviceStatusResponse
        {
            MobileSafety = NetworkDefaults.FromJson(network.SettingsJson).MobileSafety,
            ContributionEnabled = row.ContributionEnabled,
            JobsCompletedToday = (int)Math.Min(int.MaxValue, settlements),
            MintedTodayMicro = minted,
            BatteryMintCapBps = options.Value.Ledger.MobileMintCapBps,
            DeviceName = row.Name,
            NetworkName = network.Name,
        };
    }
}

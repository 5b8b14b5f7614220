using Grpc.Core;
using MeshAI.Contracts.Device.V1;
using MeshAI.Control.Devices;
using MeshAI.Control.Identity;

namespace MeshAI.Control.Api;

/// <summary>meshai.device.v1.DeviceService: join tokens, registration, pairing, the device list, updates and revocation.</summary>
public sealed class DeviceApi(DeviceEnrollment enrollment, DeviceDirectory directory, SessionAuthenticator auth, CertificateRenewal renewal) : DeviceService.DeviceServiceBase
{
    /// <inheritdoc />
    public override async Task<CreateJoinTokenResponse> CreateJoinToken(CreateJoinTokenRequest request, ServerCallContext context) =>
        await enrollment.CreateJoinTokenAsync(await auth.RequireAsync(context), request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<RegisterDeviceResponse> RegisterDevice(RegisterDeviceRequest request, ServerCallContext context) =>
        enrollment.RegisterAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<StartDevicePairingResponse> StartDevicePairing(StartDevicePairingRequest request, ServerCallContext context) =>
        enrollment.StartPairingAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<ApproveDevicePairingResponse> ApproveDevicePairing(ApproveDevicePairingRequest request, ServerCallContext context)
    {
        await enrollment.ApprovePairingAsync(await auth.RequireAsync(context), request, context.CancellationToken);
        return new ApproveDevicePairingResponse();
    }

    /// <inheritdoc />
    public override Task<PollDevicePairingResponse> PollDevicePairing(PollDevicePairingRequest request, ServerCallContext context) =>
        enrollment.PollPairingAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<GetDeviceResponse> GetDevice(GetDeviceRequest request, ServerCallContext context) =>
        new() { Device = await directory.GetAsync(await auth.RequireAsync(context), request.NetworkId, request.DeviceId, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<ListDevicesResponse> ListDevices(ListDevicesRequest request, ServerCallContext context)
    {
        var (devices, next) = await directory.ListAsync(await auth.RequireAsync(context), request, context.CancellationToken);
        return new ListDevicesResponse { Devices = { devices }, NextPageToken = next };
    }

    /// <inheritdoc />
    public override async Task<UpdateDeviceResponse> UpdateDevice(UpdateDeviceRequest request, ServerCallContext context) =>
        new() { Device = await directory.UpdateAsync(await auth.RequireAsync(context), request, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<RevokeDeviceResponse> RevokeDevice(RevokeDeviceRequest request, ServerCallContext context) =>
        new() { Device = await directory.RevokeAsync(await auth.RequireAsync(context), request, context.CancellationToken) };
    /// <inheritdoc />
    public override Task<RenewCertificateResponse> RenewCertificate(RenewCertificateRequest request, ServerCallContext context) =>
        renewal.RenewAsync(request, context.CancellationToken);
}

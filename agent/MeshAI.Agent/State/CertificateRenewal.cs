using Google.Protobuf;
using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Device.V1;
using Microsoft.Extensions.Logging;

namespace MeshAI.Agent.State;

/// <summary>
/// Asks the control plane for a re-issued certificate and the network's current keys before each relay connection
/// (docs/security.md): after a key rotation the device moves to the new CA without a restart. Failures keep the stored
/// enrollment; the relay decides whether it is still good.
/// </summary>
public static partial class CertificateRenewal
{
    /// <summary>The renewed enrollment (saved), or <paramref name="enrollment"/> unchanged when renewal is not possible now.</summary>
    public static async Task<AgentEnrollment> TryRenewAsync(AgentEnrollment enrollment, AgentKeys keys, AgentStateStore store, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(enrollment);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(store);
        try
        {
            var certificate = enrollment.ParsedCertificate();
            var serial = DeviceCertificateDetails.Parser.ParseFrom(certificate.Details).Serial;
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            using var channel = GrpcChannels.Create(enrollment.ServerUrl, enrollment.Fingerprint);
            var response = await new DeviceService.DeviceServiceClient(channel).RenewCertificateAsync(new RenewCertificateRequest
            {
                CurrentCertificate = certificate,
                TimestampUnixMs = now,
                ProofSignature = ByteString.CopyFrom(keys.Signing.Sign(ProofMessages.Renew(serial, now))),
            }, deadline: DateTime.UtcNow.AddSeconds(15), cancellationToken: cancellationToken);
            var renewed = enrollment with
            {
                Certificate = response.Certificate.ToByteArray(),
                NetworkKeys = response.NetworkKeys.Select(k => new TrustedKey(k.KeyId, k.PublicKey.ToByteArray(), k.Purpose.ToString(), k.NotAfter?.ToDateTimeOffset())).ToList(),
            };
            store.SaveEnrollment(renewed);
            return renewed;
        }
        catch (RpcException ex) when (ex.StatusCode != StatusCode.Cancelled || !cancellationToken.IsCancellationRequested)
        {
            LogRenewalFailed(logger, ex.StatusCode, ex.Status.Detail);
            return enrollment;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Certificate renewal failed ({Status}): {Detail}; keeping the stored certificate")]
    private static partial void LogRenewalFailed(ILogger logger, StatusCode status, string detail);
}

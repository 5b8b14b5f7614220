using System.Globalization;
using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Jobs;
using MeshAI.Control.Models;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Blobs;

/// <summary>
/// Who may read a job's input blob (BlobService.ReadJobBlob, docs/job-plane.md "Chunked blobs"): the device proves itself
/// like a ModelService reader (certificate + signed timestamp in the call metadata), then control's own record decides —
/// the job is in the device's network and not finished, the named attempt is open and placed on this device, and the job's
/// envelope references the digest. Nothing is cached: an attempt that ended (re-offered, cancelled, timed out) or a job
/// that finished is refused on the next call.
/// </summary>
public sealed class JobBlobAccess(ModelCatalog devices, JobRepository jobs)
{
    /// <summary>Authorises one ReadJobBlob call or throws its status (UNAUTHENTICATED, NOT_FOUND, PERMISSION_DENIED BLOB_ACCESS_DENIED).</summary>
    public async Task RequireAsync(ReadJobBlobRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var headers = context.RequestHeaders;
        var certificate = headers.GetValueBytes(ModelManifests.DeviceCertificateHeader)
            ?? throw RpcErrors.Unauthenticated("ReadJobBlob is for devices: the call carries no device certificate (" + ModelManifests.DeviceCertificateHeader + ")", ErrorReasons.DeviceCertificateRefused);
        var proof = headers.GetValueBytes(ModelManifests.DeviceProofHeader) ?? [];
        _ = long.TryParse(headers.GetValue(ModelManifests.DeviceTimestampHeader), NumberStyles.Integer, CultureInfo.InvariantCulture, out var timestamp);
        if (string.IsNullOrEmpty(request.NetworkId))
        {
            throw RpcErrors.Required("network_id");
        }

        var device = await devices.RequireDeviceAsync(certificate, timestamp, proof, request.NetworkId, context.CancellationToken);
        if (string.IsNullOrEmpty(request.JobId))
        {
            throw RpcErrors.Required("job_id");
        }

        if (string.IsNullOrEmpty(request.Sha256))
        {
            throw RpcErrors.Required("sha256");
        }

        var (job, attempts) = await jobs.GetJobWithAttemptsAsync(request.JobId, context.CancellationToken);
        if (job is null || !string.Equals(job.NetworkId, request.NetworkId, StringComparison.Ordinal))
        {
            throw Denied($"job {request.JobId} is not a job of network {request.NetworkId}");
        }

        if (JobViews.TerminalStates.Contains(job.State))
        {
            throw Denied($"job {request.JobId} has finished; its blobs are no longer readable by devices");
        }

        if (!attempts.Any(a => a.Attempt == request.Attempt && a.EndTimeMs is null && string.Equals(a.DeviceId, device.DeviceId, StringComparison.Ordinal)))
        {
            throw Denied($"attempt {request.Attempt} of job {request.JobId} is not running on device {device.DeviceId}");
        }

        var envelope = JobEnvelope.Parser.ParseFrom(job.Envelope);
        if (!(envelope.InputManifest?.Blobs ?? []).Any(b => string.Equals(BlobStore.StoredDigest(b), request.Sha256, StringComparison.Ordinal)))
        {
            throw Denied($"job {request.JobId} does not reference blob {request.Sha256}");
        }
    }

    private static RpcException Denied(string why) => RpcErrors.PermissionDenied(why, ErrorReasons.BlobAccessDenied);
}

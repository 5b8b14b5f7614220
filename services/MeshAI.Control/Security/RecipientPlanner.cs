using Google.Protobuf;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Jobs;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Security;

/// <summary>
/// PlanJob: the candidate devices a submitter should encrypt to, with their X25519 keys, signed by the network's control
/// key. The envelope sent here carries no payload (control must never see plaintext); only its routing fields count.
/// </summary>
public sealed class RecipientPlanner(NetworkAccess access, JobPlanner planner, DeviceRepository devices, NetworkKeyVault keys, Scheduling.ModelAvailability models)
{
    /// <summary>Default number of recipients (retries need no re-upload).</summary>
    public const int DefaultCandidates = 3;

    /// <summary>Most recipients one plan returns.</summary>
    public const int MaxCandidates = 16;

    private static readonly IReadOnlySet<string> NoExclusions = new HashSet<string>();

    /// <summary>Ranks the network's eligible online devices for the envelope and returns the top ones' keys, signed.</summary>
    public async Task<PlanJobResponse> PlanAsync(Caller caller, PlanJobRequest request, CancellationToken ct)
    {
        var envelope = request.Envelope ?? throw RpcErrors.Required("envelope");
        if (string.IsNullOrEmpty(envelope.NetworkId))
        {
            throw RpcErrors.Required("envelope.network_id");
        }

        if (envelope.WorkloadId == WorkloadClass.Unspecified || !Enum.IsDefined(envelope.WorkloadId))
        {
            throw RpcErrors.InvalidArgument("envelope.workload_id", "a supported workload class is required");
        }

        if (request.MaxCandidates < 0 || request.MaxCandidates > MaxCandidates)
        {
            throw RpcErrors.InvalidArgument("max_candidates", $"between 0 (default {DefaultCandidates}) and {MaxCandidates}");
        }

        var membership = await access.RequireMemberAsync(caller, envelope.NetworkId, ct);
        await planner.RequirePinnedDevicesExistAsync(envelope, ct);
        var probe = envelope.Clone();
        probe.InputManifest = new InputManifest();
        probe.PayloadEncryption = null;
        await models.RequireKnownAsync(probe, ct);
        var decision = await planner.PlanAsync(probe, membership.Settings, NoExclusions, ct);
        var wanted = request.MaxCandidates == 0 ? DefaultCandidates : request.MaxCandidates;
        var ids = decision.Ranked.Select(r => r.DeviceId).Distinct(StringComparer.Ordinal).Take(wanted).ToList();
        var rows = (await devices.GetDevicesAsync(envelope.NetworkId, ids, ct)).Where(r => !r.Revoked).ToDictionary(r => r.DeviceId, StringComparer.Ordinal);
        var recipients = ids.Where(rows.ContainsKey).Select(id => new RecipientKey
        {
            DeviceId = id,
            EncryptionPublicKey = ByteString.CopyFrom(rows[id].EncryptionPublicKey),
            CertificateSerial = rows[id].CertificateSerial,
        }).ToList();
        if (recipients.Count == 0)
        {
            throw RpcErrors.FailedPrecondition("PLACEMENT", envelope.NetworkId, "no eligible device is online: " + decision.Reason, ErrorReasons.NoEligibleDevice);
        }

        var keySet = await keys.GetKeysAsync(envelope.NetworkId, ct);
        return new PlanJobResponse
        {
            Recipients = { recipients },
            Signature = ByteString.CopyFrom(keySet.Control.Sign(PayloadCrypto.PlanSignatureMessage(envelope.NetworkId, recipients))),
            SigningKeyId = keySet.ControlKeyId,
        };
    }

    /// <summary>
    /// Structural checks of an encrypted envelope at submission: the scheme's fields are well-formed and every recipient is
    /// a live device of the network (a ciphertext nobody in the network can open is refused early).
    /// </summary>
    public async Task ValidateEncryptedAsync(JobEnvelope envelope, CancellationToken ct)
    {
        if (!PayloadCrypto.IsEncrypted(envelope))
        {
            return;
        }

        var e = envelope.PayloadEncryption;
        if (e.PayloadNonce.Length != PayloadCrypto.NonceSize)
        {
            throw RpcErrors.InvalidArgument("envelope.payload_encryption.payload_nonce", $"must be {PayloadCrypto.NonceSize} bytes");
        }

        if (e.SubmitterPublicKey.Length != PayloadCrypto.PublicKeySize)
        {
            throw RpcErrors.InvalidArgument("envelope.payload_encryption.submitter_public_key", "must be a raw 32-byte X25519 public key");
        }

        if (e.Recipients.Count == 0 || e.Recipients.Count > MaxCandidates)
        {
            throw RpcErrors.InvalidArgument("envelope.payload_encryption.recipients", $"1 to {MaxCandidates} wrapped keys");
        }

        var ids = e.Recipients.Select(r => r.DeviceId).Distinct(StringComparer.Ordinal).ToList();
        var rows = (await devices.GetDevicesAsync(envelope.NetworkId, ids, ct)).Where(r => !r.Revoked).Select(r => r.DeviceId).ToHashSet(StringComparer.Ordinal);
        var unknown = ids.FirstOrDefault(id => !rows.Contains(id));
        if (unknown is not null)
        {
            throw RpcErrors.InvalidArgument("envelope.payload_encryption.recipients", $"device {unknown} is not an active device of this network");
        }
    }
}

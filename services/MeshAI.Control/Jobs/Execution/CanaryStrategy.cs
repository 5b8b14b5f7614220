using System.Security.Cryptography;
using Google.Protobuf;
using MeshAI.Common;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Audit.V1;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Jobs.Canaries;
using MeshAI.Control.Ledger;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Jobs.Execution;

/// <summary>
/// A canary job (docs/anti-abuse.md): after a sampled settlement, control offers the same device an embeddings job whose
/// answer it knows (a text of the known-answer table, for the model name + weights hash the device reports). The offer is
/// an ordinary one — a fresh job id, a signed ticket, the payload sealed to the device like a client's, the result sealed
/// back to a key only this execution holds — and nothing about it is stored as a job: no job row, no attempt row, no
/// execution record, no ledger event, so it costs the network nothing and mints nothing. The verdict releases or withholds
/// the triggering settlement's held mint; a wrong answer also flags the device and writes an audit event.
/// </summary>
internal sealed class CanaryStrategy : PlacementStrategy
{
    private const int MaxRecipients = 64;

    private readonly string _triggerJobId;
    private readonly string _deviceId;
    private readonly string _model;
    private readonly float[][] _expected;
    private readonly EncryptionKeyPair _resultKey;
    private Placement? _placement;

    private CanaryStrategy(string triggerJobId, string deviceId, string model, float[][] expected, EncryptionKeyPair resultKey)
    {
        _triggerJobId = triggerJobId;
        _deviceId = deviceId;
        _model = model;
        _expected = expected;
        _resultKey = resultKey;
    }

    /// <summary>
    /// The canary that follows settling <paramref name="job"/> on <paramref name="deviceId"/>, or null when none is due: the
    /// network's rate did not sample this job, the server has no known answers, the device is offline, has no encryption key
    /// or reports no embeddings model (name + hash) with a known answer.
    /// </summary>
    public static async Task<JobExecution?> PrepareAsync(JobExecution job, string deviceId, CreditSettings credits, CancellationToken ct)
    {
        if (!Ledger.Canary.IsSampled(job.JobId, credits.CanaryRateBps) || !job.S.CanaryAnswers.Any)
        {
            return null;
        }

        var presence = job.S.Presence.GetOnline(deviceId, job.S.Clock.GetUtcNow());
        var device = await job.S.Devices.GetDeviceByIdAsync(deviceId, ct);
        if (presence is null || device is null || device.Revoked || device.EncryptionPublicKey.Length != PayloadCrypto.PublicKeySize ||
            !presence.Capabilities.Workloads.Contains(WorkloadClass.Embeddings))
        {
            return null;
        }

        var known = presence.Capabilities.Models
            .Where(m => m.WorkloadClass == WorkloadClass.Embeddings)
            .OrderByDescending(m => m.IsDefault)
            .Select(m => job.S.CanaryAnswers.Find(m.Name, m.Sha256))
            .FirstOrDefault(a => a is not null);
        if (known is null)
        {
            return null;
        }

        var canaryId = Ids.New("job");
        var answer = known.Answers[RandomNumberGenerator.GetInt32(known.Answers.Count)];
        var input = new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { answer.Text }, Model = known.Name } };
        var payload = input.ToByteArray();
        var envelope = new JobEnvelope
        {
            JobId = canaryId,
            NetworkId = job.NetworkId,
            SubmittedByUserId = job.Envelope.SubmittedByUserId,
            WorkloadId = WorkloadClass.Embeddings,
            InputManifest = new InputManifest { Payload = ByteString.CopyFrom(payload), PayloadSha256 = Secrets.Sha256Hex(payload) },
            DataSensitivityTag = job.Envelope.DataSensitivityTag,
            ResourceRequest = new ResourceRequest { Model = known.Name },
            RoutingMode = job.Envelope.RoutingMode,
            TimeoutMs = job.S.ControlOptions.Canary.TimeoutMs,
            TraceId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)),
        };

        // Sealed like a client's job: the content key wrapped for the network's devices (the target among them), the result
        // sealed back to a fresh key this execution alone holds.
        var recipients = (await job.S.Devices.ListDevicesAsync(job.NetworkId, "", MaxRecipients, ct))
            .Where(d => !d.Revoked && d.EncryptionPublicKey.Length == PayloadCrypto.PublicKeySize && d.DeviceId != deviceId)
            .Select(d => KeyValuePair.Create(d.DeviceId, d.EncryptionPublicKey))
            .Prepend(KeyValuePair.Create(deviceId, device.EncryptionPublicKey))
            .Take(MaxRecipients)
            .OrderBy(_ => RandomNumberGenerator.GetInt32(int.MaxValue))
            .ToList();
        var resultKey = EncryptionKeyPair.Generate();
        PayloadCrypto.EncryptEnvelope(envelope, recipients, resultKey.PublicKey);

        var row = new JobRow
        {
            JobId = canaryId,
            NetworkId = job.NetworkId,
            SubmittedByUserId = envelope.SubmittedByUserId,
            WorkloadId = (int)WorkloadClass.Embeddings,
            State = (int)JobState.Queued,
            Envelope = envelope.ToByteArray(),
            TimeoutMs = envelope.TimeoutMs,
        };
        var strategy = new CanaryStrategy(job.JobId, deviceId, known.Name, [answer.Vector], resultKey);
        return new JobExecution(row, envelope, job.Settings, JobPlacementContext.Anonymous, job.S)
        {
            Strategy = strategy,
            Finished = true, // no job row: nothing to lease, renew or settle
        };
    }

    protected override Task AcceptedAsync(JobExecution job, Placement placement, CancellationToken ct) => Task.CompletedTask;

    protected override Task AttemptLostAsync(JobExecution job, Placement placement, AttemptCause cause, string detail, CancellationToken ct) =>
        ResolveAsync(job, new CanaryComparison(CanaryVerdict.Inconclusive, detail), ct);

    protected override async Task OnEventAsync(JobExecution job, JobEvent e, CancellationToken ct)
    {
        switch (e)
        {
            case StartRequested:
                await OfferAsync(job, ct);
                break;
            case AgentReport { Kind: AgentReport.Result } r when job.TryGetOpen(r.Device, r.Attempt, out _):
                await ResolveAsync(job, Judge(job, (JobResult)r.Frame), ct);
                break;
            case AgentReport { Kind: AgentReport.Failure } r when job.TryGetOpen(r.Device, r.Attempt, out _):
                await ResolveAsync(job, new CanaryComparison(CanaryVerdict.Inconclusive, "the device could not run it: " + ((JobFailure)r.Frame).Error), ct);
                break;
            case CancelRequested c:
                c.Done?.TrySetResult(false);
                break;
            default:
                break; // progress and log frames of the canary: nobody watches it
        }
    }

    private async Task OfferAsync(JobExecution job, CancellationToken ct)
    {
        // Its own trace, not the settled job's: the offer's traceparent must not tie the canary to the job before it.
        System.Diagnostics.Activity.Current = null;
        var presence = job.S.Presence.GetOnline(_deviceId, job.S.Clock.GetUtcNow());
        var device = await job.S.Devices.GetDeviceByIdAsync(_deviceId, ct);
        if (presence is null || device is null || device.Revoked)
        {
            await ResolveAsync(job, new CanaryComparison(CanaryVerdict.Inconclusive, "the device went offline before the canary was offered"), ct);
            return;
        }

        _placement = await job.S.Placer.OfferAsync(job, 1, new PlacementCandidate(device, presence), JobPlacer.AttemptKind.Canary, null, null, "canary", ct);
        job.Log.LogInformation("Canary {CanaryId} ({Model}) offered to {DeviceId} after job {JobId}", job.JobId, _model, _deviceId, _triggerJobId);
    }

    private CanaryComparison Judge(JobExecution job, JobResult result)
    {
        byte[] plaintext;
        try
        {
            plaintext = result.Encrypted
                ? PayloadCrypto.OpenFromDevice(result.Output.Span, result.Nonce.Span, _resultKey, job.JobId)
                : result.Output.ToByteArray();
        }
        catch (PayloadCryptoException ex)
        {
            return new(CanaryVerdict.Failed, "the sealed answer does not open with the job's result key: " + ex.Message);
        }

        WorkloadOutput output;
        try
        {
            output = WorkloadOutput.Parser.ParseFrom(plaintext);
        }
        catch (InvalidProtocolBufferException)
        {
            return new(CanaryVerdict.Failed, "the answer is not a valid WorkloadOutput");
        }

        return Ledger.Canary.CompareEmbeddings(_expected, output);
    }

    /// <summary>
    /// Applies the verdict once, in one transaction: a failure flags the device (device_flags, reason CANARY_FAILED) and
    /// withholds the triggering settlement's held mint; a pass or an inconclusive end releases it. Then the audit event
    /// (failures only) and the end of this execution.
    /// </summary>
    private async Task ResolveAsync(JobExecution job, CanaryComparison verdict, CancellationToken ct)
    {
        if (_placement is { } placement)
        {
            placement.StopTimers();
            job.Open.Remove(placement.Attempt);
            if (verdict.Verdict == CanaryVerdict.Inconclusive)
            {
                job.CancelOnDevice(placement, "canary ended");
            }
        }

        var failed = verdict.Verdict == CanaryVerdict.Failed;
        var now = job.NowMs;
        var reason = $"{ErrorReasons.CanaryFailed}: canary {job.JobId} ({_model}) after job {_triggerJobId}: {verdict.Detail}";
        var minted = await job.S.Settler.InTransactionAsync(async (c, tx) =>
        {
            if (failed)
            {
                await LedgerRepository.FlagDeviceAsync(c, tx, new DeviceFlagRow
                {
                    FlagId = Ids.New("flg"),
                    NetworkId = job.NetworkId,
                    DeviceId = _deviceId,
                    JobId = _triggerJobId,
                    Reason = reason,
                    CreateTimeMs = now,
                }, ct);
            }

            return await LedgerWriter.ResolveHeldMintAsync(c, tx, job.NetworkId, _triggerJobId, "", Ledger.Canary.PendingReason,
                failed ? Ledger.Canary.FailedReasonPrefix + verdict.Detail : "", now, ct);
        }, ct);

        if (failed)
        {
            job.Log.LogWarning("Canary {CanaryId} FAILED on {DeviceId}: device flagged, mint of job {JobId} withheld ({Detail})", job.JobId, _deviceId, _triggerJobId, verdict.Detail);
            await job.S.Audit.RecordAsync(job.NetworkId, "", AuditAction.DeviceFlagged, _deviceId, new Dictionary<string, string>
            {
                ["reason"] = ErrorReasons.CanaryFailed,
                ["canary_job_id"] = job.JobId,
                ["job_id"] = _triggerJobId,
                ["model"] = _model,
                ["detail"] = verdict.Detail,
            }, ct);
        }
        else
        {
            job.Log.LogInformation("Canary {CanaryId} {Verdict} on {DeviceId}: released {MintMicro} µ of job {JobId} ({Detail})", job.JobId, verdict.Verdict, _deviceId, minted, _triggerJobId, verdict.Detail);
        }

        job.End();
    }
}

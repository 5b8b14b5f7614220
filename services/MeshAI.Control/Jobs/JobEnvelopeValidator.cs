using Google.Protobuf;
using MeshAI.Common.Crypto;
using MeshAI.Common.Domain;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Control.Jobs;

/// <summary>Checks a submitted envelope against the contract and the named limits; INVALID_ARGUMENT with a field violation otherwise.</summary>
public static class JobEnvelopeValidator
{
    private const string Payload = "envelope.input_manifest.payload";

    /// <summary>
    /// Validates <paramref name="envelope"/>; returns the decoded input (null when the payload is encrypted) and the effective
    /// timeout. The decoded input passes the same field bounds as every request (<paramref name="bounds"/>; defaults when null).
    /// </summary>
    public static (WorkloadInput? Input, long TimeoutMs) Validate(JobEnvelope? envelope, ControlLimits limits, Rpc.RequestBounds? bounds = null)
    {
        if (envelope is null)
        {
            throw RpcErrors.Required("envelope");
        }

        if (string.IsNullOrEmpty(envelope.NetworkId))
        {
            throw RpcErrors.Required("envelope.network_id");
        }

        if (envelope.WorkloadId == WorkloadClass.Unspecified || !Enum.IsDefined(envelope.WorkloadId))
        {
            throw RpcErrors.InvalidArgument("envelope.workload_id", "a supported workload class is required");
        }

        if (envelope.InputManifest is null)
        {
            throw RpcErrors.Required("envelope.input_manifest");
        }

        if (envelope.InputManifest.Payload.Length > limits.MaxPayloadBytes)
        {
            throw RpcErrors.InvalidArgument(Payload, $"payload is {envelope.InputManifest.Payload.Length} bytes; the limit is {limits.MaxPayloadBytes}");
        }

        if (envelope.TimeoutMs < 0 || envelope.TimeoutMs > limits.MaxJobTimeoutMs)
        {
            throw RpcErrors.InvalidArgument("envelope.timeout_ms", $"between 0 (default {limits.DefaultJobTimeoutMs}) and {limits.MaxJobTimeoutMs}");
        }

        if (Money.CapConflict(envelope) is { } cap)
        {
            throw RpcErrors.InvalidArgument(cap.Field, cap.Description);
        }

        if (envelope.RoutingMode == RoutingMode.PinnedDevice && (envelope.ResourceRequest?.RequiresPinnedDeviceIdsOptional.Count ?? 0) == 0)
        {
            throw RpcErrors.InvalidArgument("envelope.resource_request.requires_pinned_device_ids_optional", "pinned_device routing needs at least one device id");
        }

        if (envelope.AuthSignature is not null && !EnvelopeSignatures.Verify(envelope))
        {
            throw RpcErrors.InvalidArgument("envelope.auth_signature", "submitter signature invalid: it does not verify over the envelope with its public_key");
        }

        var timeout = envelope.TimeoutMs == 0 ? limits.DefaultJobTimeoutMs : envelope.TimeoutMs;
        var scheme = envelope.PayloadEncryption?.Scheme ?? PayloadEncryptionScheme.Unspecified;
        if (scheme is not (PayloadEncryptionScheme.Unspecified or PayloadEncryptionScheme.None))
        {
            return (null, timeout); // ciphertext: only the device can check the input
        }

        WorkloadInput input;
        try
        {
            input = WorkloadInput.Parser.ParseFrom(envelope.InputManifest.Payload);
        }
        catch (InvalidProtocolBufferException)
        {
            throw RpcErrors.InvalidArgument(Payload, "not a serialized meshai.job.v1.WorkloadInput");
        }

        (bounds ?? Rpc.RequestBounds.Default).Validate(input, Payload);
        var expected = Expected(input.InputCase);
        if (expected != envelope.WorkloadId)
        {
            throw RpcErrors.InvalidArgument(Payload, $"payload holds {input.InputCase} input but workload_id is {envelope.WorkloadId}");
        }

        // Blank texts and prompts, too many texts: the shared input rules (the SDK applies them before encrypting).
        if (WorkloadInputRules.Check(input, limits.MaxEmbeddingTexts) is { } violation)
        {
            throw RpcErrors.InvalidArgument(violation.Field, violation.Description);
        }

        return (input, timeout);
    }

    private static WorkloadClass Expected(WorkloadInput.InputOneofCase inputCase) => inputCase switch
    {
        WorkloadInput.InputOneofCase.Embeddings => WorkloadClass.Embeddings,
        WorkloadInput.InputOneofCase.Ocr => WorkloadClass.OcrPreprocess,
        WorkloadInput.InputOneofCase.Chat => WorkloadClass.SmallChat,
        WorkloadInput.InputOneofCase.Transcribe => WorkloadClass.AudioTranscribeChunked,
        WorkloadInput.InputOneofCase.Batch => WorkloadClass.BatchJobsEvalOrSynth,
        WorkloadInput.InputOneofCase.Echo => WorkloadClass.DiagnosticEcho,
        _ => WorkloadClass.Unspecified,
    };
}

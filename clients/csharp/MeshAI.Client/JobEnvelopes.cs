using System.Security.Cryptography;
using Google.Protobuf;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Client;

/// <summary>Builds job envelopes the way the phase-0 contract wants them (serialized WorkloadInput, SHA-256, scheme NONE).</summary>
public static class JobEnvelopes
{
    /// <summary>Most texts one embeddings job takes (contract limit; checked by the client for encrypted payloads).</summary>
    public const int MaxEmbeddingTexts = 256;

    /// <summary>The workload class that takes <paramref name="input"/>'s case.</summary>
    public static WorkloadClass WorkloadFor(WorkloadInput input) => input.InputCase switch
    {
        WorkloadInput.InputOneofCase.Embeddings => WorkloadClass.Embeddings,
        WorkloadInput.InputOneofCase.Ocr => WorkloadClass.OcrPreprocess,
        WorkloadInput.InputOneofCase.Chat => WorkloadClass.SmallChat,
        WorkloadInput.InputOneofCase.Transcribe => WorkloadClass.AudioTranscribeChunked,
        WorkloadInput.InputOneofCase.Batch => WorkloadClass.BatchJobsEvalOrSynth,
        WorkloadInput.InputOneofCase.Echo => WorkloadClass.DiagnosticEcho,
        _ => throw new ArgumentException("The workload input has no input set.", nameof(input)),
    };

    /// <summary>An unencrypted envelope for <paramref name="input"/> in <paramref name="networkId"/> (an embeddings model name is copied to resource_request.model).</summary>
    public static JobEnvelope Build(string networkId, WorkloadInput input, JobRouting? routing = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(networkId);
        ArgumentNullException.ThrowIfNull(input);
        routing ??= new JobRouting();
        var payload = input.ToByteString();
        var manifest = new InputManifest
        {
            Payload = payload,
            PayloadSha256 = Convert.ToHexStringLower(SHA256.HashData(payload.Span)),
        };
        manifest.Blobs.Add(routing.Blobs);
        foreach (var (key, value) in routing.Labels ?? new Dictionary<string, string>())
        {
            manifest.Labels[key] = value;
        }

        var resources = routing.ToResourceRequest();
        // Control routes by model but cannot read an encrypted payload: the model name travels beside it as well.
        if (input.InputCase == WorkloadInput.InputOneofCase.Embeddings)
        {
            resources.Model = input.Embeddings.Model;
        }

        return new JobEnvelope
        {
            NetworkId = networkId,
            WorkloadId = WorkloadFor(input),
            InputManifest = manifest,
            DataSensitivityTag = routing.Sensitivity,
            ResourceRequest = resources,
            RoutingMode = routing.Mode == RoutingMode.Unspecified ? RoutingMode.Auto : routing.Mode,
            MaxCostMicro = routing.MaxCostMicro,
            TimeoutMs = routing.TimeoutMs,
            PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
            TraceId = string.IsNullOrEmpty(routing.TraceId) ? NewTraceId() : routing.TraceId,
        };
    }

    /// <summary>A W3C trace id (32 hex digits): the current span's when the caller traces, else a new one.</summary>
    public static string NewTraceId() => MeshAI.Common.Observability.MeshTelemetry.CurrentOrNewTraceId();
}

using System.Collections.Frozen;
using Google.Protobuf;
using MeshAI.Common.Errors;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Model.V1;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Scheduling;

/// <summary>Which model a job asks for, and which models a device offers (docs/models.md, "Models on the mesh").</summary>
public static class JobModels
{
    /// <summary>Longest model name a job may carry.</summary>
    public const int MaxNameLength = 100;

    /// <summary>Workload classes whose model a job selects (and whose models policy public_models_only judges).</summary>
    public static bool IsSelectable(WorkloadClass workload) => workload is WorkloadClass.Embeddings or WorkloadClass.SmallChat;

    /// <summary>
    /// The model the job names: <c>resource_request.model</c>, else (plaintext payloads) <c>EmbeddingsInput.model</c> or <c>ChatInput.model</c>;
    /// empty = each device's default. An encrypted payload is opaque here, so clients copy the name into the resource request.
    /// </summary>
    public static string Required(JobEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        if (envelope.ResourceRequest is { Model.Length: > 0 } resources)
        {
            return resources.Model;
        }

        return PayloadModel(envelope);
    }

    /// <summary>
    /// The model a plaintext payload names: <c>EmbeddingsInput.model</c> of an embeddings job, <c>ChatInput.model</c> of a
    /// small_chat job; empty for other workloads, encrypted payloads and payloads that name none.
    /// </summary>
    public static string PayloadModel(JobEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        return envelope.WorkloadId switch
        {
            WorkloadClass.Embeddings => PlaintextInput(envelope)?.Embeddings?.Model ?? "",
            WorkloadClass.SmallChat => PlaintextInput(envelope)?.Chat?.Model ?? "",
            _ => "",
        };
    }

    /// <summary>The device's model of <paramref name="name"/> for <paramref name="workload"/> (empty name = its default), or null.</summary>
    public static InstalledModel? Offered(CapabilityReport capabilities, WorkloadClass workload, string name)
    {
        ArgumentNullException.ThrowIfNull(capabilities);
        foreach (var model in capabilities.Models)
        {
            if (model.WorkloadClass == workload && (name.Length == 0 ? model.IsDefault : string.Equals(model.Name, name, StringComparison.Ordinal)))
            {
                return model;
            }
        }

        return null;
    }

    /// <summary>The decoded payload when it is plaintext, else null.</summary>
    public static WorkloadInput? PlaintextInput(JobEnvelope envelope)
    {
        var scheme = envelope.PayloadEncryption?.Scheme ?? PayloadEncryptionScheme.Unspecified;
        if (scheme is not (PayloadEncryptionScheme.Unspecified or PayloadEncryptionScheme.None) || envelope.InputManifest is null)
        {
            return null;
        }

        try
        {
            return WorkloadInput.Parser.ParseFrom(envelope.InputManifest.Payload);
        }
        catch (InvalidProtocolBufferException)
        {
            return null;
        }
    }
}

/// <summary>
/// What the network can run, model by model: the submit-time check that a named model exists somewhere in the network,
/// and the public models policy judges. Reads live presence, stored device cards and the network's manifests.
/// </summary>
public sealed class ModelAvailability(IPresenceDirectory presence, DeviceRepository devices, ModelRepository manifests, TimeProvider clock)
{
    /// <summary>ErrorInfo reason of a job naming a model the network does not have.</summary>
    public const string ModelNotAvailable = MeshAI.Common.Errors.ErrorReasons.ModelNotAvailable;

    /// <summary>
    /// INVALID_ARGUMENT (with a BadRequest field violation) unless the job's model is well-formed, agrees with the plaintext
    /// payload, and is known in the network: some device of the network reports it, or the network publishes a manifest of
    /// that name for the workload (an agent may fetch it). The message names the models that are available.
    /// </summary>
    public async Task RequireKnownAsync(JobEnvelope envelope, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        const string field = "envelope.resource_request.model";
        var named = envelope.ResourceRequest?.Model ?? "";
        if (named.Length > JobModels.MaxNameLength)
        {
            throw RpcErrors.InvalidArgument(field, $"at most {JobModels.MaxNameLength} characters");
        }

        var payloadModel = JobModels.PayloadModel(envelope);
        if (named.Length > 0 && payloadModel.Length > 0 && !string.Equals(named, payloadModel, StringComparison.Ordinal))
        {
            var input = envelope.WorkloadId == WorkloadClass.SmallChat ? "ChatInput" : "EmbeddingsInput";
            throw RpcErrors.InvalidArgument(field, $"names model '{named}' but the payload's {input}.model is '{payloadModel}'; leave one empty or make them equal");
        }

        var model = JobModels.Required(envelope);
        if (model.Length == 0)
        {
            return;
        }

        var available = await AvailableAsync(envelope.NetworkId, envelope.WorkloadId, ct);
        if (!available.Contains(model))
        {
            var list = available.Count == 0 ? "none (install one with `meshai-agent models install`)" : string.Join(", ", available.Order(StringComparer.Ordinal));
            throw RpcErrors.InvalidArgument(named.Length > 0 ? field : "envelope.input_manifest.payload",
                $"model '{model}' is not available in this network for {envelope.WorkloadId}; available: {list}", ModelNotAvailable);
        }
    }

    /// <summary>Names of the models the network's devices report (live or last stored) or its manifests publish, for the workload.</summary>
    public async Task<IReadOnlySet<string>> AvailableAsync(string networkId, WorkloadClass workload, CancellationToken ct)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var online in presence.ListOnline(networkId, clock.GetUtcNow()))
        {
            names.UnionWith(online.Capabilities.Models.Where(m => m.WorkloadClass == workload).Select(m => m.Name));
        }

        var after = "";
        while (true)
        {
            var page = (await devices.ListDevicesAsync(networkId, after, 500, ct)).ToList();
            foreach (var row in page.Where(r => !r.Revoked && r.Capabilities.Length > 0))
            {
                names.UnionWith(CapabilityReport.Parser.ParseFrom(row.Capabilities).Models.Where(m => m.WorkloadClass == workload).Select(m => m.Name));
            }

            if (page.Count < 500)
            {
                break;
            }

            after = page[^1].DeviceId;
        }

        foreach (var row in await manifests.ListLatestAsync(networkId, ct))
        {
            var details = ModelManifestDetails.Parser.ParseFrom(ModelManifest.Parser.ParseFrom(row.Manifest).Details);
            if (details.WorkloadClass == workload)
            {
                names.Add(details.Name);
            }
        }

        return names;
    }

    /// <summary>The network's public models (newest manifest per name with public_model set).</summary>
    public Task<PublicModels> PublicModelsAsync(string networkId, CancellationToken ct) => PublicModels.LoadAsync(manifests, networkId, ct);
}

/// <summary>
/// The network's public models (policy public_models_only): for each name whose newest manifest sets public_model, the
/// SHA-256 of its weights file. A device's model counts as public only when it has that name AND those weights, so a
/// private model cannot borrow a public name.
/// </summary>
public sealed class PublicModels
{
    private readonly FrozenDictionary<string, string> _weights;

    /// <summary>Creates the set from name → weights SHA-256.</summary>
    public PublicModels(IReadOnlyDictionary<string, string> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        _weights = weights.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>No public models (a network that published none).</summary>
    public static PublicModels None { get; } = new(new Dictionary<string, string>());

    /// <summary>Public model names (sorted).</summary>
    public IReadOnlyList<string> Names => [.. _weights.Keys.Order(StringComparer.Ordinal)];

    /// <summary>True when <paramref name="model"/> is one of the network's public models, weights included.</summary>
    public bool Contains(InstalledModel? model) =>
        model is not null && _weights.TryGetValue(model.Name, out var sha) && string.Equals(sha, model.Sha256, StringComparison.OrdinalIgnoreCase);

    /// <summary>True when a model of that name is public (by name only: for policy queries that carry no weights).</summary>
    public bool ContainsName(string name) => _weights.ContainsKey(name);

    /// <summary>The public models of the network's newest manifests.</summary>
    public static async Task<PublicModels> LoadAsync(ModelRepository manifests, string networkId, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(manifests);
        var weights = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var row in await manifests.ListLatestAsync(networkId, ct))
        {
            var details = ModelManifestDetails.Parser.ParseFrom(ModelManifest.Parser.ParseFrom(row.Manifest).Details);
            if (details.PublicModel && MeshAI.Common.Crypto.ModelManifests.WeightsFile(details) is { } weightsFile)
            {
                weights[details.Name] = weightsFile.Sha256.ToLowerInvariant();
            }
        }

        return new PublicModels(weights);
    }
}

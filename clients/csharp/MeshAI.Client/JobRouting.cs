using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Client;

/// <summary>Where and how a submitted job may run, and what the submitter will pay (the envelope fields besides the input).</summary>
public sealed record JobRouting
{
    /// <summary>Routing mode; AUTO when unspecified.</summary>
    public RoutingMode Mode { get; init; } = RoutingMode.Auto;

    /// <summary>Devices the job must run on (PINNED_DEVICE).</summary>
    public IReadOnlyList<string> PinnedDeviceIds { get; init; } = [];

    /// <summary>The only tier the job may run on (PINNED_TIER).</summary>
    public Tier PinnedTier { get; init; } = Tier.Unspecified;

    /// <summary>Lowest acceptable tier for any mode.</summary>
    public Tier MinTier { get; init; } = Tier.Unspecified;

    /// <summary>Cost cap in micro-credits; 0 = no cap.</summary>
    public long MaxCostMicro { get; init; }

    /// <summary>Data sensitivity tag; the server applies its default when unspecified.</summary>
    public DataSensitivityTag Sensitivity { get; init; } = DataSensitivityTag.Unspecified;

    /// <summary>Job timeout in milliseconds; 0 = the server default.</summary>
    public long TimeoutMs { get; init; }

    /// <summary>Trace id propagated through control, relay and agent; a new one when empty.</summary>
    public string? TraceId { get; init; }

    /// <summary>Resubmitting with the same key returns the same job; a new one when empty.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>Free-form labels stored with the input manifest.</summary>
    public IReadOnlyDictionary<string, string>? Labels { get; init; }

    /// <summary>Blobs travelling beside the input (e.g. the OCR image).</summary>
    public IReadOnlyList<Blob> Blobs { get; init; } = [];

    /// <summary>The envelope's resource request for these options.</summary>
    internal ResourceRequest ToResourceRequest()
    {
        var request = new ResourceRequest { MinTier = MinTier, PinnedTier = PinnedTier };
        request.RequiresPinnedDeviceIdsOptional.Add(PinnedDeviceIds);
        return request;
    }
}

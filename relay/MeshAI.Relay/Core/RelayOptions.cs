using System.ComponentModel.DataAnnotations;

namespace MeshAI.Relay.Core;

/// <summary>Relay settings (configuration section <c>Relay</c>); every limit is named here with its default.</summary>
public sealed class RelayOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "Relay";

    /// <summary>This relay instance's id; devices sign it into their challenge answer.</summary>
    [Required]
    [MinLength(1)]
    public string RelayId { get; set; } = "relay-local";

    /// <summary>How often agents send heartbeats (announced in Welcome).</summary>
    [Range(100, 600_000)]
    public int HeartbeatIntervalMs { get; set; } = 5000;

    /// <summary>How long a device stays online without a heartbeat (soft state).</summary>
    [Range(1, 3600)]
    public int HeartbeatGraceSeconds { get; set; } = 20;

    /// <summary>Hello + challenge answer must arrive within this time.</summary>
    [Range(1, 300)]
    public int AuthTimeoutSeconds { get; set; } = 10;

    /// <summary>Largest frame accepted or sent on the stream.</summary>
    [Range(1024, int.MaxValue)]
    public int MaxFrameBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Frames waiting to be written to one device before offers are refused.</summary>
    [Range(1, 1_000_000)]
    public int MaxOutboundQueue { get; set; } = 256;

    /// <summary>Job attempts one device may have open at once on this relay.</summary>
    [Range(1, 1_000_000)]
    public int MaxOpenJobsPerDevice { get; set; } = 1024;

    /// <summary>Every relay address of the mesh, announced in Welcome (comma separated; empty: agents keep what they have).</summary>
    public string PublicUrls { get; set; } = "";

    /// <summary>Longest pause between retries of a terminal frame control did not acknowledge yet (owner dead, store down).</summary>
    [Range(10, 600_000)]
    public int ForwardRetryMaxMs { get; set; } = 2_000;

    /// <summary>How long the relay waits for control to handle a terminal frame before it retries it (and asks every control instance).</summary>
    [Range(100, 600_000)]
    public int ForwardTimeoutMs { get; set; } = 3_000;

    /// <summary>Terminal frames of one stream waiting to be forwarded before the relay stops reading it (back-pressure).</summary>
    [Range(1, 100_000)]
    public int MaxPendingTerminalFrames { get; set; } = 256;

    /// <summary>
    /// Longest time a stream goes without re-reading its device's revocation from the store. Revocations end streams at once
    /// (control's cut, the network update naming the device) and a moved network serial triggers a re-read at the next
    /// heartbeat; this period bounds the staleness when all of those were lost (docs/job-plane.md, "The relay stream").
    /// </summary>
    [Range(1, 86_400)]
    public int RevocationRecheckSeconds { get; set; } = 60;

    /// <summary>
    /// The relay protocol this build speaks (see relay_service.proto): 2 = numbered, acknowledged terminal frames; 3 = pushed
    /// NetworkUpdates; 4 = sparse heartbeat acknowledgements (<see cref="HeartbeatAckEvery"/>).
    /// </summary>
    public const int ProtocolVersion = 4;

    /// <summary>
    /// Protocol 4 (issue #11): a stream acknowledges heartbeat 1 and then every Nth heartbeat, N chosen so an acknowledgement
    /// still arrives at least every grace / 2 (2 at the default 5 s / 20 s): a steady heartbeat in between costs the relay
    /// one receive and no send. Announced in <c>Welcome.heartbeat_ack_every</c> (docs/job-plane.md, "Sparse heartbeat
    /// acknowledgements").
    /// </summary>
    public int HeartbeatAckEvery => Math.Max(1, HeartbeatGraceSeconds * 500 / HeartbeatIntervalMs);

    /// <summary>Whether heartbeat <paramref name="sequence"/> is acknowledged on a stream that announced <paramref name="ackEvery"/> (0 or 1: all).</summary>
    public static bool AcknowledgesHeartbeat(long sequence, int ackEvery) => ackEvery <= 1 || sequence <= 1 || sequence % ackEvery == 0;

    /// <summary>The announced relay addresses as a list.</summary>
    public IReadOnlyList<string> PublicUrlList => PublicUrls.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

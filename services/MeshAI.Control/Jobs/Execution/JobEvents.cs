using MeshAI.Common.Seams;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Jobs.Execution;

/// <summary>
/// Everything that can happen to a running job, as one message in its mailbox. Events that a caller waits on (agent reports
/// that the relay acknowledges only once handled, cancellation) carry a completion the execution sets after handling them.
/// </summary>
internal abstract record JobEvent
{
    /// <summary>Set by the execution once the event is handled (true) or when the job is no longer run here (false).</summary>
    public TaskCompletionSource<bool>? Done { get; init; }
}

/// <summary>
/// The first placement of a freshly submitted job. With <paramref name="PlacedRow"/> and <paramref name="PlacedAttempt"/> the
/// submit already wrote the job PLACED with its first attempt (place at submit, #11): the placer offers that attempt without
/// writing it again, and the status frame is built from those rows (exactly what the store holds) instead of read back.
/// </summary>
internal sealed record StartRequested(PlacementDecision Decision, JobRow? PlacedRow = null, JobAttemptRow? PlacedAttempt = null) : JobEvent;

/// <summary>The job was claimed (restart or a dead owner's lease): rebuild its open placements from the store.</summary>
internal sealed record ResumeRequested(IReadOnlyList<JobAttemptRow> Attempts, IReadOnlyList<JobChunkRow> ChunkResults) : JobEvent;

/// <summary>
/// A finished job whose spot-check re-run was in flight on an instance that died (its mint still held) was claimed:
/// <paramref name="Attempts"/> are its attempts in the store (the dead owner's re-run among the open ones).
/// </summary>
internal sealed record SpotCheckResumeRequested(IReadOnlyList<JobAttemptRow> Attempts) : JobEvent;

/// <summary>An agent report forwarded by a relay: accept, decline, progress, token, log, result or failure.</summary>
internal sealed record AgentReport(DeviceIdentity Device, string Kind, int Attempt, string ChunkId, Google.Protobuf.IMessage Frame, long RelayBytes) : JobEvent
{
    public const string Accept = "accept", Decline = "decline", Progress = "progress", Token = "token", Log = "log", Result = "result", Failure = "failure";

    /// <summary>Frames that end or answer an attempt (numbered and acknowledged on the relay stream).</summary>
    public bool IsTerminal => Kind is Accept or Decline or Result or Failure;

    public static AgentReport Of(DeviceIdentity device, JobAccept f) => new(device, Accept, f.Attempt, f.ChunkId, f, 0);

    public static AgentReport Of(DeviceIdentity device, JobDecline f) => new(device, Decline, f.Attempt, f.ChunkId, f, 0);

    public static AgentReport Of(DeviceIdentity device, JobProgress f) => new(device, Progress, f.Attempt, f.ChunkId, f, 0);

    public static AgentReport Of(DeviceIdentity device, JobToken f) => new(device, Token, f.Attempt, "", f, 0);

    public static AgentReport Of(DeviceIdentity device, JobLog f) => new(device, Log, f.Attempt, "", f, 0);

    public static AgentReport Of(DeviceIdentity device, JobResult f, long relayBytes) => new(device, Result, f.Attempt, f.ChunkId, f, relayBytes);

    public static AgentReport Of(DeviceIdentity device, JobFailure f, long relayBytes) => new(device, Failure, f.Attempt, f.ChunkId, f, relayBytes);
}

/// <summary>An attempt ran past the job's timeout.</summary>
internal sealed record AttemptTimedOut(int Attempt) : JobEvent;

/// <summary>An offer got neither accept nor decline in time (lost with a dead relay, or the agent hung).</summary>
internal sealed record OfferUnanswered(int Attempt) : JobEvent;

/// <summary>The relay could not hand the offer to the device.</summary>
internal sealed record OfferUndeliverable(int Attempt, string Reason) : JobEvent;

/// <summary>The attempt's runtime reached the job's max_cost_credits.</summary>
internal sealed record CostCapReached(int Attempt, long StartedMs, long CapMs) : JobEvent;

/// <summary>An accepted attempt is still running <see cref="JobPlaneOptions.RunningWriteDelayMs"/> after its accept: write RUNNING now.</summary>
internal sealed record RunningWriteDue(int Attempt) : JobEvent;

/// <summary>The device's relay stream ended.</summary>
internal sealed record DeviceDisconnected(string DeviceId) : JobEvent;

/// <summary>The device (re)connected; <paramref name="Held"/> are the attempts it still runs or holds results of (null: it did not say).</summary>
internal sealed record DeviceConnected(string DeviceId, IReadOnlySet<(int Attempt, string ChunkId)>? Held) : JobEvent;

/// <summary>The reconnect grace of a disconnected device's attempt is over.</summary>
internal sealed record ReconnectGraceOver(int Attempt) : JobEvent;

/// <summary>A retry's backoff is over: place the job (or chunk) again.</summary>
internal sealed record RetryDue(int AfterAttempt, string ChunkId) : JobEvent;

/// <summary>The submitter or an admin cancels the job (Done: true when this cancelled it).</summary>
internal sealed record CancelRequested(string Reason) : JobEvent;

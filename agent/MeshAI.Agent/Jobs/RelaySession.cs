using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshAI.Agent.Device;
using MeshAI.Agent.State;
using MeshAI.Agent.Workloads;
using MeshAI.Common.Crypto;
using MeshAI.Common.Domain;
using MeshAI.Common.Observability;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using Microsoft.Extensions.Logging;

namespace MeshAI.Agent.Jobs;

/// <summary>How one relay stream ended.</summary>
public sealed record SessionEnd(bool WasOnline, CutReason? Cut, string Detail);

/// <summary>
/// One relay stream from the agent's side: hello + challenge answer, heartbeats every interval (with capabilities,
/// running jobs and the measured heartbeat RTT), offers verified and run, all frames written by one writer loop.
/// </summary>
public sealed partial class RelaySession
{
    private readonly AgentEnrollment _enrollment;
    private readonly AgentKeys _keys;
    private readonly IDeviceStateProvider _deviceState;
    private readonly WorkloadRegistry _workloads;
    private readonly OfferVerifier _offers;
    private readonly EndToEndPayload _payloads;
    private readonly ILogger _logger;
    private readonly Action<string> _announce;
    private readonly Channel<ConnectRequest> _outbound = Channel.CreateBounded<ConnectRequest>(new BoundedChannelOptions(1024) { SingleReader = true });
    private readonly AgentJobs _jobs;
    private readonly bool _ownsJobs;
    private readonly Func<ConnectRequest, CancellationToken, ValueTask> _send;
    private readonly ConcurrentDictionary<long, long> _heartbeatSent = new();
    private readonly ConcurrentDictionary<string, string> _handedBack = new(StringComparer.Ordinal);
    private readonly Contribution.ContributionPolicy? _contribution;
    private readonly AgentNetworkState _network;
    private PeriodicTimer? _heartbeatTimer;
    private int _heartbeats;
    private int _lastRttMs;
    private volatile Contracts.Common.V1.Tier _tier;

    /// <summary>
    /// Creates a session (one per connection attempt; the replay memory in <paramref name="offers"/> outlives it). With
    /// <paramref name="jobs"/> (shared by the agent's sessions) running jobs and unacknowledged results outlive the stream;
    /// without, the session owns its jobs and cancels them when it ends. Pushed network updates are applied to
    /// <paramref name="network"/> (shared by the agent's sessions and its offer verifier; without one, a state of this session's own).
    /// </summary>
    public RelaySession(AgentEnrollment enrollment, AgentKeys keys, IDeviceStateProvider deviceState, WorkloadRegistry workloads, OfferVerifier offers, ILogger logger, Action<string> announce, Contribution.ContributionPolicy? contribution = null, AgentJobs? jobs = null, AgentNetworkState? network = null)
    {
        _network = network ?? new AgentNetworkState(enrollment);
        _jobs = jobs ?? new AgentJobs();
        _ownsJobs = jobs is null;
        _send = (frame, ct) => _outbound.Writer.WriteAsync(frame, ct);
        _contribution = contribution;
        _enrollment = enrollment;
        _keys = keys;
        _deviceState = deviceState;
        _workloads = workloads;
        _offers = offers;
        _payloads = new EndToEndPayload(keys, enrollment.DeviceId);
        _logger = logger;
        _announce = announce;
    }

    /// <summary>
    /// Called when an applied update says the network's model manifests changed (<c>NetworkUpdate.models_changed_unix_ms</c>);
    /// the agent fetches what it lacks off this stream's read loop and, when its models changed, calls <see cref="Reannounce"/>.
    /// </summary>
    public Action? ModelsChanged { get; init; }

    /// <summary>
    /// Ends the stream so the agent reconnects at once with a fresh AgentHello (new capabilities, e.g. a model installed
    /// mid-session); running jobs and unacknowledged results carry over to the next stream like on any reconnect.
    /// </summary>
    public void Reannounce()
    {
        _reannounce = true;
        try
        {
            _sessionCts?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The stream already ended; the agent rebuilds what it advertises before the next one.
        }
    }

    /// <summary>SessionEnd.Detail of a stream ended by <see cref="Reannounce"/> (the agent reconnects without waiting).</summary>
    public const string ReannounceDetail = "this device's models changed: re-announcing them on a fresh stream";

    private volatile bool _reannounce;
    private CancellationTokenSource? _sessionCts;

    /// <summary>
    /// Blob hook (#11): fetches the job's stored input blobs (<c>meshai-blob:</c>) into files before its handler runs; by
    /// default under the temp folder (the agent sets its state directory).
    /// </summary>
    public JobBlobFetcher? BlobFetcher { get; init; }

    /// <summary>The relay id learned from Welcome (signed into the next challenge answer).</summary>
    public string? LearnedRelayId { get; private set; }

    /// <summary>Runs the stream until it ends; returns how it ended (RpcExceptions of the call propagate).</summary>
    public async Task<SessionEnd> RunAsync(RelayService.RelayServiceClient client, CancellationToken cancellationToken)
    {
        using var call = client.Connect(cancellationToken: cancellationToken);
        var responses = call.ResponseStream;
        await call.RequestStream.WriteAsync(new ConnectRequest
        {
            Hello = new AgentHello
            {
                Certificate = _enrollment.ParsedCertificate(), AgentVersion = AgentVersion, Capabilities = Capabilities(),
                ProtocolVersion = ProtocolVersion, HeldAttempts = { _jobs.Held() }, NetworkSerial = _network.Serial,
            },
        }, cancellationToken);

        if (!await responses.MoveNext(cancellationToken))
        {
            return new SessionEnd(false, null, "relay closed the stream during authentication");
        }

        if (responses.Current.FrameCase == ConnectResponse.FrameOneofCase.Cut)
        {
            return new SessionEnd(false, responses.Current.Cut.Reason, responses.Current.Cut.Detail);
        }

        var challenge = responses.Current.Challenge ?? new Challenge();
        var nonce = challenge.Nonce;
        // The answer is bound to the relay instance that asked; older relays did not say, hence the fallback.
        var relayId = !string.IsNullOrEmpty(challenge.RelayId) ? challenge.RelayId
            : string.IsNullOrEmpty(_enrollment.RelayId) ? "relay-local" : _enrollment.RelayId;
        await call.RequestStream.WriteAsync(new ConnectRequest
        {
            ChallengeAnswer = new ChallengeAnswer { Signature = ByteString.CopyFrom(_keys.Signing.Sign(ProofMessages.RelayChallenge(nonce.Span, relayId))) },
        }, cancellationToken);

        if (!await responses.MoveNext(cancellationToken))
        {
            return new SessionEnd(false, null, "relay closed the stream during authentication");
        }

        if (responses.Current.FrameCase != ConnectResponse.FrameOneofCase.Welcome)
        {
            var cut = responses.Current.Cut;
            return new SessionEnd(false, cut?.Reason, cut?.Detail ?? "expected Welcome");
        }

        var welcome = responses.Current.Welcome;
        LearnedRelayId = welcome.RelayId;
        LearnedRelayUrls = [.. welcome.RelayUrls];
        Protocol = Math.Max(1, welcome.ProtocolVersion);
        HeartbeatAckEvery = welcome.HeartbeatAckEvery;

        using var sessionCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _sessionCts = sessionCts;
        if (_reannounce)
        {
            await sessionCts.CancelAsync();
        }

        var writer = WriteLoopAsync(call.RequestStream, sessionCts.Token);
        // What the previous stream could not deliver goes first, in order; then this stream carries the jobs' frames.
        foreach (var unacked in _jobs.Unacked())
        {
            await _send(unacked, cancellationToken);
        }

        _jobs.Attach(_send);
        // Online once the relay acknowledged the first heartbeat: by then its presence (capabilities, contribution) is
        // recorded, so a job submitted right after the announcement sees an eligible device.
        var announced = false;
        var heartbeats = HeartbeatLoopAsync(Math.Max(100, welcome.HeartbeatIntervalMs), sessionCts.Token);
        var watch = ContributionWatchAsync(sessionCts.Token);
        try
        {
            while (await responses.MoveNext(sessionCts.Token))
            {
                var frame = responses.Current;
                switch (frame.FrameCase)
                {
                    case ConnectResponse.FrameOneofCase.HeartbeatAck:
                        if (_heartbeatSent.TryRemove(frame.HeartbeatAck.Sequence, out var sentAt))
                        {
                            _lastRttMs = (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(sentAt).TotalMilliseconds);
                        }

                        if (!announced)
                        {
                            announced = true;
                            _announce($"MESHAI_AGENT_ONLINE device_id={welcome.DeviceId}");
                        }

                        break;
                    case ConnectResponse.FrameOneofCase.JobOffer:
                        await OnOfferAsync(frame.JobOffer, sessionCts.Token);
                        break;
                    case ConnectResponse.FrameOneofCase.JobCancel:
                        if (_jobs.Running.TryGetValue(Key(frame.JobCancel.JobId, frame.JobCancel.Attempt), out var running))
                        {
                            await running.Cancel.CancelAsync();
                        }

                        break;
                    case ConnectResponse.FrameOneofCase.FrameAck:
                        _jobs.Ack(frame.FrameAck.Sequence);
                        break;
                    case ConnectResponse.FrameOneofCase.NetworkUpdate:
                        if (await OnNetworkUpdateAsync(frame.NetworkUpdate, sessionCts.Token) is { } revoked)
                        {
                            return revoked;
                        }

                        break;
                    case ConnectResponse.FrameOneofCase.Cut:
                        return new SessionEnd(true, frame.Cut.Reason, frame.Cut.Detail);
                    default:
                        break;
                }
            }

            return new SessionEnd(true, null, "relay ended the stream");
        }
        catch (Exception ex) when (_reannounce && !cancellationToken.IsCancellationRequested && ex is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled })
        {
            return new SessionEnd(true, null, ReannounceDetail);
        }
        finally
        {
            _sessionCts = null;
            _jobs.Detach(_send);
            if (_ownsJobs)
            {
                await _jobs.DisposeAsync();
            }

            _outbound.Writer.TryComplete();
            await sessionCts.CancelAsync();
            await Quietly(writer);
            await Quietly(heartbeats);
            await Quietly(watch);
        }
    }

    /// <summary>
    /// The relay protocol this agent speaks (relay_service.proto): 2 = numbered, acknowledged terminal frames; 3 = pushed
    /// NetworkUpdates; 4 = sparse heartbeat acknowledgements (the relay acknowledges heartbeat 1 and every
    /// <see cref="HeartbeatAckEvery"/>th; the agent relies on acknowledgements only for going online and the round-trip
    /// estimate, and on HTTP/2 keepalive PINGs for a dead relay).
    /// </summary>
    public const int ProtocolVersion = 4;

    /// <summary>Heartbeats per acknowledgement the relay announced in Welcome (0 or 1: every heartbeat).</summary>
    public int HeartbeatAckEvery { get; private set; }

    /// <summary>Relay addresses announced in Welcome (empty: the relay did not say).</summary>
    public IReadOnlyList<string> LearnedRelayUrls { get; private set; } = [];

    /// <summary>The protocol negotiated on this stream (1 until Welcome).</summary>
    public int Protocol { get; private set; } = 1;

    private static string AgentVersion => typeof(RelaySession).Assembly.GetName().Version?.ToString() ?? "0";

    private static string Key(string jobId, int attempt) => AgentJobs.Key(jobId, attempt);

    private CapabilityReport Capabilities()
    {
        var report = _deviceState.Capture();
        _tier = Tiers.Classify(report); // the hardware tier metered per job (fixed hardware: refreshed with each heartbeat)
        report.NetworkRttMs = _lastRttMs;
        _workloads.Advertise(report); // workload classes + installed models (#14)
        return report;
    }

    private async Task WriteLoopAsync(IClientStreamWriter<ConnectRequest> stream, CancellationToken cancellationToken)
    {
        await foreach (var frame in _outbound.Reader.ReadAllAsync(cancellationToken))
        {
            await stream.WriteAsync(frame, cancellationToken);
        }
    }

    private ValueTask SendAsync(ConnectRequest frame, CancellationToken cancellationToken) => _outbound.Writer.WriteAsync(frame, cancellationToken);

    /// <summary>
    /// Applies a pushed update (stored before it is acknowledged, so a restart does not lose it) and acknowledges the serial
    /// the device holds afterwards; an update that names this device as revoked ends the session like a revocation cut.
    /// </summary>
    private async Task<SessionEnd?> OnNetworkUpdateAsync(NetworkUpdate update, CancellationToken cancellationToken)
    {
        var heldBefore = _network.Serial;
        var outcome = _network.Apply(update);
        if (outcome == NetworkUpdateOutcome.SelfRevoked)
        {
            return new SessionEnd(true, CutReason.Revoked, "this device was revoked (network update " + update.Serial + ")");
        }

        if (outcome == NetworkUpdateOutcome.Applied)
        {
            LogNetworkUpdate(_logger, update.Serial, update.NetworkKeys.Count, update.RevokedDeviceIds.Count, update.FullState);
            _announce($"MESHAI_AGENT_NETWORK_UPDATE serial={update.Serial} keys={update.NetworkKeys.Count} revoked={update.RevokedDeviceIds.Count}");
            if (_network.HeartbeatIntervalMs > 0 && _heartbeatTimer is { } timer)
            {
                timer.Period = TimeSpan.FromMilliseconds(Math.Max(100, _network.HeartbeatIntervalMs));
            }

            // A whole state sent to an agent that held nothing is its first catch-up: it fetched at start, just before.
            if (update.ModelsChangedUnixMs > 0 && !(update.FullState && heldBefore == 0))
            {
                ModelsChanged?.Invoke();
            }
        }

        await SendAsync(new ConnectRequest { NetworkUpdateAck = new NetworkUpdateAck { Serial = _network.Serial } }, cancellationToken);
        return null;
    }

    private async Task HeartbeatLoopAsync(int intervalMs, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(_network.HeartbeatIntervalMs > 0 ? Math.Max(100, _network.HeartbeatIntervalMs) : intervalMs));
        _heartbeatTimer = timer;
        long sequence = 0;
        do
        {
            sequence++;
            var heartbeat = new Heartbeat
            {
                Sequence = sequence,
                Capabilities = Capabilities(),
                ContributionEnabled = _enrollment.ContributionEnabled && Contributing(midJob: !_jobs.Running.IsEmpty).Allowed,
                SentTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
            };
            heartbeat.RunningJobs.AddRange(_jobs.Running.Keys);
            _heartbeatSent[sequence] = Stopwatch.GetTimestamp();
            foreach (var stale in _heartbeatSent.Keys.Where(k => k < sequence - 16))
            {
                _heartbeatSent.TryRemove(stale, out _);
            }

            await SendAsync(new ConnectRequest { Heartbeat = heartbeat }, cancellationToken);
            Interlocked.Increment(ref _heartbeats);
        }
        while (await timer.WaitForNextTickAsync(cancellationToken));
    }

    private async Task OnOfferAsync(JobOffer offer, CancellationToken cancellationToken)
    {
        var check = _offers.Check(offer);
        if (!check.Accepted)
        {
            var ticket = TryParseTicket(offer);
            LogDeclined(_logger, ticket?.JobId ?? "?", check.Reason, check.Detail);
            if (ticket is not null)
            {
                await _jobs.SendTerminalAsync(Decline(ticket, check.Reason, check.Detail), cancellationToken);
            }

            return;
        }

        var details = check.Ticket!;
        var envelope = check.Envelope!;
        // Tracing hook (#17): the agent's span of this attempt, child of the relay's (JobOffer.traceparent); every terminal
        // frame carries its context, and the sandbox worker's span is its child.
        var span = MeshTelemetry.StartJobSpan("meshai.agent.job", ActivityKind.Consumer, details.JobId, offer.Traceparent, envelope.TraceId);
        span?.SetTag(MeshTelemetry.AttemptKey, details.Attempt).SetTag(MeshTelemetry.DeviceIdKey, details.DeviceId).SetTag("meshai.chunk_id", details.ChunkId);
        var accepted = false;
        try
        {
            accepted = await AcceptAndStartAsync(offer, details, envelope, span, cancellationToken);
        }
        finally
        {
            if (!accepted)
            {
                span?.SetStatus(ActivityStatusCode.Error, "declined");
                span?.Dispose();
            }
        }
    }

    private async Task<bool> AcceptAndStartAsync(JobOffer offer, PlacementTicketDetails details, JobEnvelope envelope, Activity? span, CancellationToken cancellationToken)
    {
        if (offer.Chunk is { Blobs.Count: > 0 } chunkWithBlobs)
        {
            (envelope.InputManifest ??= new InputManifest()).Blobs.Add(chunkWithBlobs.Blobs); // the chunk's blobs (bound by the ticket's chunk_sha256)
        }

        WorkloadInput input;
        JobTokenStream? tokens = null;
        try
        {
            input = WorkloadInput.Parser.ParseFrom(offer.Chunk is { } chunk && !chunk.Payload.IsEmpty ? chunk.Payload : _payloads.OpenInput(envelope, envelope.InputManifest?.Payload ?? ByteString.Empty));
            if (input.InputCase == WorkloadInput.InputOneofCase.Chat)
            {
                // Chat resume (docs/chat-resume.md): continue after what earlier attempts streamed.
                tokens = _payloads.TokenStream(envelope, details.JobId);
                if (offer.Resume is { } resume)
                {
                    input.Chat.Resume = tokens.Open(resume);
                }
                else if (input.Chat.Resume is not null)
                {
                    await _jobs.SendTerminalAsync(Traced(Decline(details, DeclineReason.UnsupportedWorkload, "chat.resume is set by the mesh when it resumes a stream, not by a submitter"), span), cancellationToken);
                    return false;
                }
            }
        }
        catch (InvalidProtocolBufferException)
        {
            await _jobs.SendTerminalAsync(Traced(Decline(details, DeclineReason.UnsupportedWorkload, "payload is not a WorkloadInput"), span), cancellationToken);
            return false;
        }
        catch (PayloadCryptoException ex)
        {
            await _jobs.SendTerminalAsync(Traced(Decline(details, DeclineReason.BadTicket, "encrypted payload cannot be opened here: " + ex.Message), span), cancellationToken);
            return false;
        }

        var decision = Contributing(midJob: false);
        if (!decision.Allowed)
        {
            await _jobs.SendTerminalAsync(Traced(Decline(details, DeclineReason.DeviceState, "not contributing now: " + decision.Reason), span), cancellationToken);
            return false;
        }

        var handler = _workloads.Find(input);
        if (handler is null)
        {
            await _jobs.SendTerminalAsync(Traced(Decline(details, DeclineReason.UnsupportedWorkload, $"no handler for {input.InputCase} on this device"), span), cancellationToken);
            return false;
        }

        // A shared job set lets the job outlive this stream (its result waits for the next one); otherwise it ends with it.
        var lifetime = _ownsJobs ? cancellationToken : _jobs.Lifetime;
        var jobCts = CancellationTokenSource.CreateLinkedTokenSource(lifetime);
        if (envelope.TimeoutMs > 0)
        {
            jobCts.CancelAfter(TimeSpan.FromMilliseconds(envelope.TimeoutMs));
        }

        _jobs.Running[Key(details.JobId, details.Attempt)] = new AgentJobs.RunningJob(details.JobId, details.Attempt, details.ChunkId, jobCts);
        await _jobs.SendTerminalAsync(Traced(new ConnectRequest { JobAccept = new JobAccept { JobId = details.JobId, Attempt = details.Attempt, ChunkId = details.ChunkId } }, span), cancellationToken);
        _jobs.Track(Task.Run(() => RunJobAsync(details, envelope, handler, input, tokens, jobCts, span, lifetime), CancellationToken.None));
        return true;
    }

    private async Task RunJobAsync(PlacementTicketDetails details, JobEnvelope envelope, IWorkloadHandler handler, WorkloadInput input, JobTokenStream? tokens, CancellationTokenSource jobCts, Activity? span, CancellationToken sessionToken)
    {
        using var jobSpan = span;
        var started = Stopwatch.GetTimestamp();
        var heartbeatsAtStart = Volatile.Read(ref _heartbeats);
        var blobs = envelope.InputManifest?.Blobs.ToList() ?? [];
        using var ownFetcher = BlobFetcher is null ? new JobBlobFetcher(_enrollment, _keys, Path.Combine(Path.GetTempPath(), "meshai-job-blobs")) : null;
        var fetcher = BlobFetcher ?? ownFetcher!;
        ConnectRequest outcome;
        try
        {
            var paths = await fetcher.FetchAsync(details, blobs, _payloads.InputBlobKeys(envelope), jobCts.Token); // blob hook (#11): files, not frames; opened when sealed
            var context = new JobContext(this, details, blobs, paths, tokens is null ? new Lazy<JobTokenStream>(() => _payloads.TokenStream(envelope, details.JobId)) : new Lazy<JobTokenStream>(tokens));
            LogRunning(_logger, details.JobId, details.Attempt, handler.Workload.ToString());
            var output = await handler.RunAsync(input, context, jobCts.Token);
            outcome = new ConnectRequest
            {
                JobResult = EndToEndPayload.SealResult(envelope, new JobResult { JobId = details.JobId, Attempt = details.Attempt, ChunkId = details.ChunkId, Output = output.ToByteString(), Metering = Meter() }),
            };
        }
        catch (OperationCanceledException) when (jobCts.IsCancellationRequested)
        {
            var why = _handedBack.TryRemove(Key(details.JobId, details.Attempt), out var reason) ? "handed back: device stopped contributing (" + reason + ")"
                : sessionToken.IsCancellationRequested ? "agent disconnected" : "cancelled or timed out";
            outcome = Failure(why, retryable: true);
        }
        catch (InvalidWorkloadInputException ex)
        {
            outcome = Failure(ex.Message, retryable: false);
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.NotFound or StatusCode.PermissionDenied or StatusCode.InvalidArgument)
        {
            outcome = Failure($"input blob refused by control: {ex.Status.Detail}", retryable: false); // blob hook (#11)
        }
        catch (Exception ex)
        {
            outcome = Failure($"{ex.GetType().Name}: {ex.Message}", retryable: true);
        }
        finally
        {
            _jobs.Running.TryRemove(Key(details.JobId, details.Attempt), out _);
            fetcher.Release(details); // blob hook (#11): the fetched files go with the attempt
            jobCts.Dispose();
        }

        if (outcome.FrameCase == ConnectRequest.FrameOneofCase.JobFailure)
        {
            LogFailed(_logger, details.JobId, details.Attempt, outcome.JobFailure.Error);
            span?.SetStatus(ActivityStatusCode.Error, outcome.JobFailure.Error);
        }

        // Never dropped: numbered, kept until the relay acknowledges it, re-sent on the next stream if this one ends first.
        await _jobs.SendTerminalAsync(Traced(outcome, span), CancellationToken.None);

        Metering Meter() => new()
        {
            RuntimeMs = (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            Tier = _tier,
            PeakMemoryMb = Environment.WorkingSet / (1024 * 1024),
            HeartbeatsDuringRun = Volatile.Read(ref _heartbeats) - heartbeatsAtStart,
        };

        ConnectRequest Failure(string error, bool retryable) => new()
        {
            JobFailure = new JobFailure { JobId = details.JobId, Attempt = details.Attempt, ChunkId = details.ChunkId, Error = error, Retryable = retryable, Metering = Meter() },
        };
    }

    private Contribution.ContributionDecision Contributing(bool midJob) =>
        _contribution?.Evaluate(_deviceState.CaptureLive(_contribution.LiveReads), TimeOnly.FromDateTime(DateTime.Now), midJob) ?? Contribution.ContributionDecision.Yes;

    /// <summary>While jobs run, re-checks the contribution rules every second; a device that stops contributing hands its jobs back.</summary>
    private async Task ContributionWatchAsync(CancellationToken cancellationToken)
    {
        if (_contribution is null)
        {
            return;
        }

        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            if (_jobs.Running.IsEmpty)
            {
                continue;
            }

            var decision = Contributing(midJob: true);
            if (decision.Allowed)
            {
                continue;
            }

            foreach (var (key, running) in _jobs.Running)
            {
                if (_handedBack.TryAdd(key, decision.Reason))
                {
                    LogHandingBack(_logger, key, decision.Reason);
                    await running.Cancel.CancelAsync();
                }
            }
        }
    }

    private static PlacementTicketDetails? TryParseTicket(JobOffer offer)
    {
        try
        {
            var details = PlacementTicketDetails.Parser.ParseFrom(offer.Ticket?.Details ?? ByteString.Empty);
            return string.IsNullOrEmpty(details.JobId) ? null : details;
        }
        catch (InvalidProtocolBufferException)
        {
            return null;
        }
    }

    private static ConnectRequest Traced(ConnectRequest frame, Activity? span)
    {
        frame.Traceparent = MeshTelemetry.TraceParent(span);
        return frame;
    }

    private static ConnectRequest Decline(PlacementTicketDetails details, DeclineReason reason, string detail) => new()
    {
        JobDecline = new JobDecline { JobId = details.JobId, Attempt = details.Attempt, ChunkId = details.ChunkId, Reason = reason, Detail = detail },
    };

    private static async Task Quietly(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception ex) when (ex is OperationCanceledException or RpcException or InvalidOperationException or ChannelClosedException)
        {
            // The stream is over; how it ended is reported by RunAsync.
        }
    }

    private sealed class JobContext(RelaySession session, PlacementTicketDetails details, IReadOnlyList<Contracts.Common.V1.Blob> blobs, IReadOnlyDictionary<string, string> blobPaths, Lazy<JobTokenStream> tokens) : IJobContext
    {
        public IReadOnlyList<Contracts.Common.V1.Blob> Blobs => blobs;

        public IReadOnlyDictionary<string, string> BlobPaths => blobPaths;

        public ValueTask EmitTokenAsync(string text, int index, CancellationToken cancellationToken) =>
            session._jobs.SendStreamAsync(new ConnectRequest { JobToken = tokens.Value.Frame(details.Attempt, text, index) }, cancellationToken);

        public ValueTask ReportProgressAsync(double fraction, string message, CancellationToken cancellationToken) =>
            session._jobs.SendStreamAsync(new ConnectRequest
            {
                JobProgress = new JobProgress { JobId = details.JobId, Attempt = details.Attempt, ChunkId = details.ChunkId, Fraction = Math.Clamp(fraction, 0, 1), Message = message },
            }, cancellationToken);

        public ValueTask LogAsync(Contracts.Job.V1.LogLevel level, string message, CancellationToken cancellationToken) =>
            session._jobs.SendStreamAsync(new ConnectRequest { JobLog = new JobLog { JobId = details.JobId, Attempt = details.Attempt, Level = level, Message = message } }, cancellationToken);
    }

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Applied network update {Serial}: {Keys} key(s), {Revoked} revocation(s), whole state {FullState}")]
    private static partial void LogNetworkUpdate(ILogger logger, long serial, int keys, int revoked, bool fullState);

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Handing job {Job} back: device stopped contributing ({Reason})")]
    private static partial void LogHandingBack(ILogger logger, string job, string reason);

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Declined job {JobId}: {Reason} {Detail}")]
    private static partial void LogDeclined(ILogger logger, string jobId, DeclineReason reason, string detail);

    // Debug, not Information: one console line per job cost about a fifth of the agent's CPU per echo job (the console
    // logger's queue lock, issue #11); failures and declines stay Warning, and every job has its span (#17).
    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Debug, Message = "Running job {JobId} attempt {Attempt} ({Workload})")]
    private static partial void LogRunning(ILogger logger, string jobId, int attempt, string workload);

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Job {JobId} attempt {Attempt} failed: {Error}")]
    private static partial void LogFailed(ILogger logger, string jobId, int attempt, string error);
}

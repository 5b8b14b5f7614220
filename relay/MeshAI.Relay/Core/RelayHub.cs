using System.Collections.Concurrent;
using System.Threading.Channels;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Common.Observability;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Relay.V1;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Relay.Core;

/// <summary>
/// The relay's core: authenticates device streams, keeps one live stream per device, refreshes presence from
/// heartbeats, hands offers/cancellations to devices (<see cref="IJobDispatcher"/>) and forwards job frames to the
/// control plane's <see cref="IJobEventSink"/> with per-attempt byte counts.
/// </summary>
public sealed partial class RelayHub : ILocalRelay
{
    private readonly ConcurrentDictionary<string, DeviceConnection> _connections = new(StringComparer.Ordinal);
    private readonly IDeviceAuthority _authority;
    // Lazy: the control plane's sink itself depends on this hub (as IJobDispatcher); resolving it on first use breaks the cycle.
    private readonly Lazy<IJobEventSink> _lazySink;
    private readonly IPresenceDirectory _presence;
    private readonly INetworkUpdateSource _updates;
    private readonly RelayOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<RelayHub> _logger;
    // The newest NetworkUpdate serial this relay knows per network, and when it last asked the store (heartbeat checks).
    private readonly ConcurrentDictionary<string, NetworkSerial> _networkSerials = new(StringComparer.Ordinal);

    /// <summary>Creates the hub.</summary>
    public RelayHub(
        IDeviceAuthority authority,
        Lazy<IJobEventSink> sink,
        IPresenceDirectory presence,
        INetworkUpdateSource updates,
        IOptions<RelayOptions> options,
        TimeProvider time,
        ILogger<RelayHub> logger)
    {
        _authority = authority;
        _lazySink = sink;
        _presence = presence;
        _updates = updates;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    private IJobEventSink _sink => _lazySink.Value;

    /// <summary>This relay's id.</summary>
    public string RelayId => _options.RelayId;

    /// <summary>Devices with a live stream on this relay.</summary>
    public IReadOnlyCollection<string> ConnectedDeviceIds => [.. _connections.Keys];

    /// <inheritdoc />
    public bool TryOffer(string deviceId, JobOffer offer)
    {
        ArgumentNullException.ThrowIfNull(offer);
        if (!_connections.TryGetValue(deviceId, out var connection))
        {
            return false;
        }

        // Tracing and metrics hooks (#17): the relay's span is the agent's parent; offer bytes count as relay bandwidth.
        using var span = MeshTelemetry.StartJobSpan("meshai.relay.offer", System.Diagnostics.ActivityKind.Internal, "", offer.Traceparent);
        span?.SetTag(MeshTelemetry.DeviceIdKey, deviceId).SetTag("meshai.relay_id", _options.RelayId);
        if (span is not null)
        {
            offer.Traceparent = MeshTelemetry.TraceParent(span);
        }

        if (!connection.TryOffer(offer, out var reason))
        {
            LogOfferRefused(deviceId, reason);
            span?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, reason);
            return false;
        }

        MeshTelemetry.CountRelayBytes(connection.Identity.NetworkId, "to_device", offer.CalculateSize());
        return true;
    }

    /// <inheritdoc />
    public bool TryCancel(string deviceId, JobCancel cancel)
    {
        ArgumentNullException.ThrowIfNull(cancel);
        return _connections.TryGetValue(deviceId, out var connection) && connection.TryCancel(cancel);
    }

    /// <inheritdoc />
    public bool Cut(string deviceId, CutReason reason, string detail)
    {
        if (!_connections.TryGetValue(deviceId, out var connection))
        {
            return false;
        }

        LogCut(deviceId, reason, detail);
        connection.Cut(reason, detail);
        return true;
    }

    /// <summary>
    /// Sends a control-pushed update to every protocol-3 device of <paramref name="networkId"/> on this relay that does not
    /// hold its serial yet; returns how many it was queued for (a full queue is repaired by the next heartbeat's check).
    /// </summary>
    public int PushNetworkUpdate(string networkId, NetworkUpdate update)
    {
        ArgumentNullException.ThrowIfNull(update);
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        NetworkOf(networkId).Raise(update.Serial);
        var revoked = update.RevokedDeviceIds.Count > 0 ? new HashSet<string>(update.RevokedDeviceIds, StringComparer.Ordinal) : null;
        var sent = 0;
        foreach (var connection in _connections.Values)
        {
            if (!string.Equals(connection.Identity.NetworkId, networkId, StringComparison.Ordinal))
            {
                continue;
            }

            // A revocation carried by the update ends the device's stream here at once (control also sends a cut; either suffices).
            if (revoked?.Contains(connection.Identity.DeviceId) == true)
            {
                RevokedCut(connection, "revoked (network update)");
                continue;
            }

            if (connection.TrySendUpdate(update, now))
            {
                sent++;
            }
        }

        LogUpdatePushed(networkId, update.Serial, sent);
        return sent;
    }

    /// <summary>Serves one agent stream from the first frame to the end (the whole Connect call).</summary>
    public async Task ServeAsync(IAsyncStreamReader<ConnectRequest> requests, IServerStreamWriter<ConnectResponse> responses, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(responses);

        var (identity, hello) = await AuthenticateAsync(requests, responses, cancellationToken);
        var capabilities = hello.Capabilities ?? new Contracts.Device.V1.CapabilityReport();
        var protocol = Math.Clamp(hello.ProtocolVersion, 1, RelayOptions.ProtocolVersion);
        var connection = new DeviceConnection(identity, _options.MaxOutboundQueue, _options.MaxOpenJobsPerDevice, protocol, hello.NetworkSerial, _time.GetUtcNow().ToUnixTimeMilliseconds(), _options.HeartbeatAckEvery);
        IReadOnlyCollection<HeldAttempt>? held = protocol >= 2 ? hello.HeldAttempts : null;
        foreach (var attempt in held ?? [])
        {
            connection.TryResume(new DeviceConnection.JobKey(attempt.JobId, attempt.Attempt, attempt.ChunkId));
        }

        DeviceConnection? previous = null;
        _connections.AddOrUpdate(identity.DeviceId, connection, (_, old) =>
        {
            previous = old;
            return connection;
        });
        previous?.Cut(CutReason.Replaced, "a newer stream for this device connected");

        LogConnected(identity.DeviceId, identity.NetworkId);
        UpsertPresence(identity, capabilities, contributionEnabled: false, _time.GetUtcNow());
        connection.TryEnqueue(new ConnectResponse
        {
            Welcome = new Welcome
            {
                DeviceId = identity.DeviceId,
                RelayId = _options.RelayId,
                HeartbeatIntervalMs = _options.HeartbeatIntervalMs,
                GraceMs = _options.HeartbeatGraceSeconds * 1000,
                ProtocolVersion = protocol,
                RelayUrls = { _options.PublicUrlList },
                HeartbeatAckEvery = connection.HeartbeatAckEvery,
            },
        });
        await Forward(identity, "connected", () => _sink.OnConnectedAsync(identity, held, cancellationToken));

        using var streamCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var uplink = new Uplink(_options.MaxPendingTerminalFrames);
        // A stream whose heartbeats stop (a hung or partitioned agent: the TCP connection may stay open for a long time) is cut
        // after the grace period, so its jobs go elsewhere; every heartbeat re-arms the watchdog.
        using var watchdog = new StreamWatchdog(_time, TimeSpan.FromSeconds(_options.HeartbeatGraceSeconds), () =>
        {
            LogCut(identity.DeviceId, CutReason.HeartbeatTimeout, $"nothing received for {_options.HeartbeatGraceSeconds} s");
            connection.Cut(CutReason.HeartbeatTimeout, $"no heartbeat for {_options.HeartbeatGraceSeconds} s");
            CancelSoon(streamCts); // a hung agent may not read the Cut frame: do not wait on its stream
        });
        var writer = connection.RunWriterAsync((frame, ct) => responses.WriteAsync(frame, ct), streamCts.Token);
        if (protocol >= 3)
        {
            // What the device missed of its network's updates (off the read path: it needs the store).
            await uplink.EnqueueAsync(Uplink.NetworkLane, terminal: false, () => CatchUpAsync(connection, hello.NetworkSerial, streamCts.Token), streamCts.Token);
        }

        var reader = ReadLoopAsync(connection, requests, uplink, watchdog, streamCts.Token);
        try
        {
            await Task.WhenAny(writer, reader);
        }
        finally
        {
            connection.Close();
            await streamCts.CancelAsync();
            await Settle(writer);
            await Settle(reader);
            await Settle(uplink.DrainAsync());
            var stillCurrent = _connections.TryRemove(new KeyValuePair<string, DeviceConnection>(identity.DeviceId, connection));
            if (stillCurrent)
            {
                _presence.Remove(identity.DeviceId);
            }

            LogDisconnected(identity.DeviceId, connection.CutReason?.ToString() ?? "stream ended");
            // A stream replaced by a newer one of the same device here is not a disconnect: the device is online on the newer
            // stream, which already reported its connect (with the attempts it holds). Ended any other way, control is told.
            if (stillCurrent || connection.CutReason != CutReason.Replaced)
            {
                try
                {
                    await _sink.OnDisconnectedAsync(identity, CancellationToken.None);
                }
                catch (Exception ex)
                {
                    LogSinkFailed(ex, identity.DeviceId, "disconnected");
                }
            }
        }

        if (connection.CutReason == CutReason.Revoked)
        {
            throw RpcErrors.PermissionDenied("device revoked", ErrorReasons.DeviceRevoked);
        }
    }

    private async Task<(DeviceIdentity Identity, AgentHello Hello)> AuthenticateAsync(
        IAsyncStreamReader<ConnectRequest> requests, IServerStreamWriter<ConnectResponse> responses, CancellationToken cancellationToken)
    {
        using var authCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        authCts.CancelAfter(TimeSpan.FromSeconds(_options.AuthTimeoutSeconds));
        try
        {
            if (!await requests.MoveNext(authCts.Token) || requests.Current.FrameCase != ConnectRequest.FrameOneofCase.Hello ||
                requests.Current.Hello.Certificate is null)
            {
                throw await RefuseAsync(responses, "the first frame must be an AgentHello with a certificate", StatusCode.Unauthenticated, cancellationToken);
            }

            var hello = requests.Current.Hello;
            var (identity, reason) = await _authority.AuthenticateAsync(hello.Certificate, authCts.Token);
            if (identity is null)
            {
                throw await RefuseAsync(responses, "certificate refused: " + reason, StatusCode.PermissionDenied, cancellationToken);
            }

            var nonce = ChallengeVerifier.NewNonce();
            await responses.WriteAsync(new ConnectResponse { Challenge = new Challenge { Nonce = Google.Protobuf.ByteString.CopyFrom(nonce), RelayId = _options.RelayId } }, authCts.Token);
            if (!await requests.MoveNext(authCts.Token) || requests.Current.FrameCase != ConnectRequest.FrameOneofCase.ChallengeAnswer)
            {
                throw await RefuseAsync(responses, "expected a ChallengeAnswer", StatusCode.Unauthenticated, cancellationToken);
            }

            if (!ChallengeVerifier.Verify(identity.SigningPublicKey, nonce, _options.RelayId, requests.Current.ChallengeAnswer.Signature.Span))
            {
                throw await RefuseAsync(responses, "challenge signature invalid", StatusCode.Unauthenticated, cancellationToken);
            }

            return (identity, hello);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            LogAuthRefused("authentication timed out");
            throw RpcErrors.Unauthenticated($"authentication did not complete within {_options.AuthTimeoutSeconds} s");
        }
    }

    private async Task<RpcException> RefuseAsync(IServerStreamWriter<ConnectResponse> responses, string reason, StatusCode code, CancellationToken cancellationToken)
    {
        LogAuthRefused(reason);
        try
        {
            await responses.WriteAsync(new ConnectResponse { Cut = new Cut { Reason = CutReason.AuthFailed, Detail = reason } }, cancellationToken);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or OperationCanceledException)
        {
            // The client may already be gone; the status below still ends the call.
        }

        return code == StatusCode.PermissionDenied ? RpcErrors.PermissionDenied(reason) : RpcErrors.Unauthenticated(reason);
    }

    /// <summary>
    /// The path of one stream's job frames to control: one ordered lane per job (a job's tokens, then its result, in the
    /// order the agent sent them), lanes of different jobs independent — a job whose owner is gone (its terminal frame being
    /// retried) does not hold up the device's other jobs. At most <c>capacity</c> frames are in flight; the read loop waits
    /// for room (back-pressure up to the agent), except that stream frames of a job whose terminal frame is being retried
    /// are dropped (they are soft) so heartbeats keep being read.
    /// </summary>
    private sealed class Uplink(int capacity) : IDisposable
    {
        /// <summary>The lane of a stream's store chores (network update catch-up and acknowledgements, heartbeat checks).</summary>
        public const string NetworkLane = "\u0000network";

        private readonly Dictionary<string, Task> _lanes = new(StringComparer.Ordinal);
        private readonly HashSet<string> _retrying = new(StringComparer.Ordinal);
        private readonly Lock _gate = new();
        private readonly SemaphoreSlim _room = new(capacity, capacity);

        public async ValueTask EnqueueAsync(string jobId, bool terminal, Func<Task> forward, CancellationToken ct)
        {
            if (!terminal && IsRetrying(jobId))
            {
                return;
            }

            await _room.WaitAsync(ct);
            lock (_gate)
            {
                var lane = Chain(_lanes.GetValueOrDefault(jobId) ?? Task.CompletedTask, forward);
                _lanes[jobId] = lane;
                _ = lane.ContinueWith(done => Forget(jobId, done), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }

        public bool IsRetrying(string jobId)
        {
            lock (_gate)
            {
                return _retrying.Contains(jobId);
            }
        }

        public void SetRetrying(string jobId, bool retrying)
        {
            lock (_gate)
            {
                if (retrying)
                {
                    _retrying.Add(jobId);
                }
                else
                {
                    _retrying.Remove(jobId);
                }
            }
        }

        public void Dispose() => _room.Dispose();

        public Task DrainAsync()
        {
            lock (_gate)
            {
                return Task.WhenAll(_lanes.Values);
            }
        }

        private async Task Chain(Task previous, Func<Task> forward)
        {
            try
            {
                await previous;
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException or RpcException)
            {
                // the earlier frame's failure was its own; this one still goes
            }

            try
            {
                await forward();
            }
            finally
            {
                _room.Release();
            }
        }

        private void Forget(string jobId, Task done)
        {
            lock (_gate)
            {
                if (_lanes.TryGetValue(jobId, out var current) && current == done)
                {
                    _lanes.Remove(jobId);
                }
            }
        }
    }

    private ValueTask TerminalAsync(DeviceConnection connection, Uplink uplink, string jobId, string kind, long sequence, string traceParent, Func<CancellationToken, Task> forward, CancellationToken ct) =>
        uplink.EnqueueAsync(jobId, terminal: true, async () =>
        {
            // Tracing hook (#17): the agent's span is the parent; the bus report to control carries this span's context.
            using var span = MeshTelemetry.StartJobSpan("meshai.relay.forward", System.Diagnostics.ActivityKind.Internal, jobId, traceParent);
            span?.SetTag("meshai.frame", kind).SetTag(MeshTelemetry.DeviceIdKey, connection.Identity.DeviceId);
            var delay = TimeSpan.FromMilliseconds(50);
            while (true)
            {
                try
                {
                    await forward(ct);
                    uplink.SetRetrying(jobId, false);
                    break;
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    uplink.SetRetrying(jobId, true);
                    LogForwardRetry(connection.Identity.DeviceId, kind, ex.Message, delay.TotalMilliseconds);
                    await Task.Delay(delay, _time, ct);
                    delay = TimeSpan.FromMilliseconds(Math.Min(_options.ForwardRetryMaxMs, delay.TotalMilliseconds * 2));
                }
            }

            if (sequence > 0)
            {
                await connection.SendAsync(new ConnectResponse { FrameAck = new FrameAck { Sequence = sequence } }, ct);
            }
        }, ct);

    private static ValueTask StreamAsync(Uplink uplink, string jobId, Func<CancellationToken, Task> forward, CancellationToken ct) =>
        uplink.EnqueueAsync(jobId, terminal: false, () => forward(ct), ct);

    private async Task ReadLoopAsync(DeviceConnection connection, IAsyncStreamReader<ConnectRequest> requests, Uplink uplink, StreamWatchdog watchdog, CancellationToken cancellationToken)
    {
        var device = connection.Identity;
        while (await requests.MoveNext(cancellationToken))
        {
            watchdog.Handling(true);
            var frame = requests.Current;
            var size = frame.CalculateSize();
            var sequence = frame.Sequence;
            switch (frame.FrameCase)
            {
                case ConnectRequest.FrameOneofCase.Heartbeat:
                    await OnHeartbeatAsync(connection, frame.Heartbeat, uplink, cancellationToken);
                    break;
                case ConnectRequest.FrameOneofCase.NetworkUpdateAck:
                    var serial = frame.NetworkUpdateAck.Serial;
                    var before = connection.Acknowledge(serial);
                    if (serial > before)
                    {
                        await uplink.EnqueueAsync(Uplink.NetworkLane, terminal: false, () => RecordAcknowledgedAsync(connection, serial, before, cancellationToken), cancellationToken);
                    }

                    break;
                case ConnectRequest.FrameOneofCase.JobAccept:
                    var accept = frame.JobAccept;
                    if (Track(connection, accept.JobId, accept.Attempt, accept.ChunkId, size, close: false, out _))
                    {
                        await TerminalAsync(connection, uplink, accept.JobId, "accept", sequence, frame.Traceparent, ct => _sink.OnAcceptedAsync(device, accept, ct), cancellationToken);
                    }

                    break;
                case ConnectRequest.FrameOneofCase.JobDecline:
                    var decline = frame.JobDecline;
                    if (Track(connection, decline.JobId, decline.Attempt, decline.ChunkId, size, close: true, out _))
                    {
                        await TerminalAsync(connection, uplink, decline.JobId, "decline", sequence, frame.Traceparent, ct => _sink.OnDeclinedAsync(device, decline, ct), cancellationToken);
                    }

                    break;
                case ConnectRequest.FrameOneofCase.JobProgress:
                    var progress = frame.JobProgress;
                    if (Track(connection, progress.JobId, progress.Attempt, progress.ChunkId, size, close: false, out _))
                    {
                        await StreamAsync(uplink, progress.JobId, ct => Forward(device, "progress", () => _sink.OnProgressAsync(device, progress, ct)), cancellationToken);
                    }

                    break;
                case ConnectRequest.FrameOneofCase.JobToken:
                    var token = frame.JobToken;
                    if (Track(connection, token.JobId, token.Attempt, null, size, close: false, out _))
                    {
                        await StreamAsync(uplink, token.JobId, ct => Forward(device, "token", () => _sink.OnTokenAsync(device, token, ct)), cancellationToken);
                    }

                    break;
                case ConnectRequest.FrameOneofCase.JobLog:
                    var log = frame.JobLog;
                    if (Track(connection, log.JobId, log.Attempt, null, size, close: false, out _))
                    {
                        await StreamAsync(uplink, log.JobId, ct => Forward(device, "log", () => _sink.OnLogAsync(device, log, ct)), cancellationToken);
                    }

                    break;
                case ConnectRequest.FrameOneofCase.JobResult:
                    var result = frame.JobResult;
                    if (Track(connection, result.JobId, result.Attempt, result.ChunkId, size, close: true, out var resultBytes))
                    {
                        await TerminalAsync(connection, uplink, result.JobId, "result", sequence, frame.Traceparent, ct => _sink.OnResultAsync(device, result, resultBytes, ct), cancellationToken);
                    }

                    break;
                case ConnectRequest.FrameOneofCase.JobFailure:
                    var failure = frame.JobFailure;
                    if (Track(connection, failure.JobId, failure.Attempt, failure.ChunkId, size, close: true, out var failureBytes))
                    {
                        await TerminalAsync(connection, uplink, failure.JobId, "failure", sequence, frame.Traceparent, ct => _sink.OnFailureAsync(device, failure, failureBytes, ct), cancellationToken);
                    }

                    break;
                default:
                    LogUnexpectedFrame(device.DeviceId, frame.FrameCase.ToString());
                    break;
            }

            watchdog.Handling(false);
        }
    }

    /// <summary>
    /// Cuts a stream whose agent stopped sending (a hung or partitioned agent): every frame read counts as a sign of life.
    /// While the read loop is handling a frame — possibly waiting for room to forward it (back-pressure from a slow control
    /// plane) — the relay is not reading, so silence proves nothing about the agent: the watchdog waits instead of cutting.
    /// A frame only records its time (issue #11: re-arming a timer per frame contended the runtime's timer lock across
    /// thousands of streams); the timer fires once per grace and re-arms itself for what is left since the last frame, so the
    /// cut still comes exactly one grace after the last frame.
    /// </summary>
    private sealed class StreamWatchdog : IDisposable
    {
        private readonly ITimer _timer;
        private readonly TimeProvider _time;
        private readonly TimeSpan _grace;
        private readonly Action _expired;
        private long _lastFrame;
        private int _handling;

        public StreamWatchdog(TimeProvider time, TimeSpan grace, Action expired)
        {
            _time = time;
            _grace = grace;
            _expired = expired;
            _lastFrame = time.GetTimestamp();
            _timer = time.CreateTimer(static state => ((StreamWatchdog)state!).Fire(), this, grace, Timeout.InfiniteTimeSpan);
        }

        /// <summary>A frame arrived and is being handled (true), or was handled (false: the grace starts again).</summary>
        public void Handling(bool handling)
        {
            Volatile.Write(ref _handling, handling ? 1 : 0);
            Volatile.Write(ref _lastFrame, _time.GetTimestamp());
        }

        public void Dispose() => _timer.Dispose();

        private void Fire()
        {
            var silent = _time.GetElapsedTime(Volatile.Read(ref _lastFrame));
            if (Volatile.Read(ref _handling) == 1)
            {
                _timer.Change(_grace, Timeout.InfiniteTimeSpan);
            }
            else if (silent >= _grace)
            {
                _expired();
            }
            else
            {
                _timer.Change(_grace - silent, Timeout.InfiniteTimeSpan);
            }
        }
    }

    /// <summary>
    /// Presence and the acknowledgement at once (protocol 4: only the heartbeats <see cref="RelayOptions.AcknowledgesHeartbeat"/>
    /// names; no store on the read path: a store outage must not stop heartbeats). The
    /// store checks run in the stream's network lane, one at a time, and only when there is something to check (issue #11:
    /// a read per heartbeat cost more than the heartbeat itself): the network's serial is asked at most once per heartbeat
    /// interval per network (not per device); a stream re-reads its device's revocation when that serial moved since its last
    /// check (every revocation records a network update) and at least every <see cref="RelayOptions.RevocationRecheckSeconds"/>;
    /// a protocol-3 device behind the serial is caught up.
    /// </summary>
    private async Task OnHeartbeatAsync(DeviceConnection connection, Heartbeat heartbeat, Uplink uplink, CancellationToken cancellationToken)
    {
        var device = connection.Identity;
        var now = _time.GetUtcNow();
        UpsertPresence(device, heartbeat.Capabilities ?? EmptyCapabilities, heartbeat.ContributionEnabled, now);
        if (RelayOptions.AcknowledgesHeartbeat(heartbeat.Sequence, connection.HeartbeatAckEvery))
        {
            connection.TryEnqueue(new ConnectResponse
            {
                HeartbeatAck = new HeartbeatAck { Sequence = heartbeat.Sequence, ServerTime = Timestamp.FromDateTimeOffset(now) },
            });
        }

        var network = NetworkOf(device.NetworkId);
        var nowMs = now.ToUnixTimeMilliseconds();
        var poll = network.TryBeginPoll(nowMs, _options.HeartbeatIntervalMs);
        if (!poll && !ChecksDue(connection, network, nowMs))
        {
            return;
        }

        if (!connection.TryBeginChecks())
        {
            network.EndPoll(polled: false, nowMs);
            return;
        }

        await uplink.EnqueueAsync(Uplink.NetworkLane, terminal: false, () => HeartbeatChecksAsync(connection, network, poll, cancellationToken), cancellationToken);
    }

    private static readonly Contracts.Device.V1.CapabilityReport EmptyCapabilities = new();

    /// <summary>True when the stream has a store check to make: its revocation (the serial moved, or the recheck period passed) or a catch-up.</summary>
    private bool ChecksDue(DeviceConnection connection, NetworkSerial network, long nowMs) =>
        connection.RevocationCheckedSerial < network.Serial ||
        nowMs - connection.RevocationCheckedMs >= _options.RevocationRecheckSeconds * 1000L ||
        Behind(connection, network, nowMs);

    private async Task HeartbeatChecksAsync(DeviceConnection connection, NetworkSerial network, bool poll, CancellationToken cancellationToken)
    {
        var device = connection.Identity;
        var polled = false;
        try
        {
            if (poll)
            {
                network.Raise(await _updates.LatestSerialAsync(device.NetworkId, cancellationToken));
                polled = true;
                network.EndPoll(polled: true, _time.GetUtcNow().ToUnixTimeMilliseconds());
                poll = false;
            }

            var serial = network.Serial;
            var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
            if (connection.RevocationCheckedSerial < serial || nowMs - connection.RevocationCheckedMs >= _options.RevocationRecheckSeconds * 1000L)
            {
                if (await _authority.IsRevokedAsync(device.DeviceId, device.CertificateSerial, cancellationToken))
                {
                    RevokedCut(connection, "revoked (seen on heartbeat)");
                    return;
                }

                connection.RevocationChecked(serial, nowMs);
            }

            if (connection.Protocol >= 3 && Behind(connection, network, nowMs))
            {
                await CatchUpAsync(connection, connection.NetworkSerial, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The store is unreachable: keep the stream (revocations also arrive as cuts); the next heartbeat checks again.
            LogChecksFailed(device.DeviceId, ex.Message);
        }
        finally
        {
            if (poll && !polled)
            {
                network.EndPoll(polled: false, 0);
            }

            connection.EndChecks();
        }
    }

    private void RevokedCut(DeviceConnection connection, string detail)
    {
        _presence.Remove(connection.Identity.DeviceId);
        LogCut(connection.Identity.DeviceId, CutReason.Revoked, detail);
        connection.Cut(CutReason.Revoked, "device revoked");
    }

    /// <summary>True when the device holds an older serial than its network's and no update is on its way to it.</summary>
    private bool Behind(DeviceConnection connection, NetworkSerial network, long nowMs) =>
        connection.Protocol >= 3 && connection.NetworkSerial < network.Serial && nowMs - connection.UpdateSentMs >= 2L * _options.HeartbeatIntervalMs;

    private NetworkSerial NetworkOf(string networkId) =>
        _networkSerials.TryGetValue(networkId, out var known) ? known : _networkSerials.GetOrAdd(networkId, static _ => new NetworkSerial());

    /// <summary>What this relay knows of one network's NetworkUpdate serial, and the one poll of the store at a time.</summary>
    private sealed class NetworkSerial
    {
        private long _serial;
        private long _checkedMs; // 0: never asked (long.MinValue would overflow the subtraction)
        private int _polling;

        public long Serial => Interlocked.Read(ref _serial);

        /// <summary>Raises the known serial (never lowers it).</summary>
        public void Raise(long serial) => Monotonic.Raise(ref _serial, serial);

        /// <summary>True (and the caller polls) when the store was last asked an interval ago or more and nobody is asking now.</summary>
        public bool TryBeginPoll(long nowMs, int intervalMs) =>
            nowMs - Interlocked.Read(ref _checkedMs) >= intervalMs && Interlocked.CompareExchange(ref _polling, 1, 0) == 0;

        public void EndPoll(bool polled, long nowMs)
        {
            if (polled)
            {
                Interlocked.Exchange(ref _checkedMs, nowMs);
            }

            Volatile.Write(ref _polling, 0);
        }
    }

    private async Task CatchUpAsync(DeviceConnection connection, long appliedSerial, CancellationToken cancellationToken)
    {
        try
        {
            if (await _updates.CatchUpAsync(connection.Identity.NetworkId, appliedSerial, cancellationToken) is { } update &&
                connection.TrySendUpdate(update, _time.GetUtcNow().ToUnixTimeMilliseconds()))
            {
                LogCaughtUp(connection.Identity.DeviceId, appliedSerial, update.Serial, update.FullState);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogChecksFailed(connection.Identity.DeviceId, ex.Message);
        }
    }

    private async Task RecordAcknowledgedAsync(DeviceConnection connection, long serial, long before, CancellationToken cancellationToken)
    {
        try
        {
            await _updates.AcknowledgeAsync(connection.Identity, serial, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Not recorded: forget it here too, so the next heartbeat's check sends the update again and the device re-acknowledges.
            connection.Unacknowledge(serial, before);
            LogChecksFailed(connection.Identity.DeviceId, ex.Message);
        }
    }

    private static void CancelSoon(CancellationTokenSource cts)
    {
        try
        {
            cts.CancelAfter(TimeSpan.FromSeconds(1));
        }
        catch (ObjectDisposedException)
        {
            // the stream already ended
        }
    }

    private void UpsertPresence(DeviceIdentity device, Contracts.Device.V1.CapabilityReport capabilities, bool contributionEnabled, DateTimeOffset now) =>
        _presence.Upsert(new PresenceRecord(
            device.DeviceId, device.NetworkId, _options.RelayId, capabilities, contributionEnabled, now, capabilities.NetworkRttMs));

    private bool Track(DeviceConnection connection, string jobId, int attempt, string? chunkId, int size, bool close, out long totalBytes)
    {
        if (connection.TryCountInbound(jobId, attempt, chunkId, size, close, out totalBytes))
        {
            MeshTelemetry.CountRelayBytes(connection.Identity.NetworkId, "from_device", size); // metrics hook (#17)
            return true;
        }

        LogForeignJobFrame(connection.Identity.DeviceId, jobId, attempt);
        return false;
    }

    private async Task Forward(DeviceIdentity device, string what, Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (Exception ex)
        {
            LogSinkFailed(ex, device.DeviceId, what);
        }
    }

    private static async Task Settle(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException or RpcException)
        {
            // The stream is over either way; its end is logged by the caller.
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Device {DeviceId} of network {NetworkId} connected")]
    private partial void LogConnected(string deviceId, string networkId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Device {DeviceId} disconnected ({Reason})")]
    private partial void LogDisconnected(string deviceId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Relay stream refused: {Reason}")]
    private partial void LogAuthRefused(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cutting device {DeviceId}: {Reason} {Detail}")]
    private partial void LogCut(string deviceId, CutReason reason, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Offer to device {DeviceId} refused: {Reason}")]
    private partial void LogOfferRefused(string deviceId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Device {DeviceId} sent a frame for job {JobId} attempt {Attempt} that was not offered to it; ignored")]
    private partial void LogForeignJobFrame(string deviceId, string jobId, int attempt);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Device {DeviceId} sent an unexpected {Frame} frame; ignored")]
    private partial void LogUnexpectedFrame(string deviceId, string frame);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Device {DeviceId}: {Kind} not handled yet ({Error}); retrying in {DelayMs} ms")]
    private partial void LogForwardRetry(string deviceId, string kind, string error, double delayMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Network {NetworkId}: update {Serial} queued for {Devices} device(s) on this relay")]
    private partial void LogUpdatePushed(string networkId, long serial, int devices);

    [LoggerMessage(Level = LogLevel.Information, Message = "Device {DeviceId} held network update {From}; sent {Serial} (whole state: {FullState})")]
    private partial void LogCaughtUp(string deviceId, long from, long serial, bool fullState);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Device {DeviceId}: store check failed ({Error}); retried on the next heartbeat")]
    private partial void LogChecksFailed(string deviceId, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job event sink failed on {What} from device {DeviceId}")]
    private partial void LogSinkFailed(Exception exception, string deviceId, string what);
}

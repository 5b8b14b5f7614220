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
public sealed partial class RelayHub : IJobDispatcher
{
    private readonly ConcurrentDictionary<string, DeviceConnection> _connections = new(StringComparer.Ordinal);
    private readonly IDeviceAuthority _authority;
    // Lazy: the control plane's sink itself depends on this hub (as IJobDispatcher); resolving it on first use breaks the cycle.
    private readonly Lazy<IJobEventSink> _lazySink;
    private readonly IPresenceDirectory _presence;
    private readonly RelayOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<RelayHub> _logger;

    /// <summary>Creates the hub.</summary>
    public RelayHub(
        IDeviceAuthority authority,
        Lazy<IJobEventSink> sink,
        IPresenceDirectory presence,
        IOptions<RelayOptions> options,
        TimeProvider time,
        ILogger<RelayHub> logger)
    {
        _authority = authority;
        _lazySink = sink;
        _presence = presence;
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

    /// <summary>Serves one agent stream from the first frame to the end (the whole Connect call).</summary>
    public async Task ServeAsync(IAsyncStreamReader<ConnectRequest> requests, IServerStreamWriter<ConnectResponse> responses, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(responses);

        var (identity, hello) = await AuthenticateAsync(requests, responses, cancellationToken);
        var capabilities = hello.Capabilities ?? new Contracts.Device.V1.CapabilityReport();
        var protocol = Math.Clamp(hello.ProtocolVersion, 1, RelayOptions.ProtocolVersion);
        var connection = new DeviceConnection(identity, _options.MaxOutboundQueue, _options.MaxOpenJobsPerDevice);
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
        UpsertPresence(identity, capabilities, contributionEnabled: false);
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
            },
        });
        await Forward(identity, "connected", () => _sink.OnConnectedAsync(identity, held, cancellationToken));

        using var streamCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var uplink = new Uplink(_options.MaxPendingTerminalFrames);
        var writer = connection.RunWriterAsync((frame, ct) => responses.WriteAsync(frame, ct), streamCts.Token);
        var reader = ReadLoopAsync(connection, requests, uplink, streamCts.Token);
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
            try
            {
                await _sink.OnDisconnectedAsync(identity, CancellationToken.None);
            }
            catch (Exception ex)
            {
                LogSinkFailed(ex, identity.DeviceId, "disconnected");
            }
        }

        if (connection.CutReason == CutReason.Revoked)
        {
            throw RpcErrors.PermissionDenied("device revoked");
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

    private async Task ReadLoopAsync(DeviceConnection connection, IAsyncStreamReader<ConnectRequest> requests, Uplink uplink, CancellationToken cancellationToken)
    {
        var device = connection.Identity;
        while (await requests.MoveNext(cancellationToken))
        {
            var frame = requests.Current;
            var size = frame.CalculateSize();
            var sequence = frame.Sequence;
            switch (frame.FrameCase)
            {
                case ConnectRequest.FrameOneofCase.Heartbeat:
                    await OnHeartbeatAsync(connection, frame.Heartbeat, cancellationToken);
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
        }
    }

    private async Task OnHeartbeatAsync(DeviceConnection connection, Heartbeat heartbeat, CancellationToken cancellationToken)
    {
        var device = connection.Identity;
        if (await _authority.IsRevokedAsync(device.DeviceId, device.CertificateSerial, cancellationToken))
        {
            _presence.Remove(device.DeviceId);
            LogCut(device.DeviceId, CutReason.Revoked, "revoked (seen on heartbeat)");
            connection.Cut(CutReason.Revoked, "device revoked");
            return;
        }

        UpsertPresence(device, heartbeat.Capabilities ?? new Contracts.Device.V1.CapabilityReport(), heartbeat.ContributionEnabled);
        connection.TryEnqueue(new ConnectResponse
        {
            HeartbeatAck = new HeartbeatAck { Sequence = heartbeat.Sequence, ServerTime = Timestamp.FromDateTimeOffset(_time.GetUtcNow()) },
        });
    }

    private void UpsertPresence(DeviceIdentity device, Contracts.Device.V1.CapabilityReport capabilities, bool contributionEnabled) =>
        _presence.Upsert(new PresenceRecord(
            device.DeviceId, device.NetworkId, _options.RelayId, capabilities, contributionEnabled, _time.GetUtcNow(), capabilities.NetworkRttMs));

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

    [LoggerMessage(Level = LogLevel.Error, Message = "Job event sink failed on {What} from device {DeviceId}")]
    private partial void LogSinkFailed(Exception exception, string deviceId, string what);
}

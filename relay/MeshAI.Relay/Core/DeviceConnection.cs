using System.Threading.Channels;
using Google.Protobuf;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Relay.Core;

/// <summary>
/// One authenticated device stream: its outgoing queue (drained by a single writer loop, so the gRPC stream is
/// never written concurrently), the job attempts offered on it and the relay bytes counted for each.
/// </summary>
public sealed class DeviceConnection
{
    private readonly Channel<ConnectResponse> _outbound;
    private readonly Dictionary<JobKey, long> _openJobs = [];
    private readonly Lock _jobsLock = new();
    private readonly int _maxOpenJobs;
    private ConnectResponse? _cutFrame;
    private long _networkSerial;
    private long _updateSentMs = long.MinValue;
    private int _checking;
    private long _revocationCheckedSerial;
    private long _revocationCheckedMs;

    /// <summary>Creates a connection for an authenticated device speaking relay <paramref name="protocol"/>.</summary>
    public DeviceConnection(DeviceIdentity identity, int maxOutboundQueue, int maxOpenJobs, int protocol = 1, long networkSerial = 0, long authenticatedMs = 0, int heartbeatAckEvery = 0)
    {
        HeartbeatAckEvery = protocol >= 4 ? heartbeatAckEvery : 0;
        _revocationCheckedMs = authenticatedMs;
        Identity = identity;
        Protocol = protocol;
        _networkSerial = networkSerial;
        _maxOpenJobs = maxOpenJobs;
        _outbound = Channel.CreateBounded<ConnectResponse>(new BoundedChannelOptions(maxOutboundQueue)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>Protocol 4: heartbeats per acknowledgement announced in Welcome (0: every heartbeat, older agents).</summary>
    public int HeartbeatAckEvery { get; }

    /// <summary>The authenticated device.</summary>
    public DeviceIdentity Identity { get; }

    /// <summary>The relay protocol negotiated on this stream (3: NetworkUpdate pushes).</summary>
    public int Protocol { get; }

    /// <summary>The newest NetworkUpdate serial the device holds: named in its hello, then raised by its acknowledgements.</summary>
    public long NetworkSerial => Interlocked.Read(ref _networkSerial);

    /// <summary>Raises <see cref="NetworkSerial"/> to <paramref name="serial"/> (never lowers it); returns the value before.</summary>
    public long Acknowledge(long serial) => Monotonic.Raise(ref _networkSerial, serial);

    /// <summary>Forgets an acknowledgement control could not record (so the update is sent again and re-acknowledged).</summary>
    public void Unacknowledge(long serial, long previous) => Interlocked.CompareExchange(ref _networkSerial, previous, serial);

    /// <summary>Queues a NetworkUpdate for a protocol-3 device that does not hold its serial yet; false when not sent.</summary>
    public bool TrySendUpdate(NetworkUpdate update, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (Protocol < 3 || (!update.FullState && update.Serial <= NetworkSerial) || !_outbound.Writer.TryWrite(new ConnectResponse { NetworkUpdate = update }))
        {
            return false;
        }

        Interlocked.Exchange(ref _updateSentMs, nowMs);
        return true;
    }

    /// <summary>When the relay last sent this device an update (ms since the epoch), so heartbeats do not re-send one on its way.</summary>
    public long UpdateSentMs => Interlocked.Read(ref _updateSentMs);

    /// <summary>The network serial at this stream's last revocation read (0: none since it connected; authentication read it then).</summary>
    public long RevocationCheckedSerial => Interlocked.Read(ref _revocationCheckedSerial);

    /// <summary>When this stream's revocation was last read (ms since the epoch; authentication counts).</summary>
    public long RevocationCheckedMs => Interlocked.Read(ref _revocationCheckedMs);

    /// <summary>Records a revocation read made while the network's serial was <paramref name="serial"/>.</summary>
    public void RevocationChecked(long serial, long nowMs)
    {
        Interlocked.Exchange(ref _revocationCheckedSerial, Math.Max(serial, RevocationCheckedSerial));
        Interlocked.Exchange(ref _revocationCheckedMs, nowMs);
    }

    /// <summary>Claims the stream's one slot for a heartbeat's store checks (revocation, network serial); false while one runs.</summary>
    public bool TryBeginChecks() => Interlocked.CompareExchange(ref _checking, 1, 0) == 0;

    /// <summary>Frees the slot taken by <see cref="TryBeginChecks"/>.</summary>
    public void EndChecks() => Volatile.Write(ref _checking, 0);

    /// <summary>The reason this stream was cut, once it was.</summary>
    public CutReason? CutReason => Volatile.Read(ref _cutFrame)?.Cut.Reason;

    /// <summary>A job attempt on this stream; <see cref="ChunkId"/> is empty for unchunked jobs.</summary>
    public readonly record struct JobKey(string JobId, int Attempt, string ChunkId);

    /// <summary>Queues a frame that concerns no job (handshake, heartbeat ack); false when the queue is full or closed.</summary>
    public bool TryEnqueue(ConnectResponse frame) => _outbound.Writer.TryWrite(frame);

    /// <summary>Queues a frame that must not be dropped (acknowledgements): waits for room (back-pressure) instead.</summary>
    public ValueTask SendAsync(ConnectResponse frame, CancellationToken cancellationToken) => _outbound.Writer.WriteAsync(frame, cancellationToken);

    /// <summary>
    /// Opens an attempt the device says it still runs or holds a result of (protocol 2, after a reconnect — possibly to another
    /// relay): its frames are accepted on this stream and counted from zero. Control checks that the attempt was placed there.
    /// </summary>
    public bool TryResume(JobKey key)
    {
        lock (_jobsLock)
        {
            if (_openJobs.Count >= _maxOpenJobs && !_openJobs.ContainsKey(key))
            {
                return false;
            }

            _openJobs.TryAdd(key, 0);
            return true;
        }
    }

    /// <summary>Queues an offer and starts counting its bytes; false (with a reason) when it cannot be delivered.</summary>
    public bool TryOffer(JobOffer offer, out string reason)
    {
        reason = "";
        PlacementTicketDetails details;
        try
        {
            details = PlacementTicketDetails.Parser.ParseFrom(offer.Ticket?.Details ?? ByteString.Empty);
        }
        catch (InvalidProtocolBufferException)
        {
            reason = "ticket details malformed";
            return false;
        }

        if (!string.Equals(details.DeviceId, Identity.DeviceId, StringComparison.Ordinal) || string.IsNullOrEmpty(details.JobId))
        {
            reason = "ticket is not for this device";
            return false;
        }

        var key = new JobKey(details.JobId, details.Attempt, offer.Chunk?.ChunkId is { Length: > 0 } c ? c : details.ChunkId);
        var frame = new ConnectResponse { JobOffer = offer };
        lock (_jobsLock)
        {
            if (_openJobs.Count >= _maxOpenJobs && !_openJobs.ContainsKey(key))
            {
                reason = "too many open jobs on this device";
                return false;
            }

            if (!_outbound.Writer.TryWrite(frame))
            {
                reason = "outbound queue full or stream closed";
                return false;
            }

            _openJobs[key] = frame.CalculateSize();
        }

        return true;
    }

    /// <summary>Queues a cancellation for an open job attempt; false when it is not open here or the queue is full.</summary>
    public bool TryCancel(JobCancel cancel)
    {
        var frame = new ConnectResponse { JobCancel = cancel };
        lock (_jobsLock)
        {
            var keys = MatchingKeys(cancel.JobId, cancel.Attempt);
            if (keys.Count == 0 || !_outbound.Writer.TryWrite(frame))
            {
                return false;
            }

            var size = frame.CalculateSize();
            foreach (var key in keys)
            {
                _openJobs[key] += size;
            }
        }

        return true;
    }

    /// <summary>
    /// Counts an inbound frame against its job attempt. Returns false when the attempt was never offered to this device
    /// (the frame must then be ignored). <paramref name="close"/> ends the attempt and returns its byte total.
    /// </summary>
    public bool TryCountInbound(string jobId, int attempt, string? chunkId, int frameBytes, bool close, out long totalBytes)
    {
        totalBytes = 0;
        lock (_jobsLock)
        {
            JobKey key;
            if (chunkId is not null)
            {
                key = new JobKey(jobId, attempt, chunkId);
                if (!_openJobs.ContainsKey(key))
                {
                    return false;
                }
            }
            else
            {
                // Tokens and logs carry no chunk id: they belong to the attempt's first open chunk.
                var keys = MatchingKeys(jobId, attempt);
                if (keys.Count == 0)
                {
                    return false;
                }

                key = keys[0];
            }

            totalBytes = _openJobs[key] + frameBytes;
            if (close)
            {
                _openJobs.Remove(key);
            }
            else
            {
                _openJobs[key] = totalBytes;
            }
        }

        return true;
    }

    /// <summary>Job attempts still open on this stream (for diagnostics and tests).</summary>
    public IReadOnlyList<JobKey> OpenJobs()
    {
        lock (_jobsLock)
        {
            return [.. _openJobs.Keys];
        }
    }

    /// <summary>Cuts the stream: the writer sends this Cut frame next (ahead of anything queued) and then ends.</summary>
    public bool Cut(CutReason reason, string detail)
    {
        var frame = new ConnectResponse { Cut = new Cut { Reason = reason, Detail = detail } };
        if (Interlocked.CompareExchange(ref _cutFrame, frame, null) is not null)
        {
            return false;
        }

        _outbound.Writer.TryComplete();
        return true;
    }

    /// <summary>Ends the outgoing queue without a Cut (the stream is over).</summary>
    public void Close() => _outbound.Writer.TryComplete();

    /// <summary>
    /// The single writer loop: drains the queue onto the stream until it is closed or cut.
    /// A pending Cut jumps the queue, so a revoked device gets no further offers.
    /// </summary>
    public async Task RunWriterAsync(Func<ConnectResponse, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        var reader = _outbound.Reader;
        while (await reader.WaitToReadAsync(cancellationToken))
        {
            while (reader.TryRead(out var frame))
            {
                if (Volatile.Read(ref _cutFrame) is { } cut)
                {
                    await write(cut, cancellationToken);
                    return;
                }

                await write(frame, cancellationToken);
            }
        }

        if (Volatile.Read(ref _cutFrame) is { } finalCut)
        {
            await write(finalCut, cancellationToken);
        }
    }

    private List<JobKey> MatchingKeys(string jobId, int attempt) =>
        _openJobs.Keys.Where(k => k.Attempt == attempt && string.Equals(k.JobId, jobId, StringComparison.Ordinal)).ToList();
}

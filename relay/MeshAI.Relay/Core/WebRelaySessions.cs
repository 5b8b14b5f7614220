using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Threading.Channels;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Relay.V1;
using Microsoft.Extensions.Options;

namespace MeshAI.Relay.Core;

/// <summary>
/// The relay for browser devices (gRPC-Web: unary and server-streaming calls only). A second transport over the SAME
/// relay core: each OpenSession stream is served by <see cref="RelayHub.ServeAsync"/> exactly like a native agent's
/// Connect stream — authentication, one live connection per device, presence, offers, cancellations, byte counting,
/// revocation cuts and the control plane's <see cref="IJobEventSink"/> are the hub's, untouched. Only the device's
/// half of the stream differs: the frames a native agent writes on Connect arrive here as unary calls, queued in
/// order into the stream the hub reads (<see cref="WebDeviceStream"/>); each call returns once the hub has taken
/// its frame. The hub's frames go down the server stream wrapped in <see cref="OpenSessionResponse"/>; under relay protocol 2
/// that includes the FrameAck of each terminal frame once control has handled it.
/// </summary>
public sealed class WebRelaySessions
{
    /// <summary>Frames of one session waiting for the hub; a caller beyond this waits (back-pressure).</summary>
    public const int MaxPendingFrames = 64;

    private readonly ConcurrentDictionary<string, WebDeviceStream> _sessions = new(StringComparer.Ordinal);
    private readonly RelayHub _hub;
    private readonly RelayOptions _options;

    /// <summary>Creates the transport over the hub.</summary>
    public WebRelaySessions(RelayHub hub, IOptions<RelayOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _hub = hub;
        _options = options.Value;
    }

    /// <summary>Live sessions on this relay (authenticated or still in the handshake).</summary>
    public int Count => _sessions.Count;

    /// <summary>Serves one OpenSession stream from the WebSession frame to the end (the whole call).</summary>
    public async Task ServeAsync(OpenSessionRequest request, IServerStreamWriter<OpenSessionResponse> responses, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(responses);
        var sessionId = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
        var stream = new WebDeviceStream(request.Hello);
        _sessions[sessionId] = stream;
        try
        {
            // The id is announced with the challenge (a refused certificate gets only the Cut, never a session id).
            var announce = new OpenSessionResponse { Session = new WebSession { SessionId = sessionId, RelayId = _options.RelayId } };
            await _hub.ServeAsync(stream, new SessionWriter(responses, stream, announce), cancellationToken);
        }
        finally
        {
            _sessions.TryRemove(new KeyValuePair<string, WebDeviceStream>(sessionId, stream));
            stream.End();
        }
    }

    /// <summary>
    /// Hands a device frame to the session's stream and waits until the hub has handled it (frames of one session are
    /// handled in the order they arrive). UNAUTHENTICATED when the session is unknown or ends first.
    /// </summary>
    public Task SendAsync(string sessionId, ConnectRequest frame, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(frame);
        return Find(sessionId).SendAsync(frame, cancellationToken);
    }

    /// <summary>UNAUTHENTICATED unless <paramref name="sessionId"/> names a live session (checked before anything else of a call).</summary>
    public void RequireLive(string sessionId) => Find(sessionId);

    /// <summary>The device a session authenticated as (its Welcome was sent); UNAUTHENTICATED when none.</summary>
    public DeviceIdentity AuthenticatedDevice(string sessionId) =>
        Find(sessionId).Authenticated ?? throw SessionNotFound();

    private WebDeviceStream Find(string sessionId) =>
        !string.IsNullOrEmpty(sessionId) && _sessions.TryGetValue(sessionId, out var stream) ? stream : throw SessionNotFound();

    /// <summary>The session id is this call's credential: unknown or ended is UNAUTHENTICATED, and the page opens a new session.</summary>
    internal static RpcException SessionNotFound() =>
        RpcErrors.Unauthenticated("no live web relay session with this session_id (it ended, was cut, or never authenticated); open a new session");

    /// <summary>
    /// The hub's writes, wrapped as OpenSessionResponse frames: the WebSession frame goes out just before the Challenge,
    /// and a Welcome marks the session authenticated.
    /// </summary>
    private sealed class SessionWriter(IServerStreamWriter<OpenSessionResponse> inner, WebDeviceStream stream, OpenSessionResponse announce) : IServerStreamWriter<ConnectResponse>
    {
        private bool _announced;

        public WriteOptions? WriteOptions
        {
            get => inner.WriteOptions;
            set => inner.WriteOptions = value;
        }

        public Task WriteAsync(ConnectResponse message) => WriteAsync(message, CancellationToken.None);

        public async Task WriteAsync(ConnectResponse message, CancellationToken cancellationToken)
        {
            switch (message.FrameCase)
            {
                case ConnectResponse.FrameOneofCase.Challenge when !_announced:
                    _announced = true;
                    await inner.WriteAsync(announce, cancellationToken);
                    break;
                case ConnectResponse.FrameOneofCase.Welcome:
                    stream.MarkAuthenticated(message.Welcome.DeviceId);
                    break;
            }

            await inner.WriteAsync(new OpenSessionResponse { Relay = message }, cancellationToken);
        }
    }
}

/// <summary>
/// The device's half of a web session as the hub reads it: an <see cref="IAsyncStreamReader{T}"/> whose first frame is
/// the OpenSession hello and whose later frames are the session's unary calls, in arrival order. A call is complete when
/// the hub asks for the next frame (it has then handled this one) and fails when the session ends first.
/// </summary>
internal sealed class WebDeviceStream : IAsyncStreamReader<ConnectRequest>
{
    private readonly Channel<Pending> _inbound = Channel.CreateBounded<Pending>(new BoundedChannelOptions(WebRelaySessions.MaxPendingFrames)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });

    private readonly AgentHello? _hello;
    private readonly Lock _lock = new();
    private Pending? _current;
    private DeviceIdentity? _authenticated;

    private sealed record Pending(ConnectRequest Frame, TaskCompletionSource? Handled);

    public WebDeviceStream(AgentHello? hello)
    {
        _hello = hello;
        // The hello is the stream's first frame, as if the device had written it (the hub refuses a missing one).
        _inbound.Writer.TryWrite(new Pending(new ConnectRequest { Hello = hello ?? new AgentHello() }, null));
    }

    /// <summary>Set once the hub sent Welcome: the certificate in the hello was verified and its key answered the challenge.</summary>
    public DeviceIdentity? Authenticated => Volatile.Read(ref _authenticated);

    public ConnectRequest Current => _current?.Frame ?? throw new InvalidOperationException("MoveNext has not produced a frame");

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _current?.Handled?.TrySetResult();
            _current = null;
        }

        while (await _inbound.Reader.WaitToReadAsync(cancellationToken))
        {
            if (_inbound.Reader.TryRead(out var next))
            {
                lock (_lock)
                {
                    _current = next;
                }

                return true;
            }
        }

        return false;
    }

    public async Task SendAsync(ConnectRequest frame, CancellationToken cancellationToken)
    {
        var handled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            await _inbound.Writer.WriteAsync(new Pending(frame, handled), cancellationToken);
        }
        catch (ChannelClosedException)
        {
            throw WebRelaySessions.SessionNotFound();
        }

        await handled.Task.WaitAsync(cancellationToken);
    }

    public void MarkAuthenticated(string deviceId)
    {
        DeviceCertificateDetails details;
        try
        {
            details = DeviceCertificateDetails.Parser.ParseFrom(_hello?.Certificate?.Details ?? Google.Protobuf.ByteString.Empty);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            return;
        }

        // The hub welcomed exactly the device this certificate names (it verified the certificate and the challenge answer).
        if (string.Equals(details.DeviceId, deviceId, StringComparison.Ordinal))
        {
            Volatile.Write(ref _authenticated, new DeviceIdentity(details.DeviceId, details.NetworkId, details.OwnerUserId,
                details.SigningPublicKey.ToByteArray(), details.Serial));
        }
    }

    /// <summary>The stream is over: calls still queued (or in the hub's hands) fail with UNAUTHENTICATED.</summary>
    public void End()
    {
        Volatile.Write(ref _authenticated, null);
        _inbound.Writer.TryComplete();
        lock (_lock)
        {
            _current?.Handled?.TrySetException(WebRelaySessions.SessionNotFound());
            _current = null;
        }

        while (_inbound.Reader.TryRead(out var pending))
        {
            pending.Handled?.TrySetException(WebRelaySessions.SessionNotFound());
        }
    }
}

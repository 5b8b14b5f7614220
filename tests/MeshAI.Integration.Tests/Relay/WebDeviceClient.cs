using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Web;
using MeshAI.Agent.State;
using MeshAI.Common.Crypto;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Integration.Tests.Relay;

/// <summary>
/// A browser device's relay session, spoken over real gRPC-Web (Grpc.Net.Client.Web) the way the contributor page speaks it:
/// OpenSession, the signed challenge through AnswerChallenge, then one unary call per frame. The frames the relay sends are
/// collected in order; tests read them with <see cref="NextAsync"/>.
/// </summary>
internal sealed class WebDeviceClient : IAsyncDisposable
{
    private readonly GrpcChannel _channel;
    private readonly AsyncServerStreamingCall<OpenSessionResponse> _call;
    private readonly Channel<ConnectResponse> _frames = Channel.CreateUnbounded<ConnectResponse>();
    private readonly Task _reader;

    private WebDeviceClient(GrpcChannel channel, AsyncServerStreamingCall<OpenSessionResponse> call)
    {
        _channel = channel;
        _call = call;
        Relay = new WebRelayService.WebRelayServiceClient(channel);
        _reader = ReadAsync();
    }

    public WebRelayService.WebRelayServiceClient Relay { get; }

    public string SessionId { get; private set; } = "";

    public Welcome Welcome { get; private set; } = new();

    /// <summary>The status the stream ended with, once it ended (null while it runs).</summary>
    public Status? EndStatus { get; private set; }

    /// <summary>A gRPC-Web channel to the server over HTTP/1.1 + TLS (pinned): the streaming path with the fewest guarantees a browser may use.</summary>
    public static GrpcChannel WebChannel(string url, string fingerprint) =>
        GrpcChannel.ForAddress(url, new GrpcChannelOptions
        {
            HttpHandler = new GrpcWebHandler(GrpcWebMode.GrpcWeb, GrpcChannels.PinnedHandler(fingerprint)),
            HttpVersion = System.Net.HttpVersion.Version11,
            HttpVersionPolicy = System.Net.Http.HttpVersionPolicy.RequestVersionExact,
            MaxReceiveMessageSize = 16 * 1024 * 1024,
        });

    /// <summary>Opens the session and completes the handshake with the device key; returns once Welcome arrived.</summary>
    /// <param name="protocol">AgentHello.protocol_version (the page speaks 2: numbered terminal frames, FrameAck).</param>
    /// <param name="held">AgentHello.held_attempts: attempts whose frames this session will still send.</param>
    public static async Task<WebDeviceClient> ConnectAsync(
        string url, string fingerprint, AgentEnrollment enrollment, AgentKeys keys, CapabilityReport capabilities, int protocol = 0, IEnumerable<HeldAttempt>? held = null)
    {
        var channel = WebChannel(url, fingerprint);
        var call = new WebRelayService.WebRelayServiceClient(channel).OpenSession(new OpenSessionRequest
        {
            Hello = new AgentHello
            {
                Certificate = enrollment.ParsedCertificate(), AgentVersion = "web-contributor/test", Capabilities = capabilities, ProtocolVersion = protocol,
                HeldAttempts = { held ?? [] },
            },
        });
        var device = new WebDeviceClient(channel, call);
        var challenge = (await device.NextAsync(ConnectResponse.FrameOneofCase.Challenge)).Challenge;
        await device.Relay.AnswerChallengeAsync(new AnswerChallengeRequest
        {
            SessionId = device.SessionId,
            Answer = new ChallengeAnswer { Signature = ByteString.CopyFrom(keys.Signing.Sign(ProofMessages.RelayChallenge(challenge.Nonce.Span, challenge.RelayId))) },
        });
        device.Welcome = (await device.NextAsync(ConnectResponse.FrameOneofCase.Welcome)).Welcome;
        return device;
    }

    /// <summary>The next relay frame of the given kind (earlier frames of other kinds are skipped).</summary>
    public async Task<ConnectResponse> NextAsync(ConnectResponse.FrameOneofCase kind, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            ConnectResponse frame;
            try
            {
                frame = await _frames.Reader.ReadAsync(cts.Token);
            }
            catch (ChannelClosedException)
            {
                throw new InvalidOperationException($"the session ended ({EndStatus}) before a {kind} frame arrived");
            }

            if (frame.FrameCase == kind)
            {
                return frame;
            }
        }
    }

    /// <summary>Waits for the stream to end.</summary>
    public Task EndedAsync(TimeSpan timeout) => _reader.WaitAsync(timeout);

    public Task HeartbeatAsync(long sequence, CapabilityReport capabilities, bool contributing = true) =>
        Relay.SendHeartbeatAsync(new SendHeartbeatRequest
        {
            SessionId = SessionId,
            Heartbeat = new Heartbeat { Sequence = sequence, Capabilities = capabilities, ContributionEnabled = contributing },
        }).ResponseAsync;

    private async Task ReadAsync()
    {
        try
        {
            while (await _call.ResponseStream.MoveNext(CancellationToken.None))
            {
                var response = _call.ResponseStream.Current;
                if (response.FrameCase == OpenSessionResponse.FrameOneofCase.Session)
                {
                    SessionId = response.Session.SessionId;
                }
                else
                {
                    await _frames.Writer.WriteAsync(response.Relay);
                }
            }

            EndStatus = _call.GetStatus();
        }
        catch (RpcException ex)
        {
            EndStatus = ex.Status;
        }
        finally
        {
            _frames.Writer.TryComplete();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _call.Dispose();
        try
        {
            await _reader.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            // the call was cancelled above; the reader ends with it
        }

        _channel.Dispose();
    }
}

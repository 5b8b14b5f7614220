using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using MeshAI.Common.Crypto;
using MeshAI.Common.Seams;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Relay;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshAI.Integration.Tests.Relay;

/// <summary>The relay alone on real Kestrel (HTTPS, self-signed, loopback) with a test CA standing in for the control plane.</summary>
public sealed class RelayTestHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _dir;

    private RelayTestHost(WebApplication app, string dir, string url, string fingerprint, TestAuthority authority, RecordingSink sink)
    {
        _app = app;
        _dir = dir;
        Url = url;
        Fingerprint = fingerprint;
        Authority = authority;
        Sink = sink;
    }

    public string Url { get; }

    public string Fingerprint { get; }

    public TestAuthority Authority { get; }

    public RecordingSink Sink { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Starts a relay; with <paramref name="clock"/> its timers (heartbeat watchdog, presence) run on that clock.</summary>
    public static async Task<RelayTestHost> StartAsync(TimeProvider? clock = null)
    {
        var dir = Path.Combine(Path.GetTempPath(), "meshai-relay-test-" + Guid.NewGuid().ToString("N"));
        var certificate = ServerCertificates.LoadOrCreate(Path.Combine(dir, "server.pfx"));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Relay:RelayId"] = "relay-test",
            ["Relay:HeartbeatGraceSeconds"] = "20",
        });
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l =>
        {
            l.Protocols = HttpProtocols.Http1AndHttp2;
            l.UseHttps(certificate);
        }));
        var authority = new TestAuthority();
        var sink = new RecordingSink();
        builder.Services.AddSingleton<IDeviceAuthority>(authority);
        builder.Services.AddSingleton<INetworkUpdateSource>(authority);
        builder.Services.AddSingleton<IJobEventSink>(sink);
        if (clock is not null)
        {
            builder.Services.AddSingleton(clock);
        }

        builder.Services.AddRelay(builder.Configuration);
        var app = builder.Build();
        app.MapRelay();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var port = new Uri(address).Port;
        return new RelayTestHost(app, dir, $"https://127.0.0.1:{port}", ServerCertificates.Fingerprint(certificate), authority, sink);
    }

    public GrpcChannel CreateChannel() => GrpcChannels.Create(Url, Fingerprint);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>A device as the test sees it: keys plus a certificate from some CA.</summary>
public sealed record TestDevice(string DeviceId, SigningKeyPair Keys, DeviceCertificate Certificate, string Serial);

/// <summary>
/// Stands in for control's IDeviceAuthority: one network CA, a revocation set. Like the product, a revocation moves the
/// network's NetworkUpdate serial (<see cref="INetworkUpdateSource"/>: nothing to catch up on beyond the serial itself).
/// </summary>
public sealed class TestAuthority : IDeviceAuthority, INetworkUpdateSource
{
    private readonly ConcurrentDictionary<string, byte> _revoked = new();
    private long _serial;
    private int _revocationReads;

    /// <summary>How many times the relay read a revocation from this "store" (heartbeats must not read it every time).</summary>
    public int RevocationReads => Volatile.Read(ref _revocationReads);

    public Task<long> LatestSerialAsync(string networkId, CancellationToken cancellationToken) => Task.FromResult(Interlocked.Read(ref _serial));

    public Task<NetworkUpdate?> CatchUpAsync(string networkId, long appliedSerial, CancellationToken cancellationToken) => Task.FromResult<NetworkUpdate?>(null);

    public Task AcknowledgeAsync(DeviceIdentity device, long serial, CancellationToken cancellationToken) => Task.CompletedTask;

    public SigningKeyPair Ca { get; } = SigningKeyPair.Generate();

    public string NetworkId { get; } = "net_test";

    public static TestDevice Issue(SigningKeyPair ca, string networkId, string deviceId)
    {
        var keys = SigningKeyPair.Generate();
        var serial = "ser_" + Guid.NewGuid().ToString("N");
        var details = new DeviceCertificateDetails
        {
            DeviceId = deviceId,
            NetworkId = networkId,
            OwnerUserId = "usr_test",
            SigningPublicKey = ByteString.CopyFrom(keys.PublicKey),
            EncryptionPublicKey = ByteString.CopyFrom(EncryptionKeyPair.Generate().PublicKey),
            NotBefore = DeviceCertificates.Ts(DateTimeOffset.UtcNow.AddMinutes(-1)),
            NotAfter = DeviceCertificates.Ts(DateTimeOffset.UtcNow.AddDays(1)),
            Serial = serial,
            CaKeyId = SigningKeyPair.KeyId(ca.PublicKey),
            InstallationId = "inst_test",
        };
        return new TestDevice(deviceId, keys, DeviceCertificates.Issue(details, ca), serial);
    }

    public TestDevice Issue(string deviceId) => Issue(Ca, NetworkId, deviceId);

    /// <summary>Revokes the device and records it as the product does (the network's serial moves).</summary>
    public void Revoke(string deviceId)
    {
        _revoked[deviceId] = 0;
        Interlocked.Increment(ref _serial);
    }

    public Task<(DeviceIdentity? Identity, string Reason)> AuthenticateAsync(DeviceCertificate certificate, CancellationToken cancellationToken)
    {
        var trusted = new Dictionary<string, byte[]> { [SigningKeyPair.KeyId(Ca.PublicKey)] = Ca.PublicKey };
        var details = DeviceCertificates.Verify(certificate, trusted, DateTimeOffset.UtcNow, out var reason);
        if (details is null)
        {
            return Task.FromResult<(DeviceIdentity?, string)>((null, reason));
        }

        if (_revoked.ContainsKey(details.DeviceId))
        {
            return Task.FromResult<(DeviceIdentity?, string)>((null, "device revoked"));
        }

        var identity = new DeviceIdentity(details.DeviceId, details.NetworkId, details.OwnerUserId, details.SigningPublicKey.ToByteArray(), details.Serial);
        return Task.FromResult<(DeviceIdentity?, string)>((identity, ""));
    }

    public Task<bool> IsRevokedAsync(string deviceId, string certificateSerial, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _revocationReads);
        return Task.FromResult(_revoked.ContainsKey(deviceId));
    }
}

/// <summary>Stands in for control's IJobEventSink: records every event in arrival order.</summary>
public sealed class RecordingSink : IJobEventSink
{
    private readonly ConcurrentDictionary<string, Channel<(string Kind, DeviceIdentity Device, IMessage? Frame, long RelayBytes)>> _events = new();

    /// <summary>The next event reported for <paramref name="deviceId"/> (tests share one relay, so events are kept per device).</summary>
    public async Task<(string Kind, DeviceIdentity Device, IMessage? Frame, long RelayBytes)> NextAsync(string deviceId, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        return await For(deviceId).Reader.ReadAsync(cts.Token);
    }

    /// <summary>How many events of <paramref name="deviceId"/> are reported and not read yet.</summary>
    public int Pending(string deviceId) => For(deviceId).Reader.Count;

    private Channel<(string Kind, DeviceIdentity Device, IMessage? Frame, long RelayBytes)> For(string deviceId) =>
        _events.GetOrAdd(deviceId, _ => Channel.CreateUnbounded<(string, DeviceIdentity, IMessage?, long)>());

    public Task OnAcceptedAsync(DeviceIdentity device, JobAccept accept, CancellationToken cancellationToken) => Add("accept", device, accept);

    public Task OnDeclinedAsync(DeviceIdentity device, JobDecline decline, CancellationToken cancellationToken) => Add("decline", device, decline);

    public Task OnProgressAsync(DeviceIdentity device, JobProgress progress, CancellationToken cancellationToken) => Add("progress", device, progress);

    /// <summary>How long each token takes to handle (a slow reader: the relay stops reading and the agent must wait, not drop).</summary>
    public TimeSpan TokenDelay { get; set; }

    /// <summary>Results to refuse before accepting one (control not handling them yet: the relay must retry, and ack only after).</summary>
    private int _refuseResults;

    public int RefuseResults { get => Volatile.Read(ref _refuseResults); set => Volatile.Write(ref _refuseResults, value); }

    public async Task OnTokenAsync(DeviceIdentity device, JobToken token, CancellationToken cancellationToken)
    {
        if (TokenDelay > TimeSpan.Zero)
        {
            await Task.Delay(TokenDelay, cancellationToken);
        }

        await Add("token", device, token);
    }

    public Task OnLogAsync(DeviceIdentity device, JobLog log, CancellationToken cancellationToken) => Add("log", device, log);

    public Task OnResultAsync(DeviceIdentity device, JobResult result, long relayBytes, CancellationToken cancellationToken) =>
        Interlocked.Decrement(ref _refuseResults) >= 0
            ? throw new InvalidOperationException("not handled yet (test)")
            : Add("result", device, result, relayBytes);

    public Task OnFailureAsync(DeviceIdentity device, JobFailure failure, long relayBytes, CancellationToken cancellationToken) => Add("failure", device, failure, relayBytes);

    public Task OnDisconnectedAsync(DeviceIdentity device, CancellationToken cancellationToken) => Add("disconnected", device, null);

    private readonly ConcurrentDictionary<string, Channel<IReadOnlyCollection<HeldAttempt>?>> _connected = new();

    /// <summary>The attempts the device announced on its next (re)connect (kept apart from the job events).</summary>
    public async Task<IReadOnlyCollection<HeldAttempt>?> NextConnectedAsync(string deviceId)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return await _connected.GetOrAdd(deviceId, _ => Channel.CreateUnbounded<IReadOnlyCollection<HeldAttempt>?>()).Reader.ReadAsync(cts.Token);
    }

    public Task OnConnectedAsync(DeviceIdentity device, IReadOnlyCollection<HeldAttempt>? held, CancellationToken cancellationToken)
    {
        _connected.GetOrAdd(device.DeviceId, _ => Channel.CreateUnbounded<IReadOnlyCollection<HeldAttempt>?>()).Writer.TryWrite(held?.ToList());
        return Task.CompletedTask;
    }

    private Task Add(string kind, DeviceIdentity device, IMessage? frame, long bytes = 0)
    {
        For(device.DeviceId).Writer.TryWrite((kind, device, frame, bytes));
        return Task.CompletedTask;
    }
}

/// <summary>A raw agent-side stream with helpers to read the next frame with a timeout.</summary>
public sealed class TestAgentStream : IDisposable
{
    private readonly AsyncDuplexStreamingCall<ConnectRequest, ConnectResponse> _call;

    public TestAgentStream(GrpcChannel channel) => _call = new RelayService.RelayServiceClient(channel).Connect();

    public Task SendAsync(ConnectRequest frame) => _call.RequestStream.WriteAsync(frame);

    public async Task<ConnectResponse> NextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        if (!await _call.ResponseStream.MoveNext(cts.Token))
        {
            throw new InvalidOperationException("stream ended");
        }

        return _call.ResponseStream.Current;
    }

    /// <summary>Hello (speaking <paramref name="protocol"/>; 0: the original protocol) + challenge answer signed by <paramref name="signer"/>; returns the frame after the answer.</summary>
    public async Task<ConnectResponse> HandshakeAsync(TestDevice device, string relayId, SigningKeyPair? signer = null, int protocol = 0)
    {
        await SendAsync(new ConnectRequest { Hello = new AgentHello { Certificate = device.Certificate, AgentVersion = "test", Capabilities = new CapabilityReport { CpuCores = 2 }, ProtocolVersion = protocol } });
        var challenge = await NextAsync();
        if (challenge.FrameCase != ConnectResponse.FrameOneofCase.Challenge)
        {
            return challenge;
        }

        var signature = (signer ?? device.Keys).Sign(ProofMessages.RelayChallenge(challenge.Challenge.Nonce.Span, relayId));
        await SendAsync(new ConnectRequest { ChallengeAnswer = new ChallengeAnswer { Signature = ByteString.CopyFrom(signature) } });
        return await NextAsync();
    }

    public Task CompleteAsync() => _call.RequestStream.CompleteAsync();

    /// <summary>Reads until the relay ends the call (its side of the stream, cleanup included, is done then).</summary>
    public async Task<List<ConnectResponse>> DrainAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        var frames = new List<ConnectResponse>();
        try
        {
            while (await _call.ResponseStream.MoveNext(cts.Token))
            {
                frames.Add(_call.ResponseStream.Current);
            }
        }
        catch (RpcException e) when (e.StatusCode != StatusCode.DeadlineExceeded && !cts.IsCancellationRequested)
        {
            // the call ended with a status: the relay's side is done
        }

        return frames;
    }

    public void Dispose() => _call.Dispose();
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using MeshAI.Agent.Device;
using MeshAI.Common.Crypto;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Bench;

/// <summary>One registered device a simulated agent speaks for: its id, its ed25519 key and the certificate the network CA issued.</summary>
internal sealed record SwarmDevice(string DeviceId, SigningKeyPair Signing, DeviceCertificate Certificate);

/// <summary>
/// Devices for the swarm, registered through the product's own path: <c>DeviceService.RegisterDevice</c> with a join token
/// and the proof of key possession, exactly what <c>meshai-agent join</c> sends; the server's network CA issues every
/// certificate (no bench-only issuing path). The credentials go to a file the swarm processes read.
/// </summary>
internal static class SwarmDevices
{
    /// <summary>Registers <paramref name="count"/> devices with <paramref name="joinTokens"/> (each used up to its max_uses) and writes them to <paramref name="path"/>.</summary>
    public static async Task RegisterAsync(GrpcChannel channel, IReadOnlyList<string> joinTokens, int usesPerToken, int count, string path, string url, string fingerprint, int inFlight)
    {
        var devices = new DeviceService.DeviceServiceClient(channel);
        var capabilities = new LinuxDeviceStateProvider().Capture();
        var results = new SwarmDevice[count];
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, inFlight).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var token = joinTokens[i / usesPerToken];
                var signing = SigningKeyPair.Generate();
                var encryption = EncryptionKeyPair.Generate();
                var installation = "swarm-" + i.ToString(CultureInfo.InvariantCulture);
                var timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                var response = await devices.RegisterDeviceAsync(new RegisterDeviceRequest
                {
                    JoinToken = token,
                    DeviceName = "swarm-" + i.ToString(CultureInfo.InvariantCulture),
                    InstallationId = installation,
                    SigningPublicKey = ByteString.CopyFrom(signing.PublicKey),
                    EncryptionPublicKey = ByteString.CopyFrom(encryption.PublicKey),
                    Capabilities = capabilities,
                    TimestampUnixMs = timestamp,
                    ProofSignature = ByteString.CopyFrom(signing.Sign(ProofMessages.Register(token, installation, timestamp, signing.PublicKey, encryption.PublicKey))),
                });
                results[i] = new SwarmDevice(response.Device.DeviceId, signing, response.Certificate);
            }
        }));

        await using var file = new StreamWriter(path);
        await file.WriteLineAsync($"{url} {fingerprint}");
        foreach (var d in results)
        {
            await file.WriteLineAsync($"{d.DeviceId} {Convert.ToBase64String(d.Signing.PrivateKey)} {Convert.ToBase64String(d.Signing.PublicKey)} {Convert.ToBase64String(d.Certificate.ToByteArray())}");
        }
    }

    /// <summary>Reads the server address and devices <paramref name="from"/> … <paramref name="from"/> + <paramref name="count"/> − 1 of a credentials file.</summary>
    public static (string Url, string Fingerprint, List<SwarmDevice> Devices) Read(string path, int from, int count)
    {
        var lines = File.ReadAllLines(path);
        var header = lines[0].Split(' ');
        var devices = lines.Skip(1 + from).Take(count).Select(line =>
        {
            var f = line.Split(' ');
            return new SwarmDevice(f[0], new SigningKeyPair(Convert.FromBase64String(f[1]), Convert.FromBase64String(f[2])), DeviceCertificate.Parser.ParseFrom(Convert.FromBase64String(f[3])));
        }).ToList();
        return (header[0], header[1], devices);
    }
}

/// <summary>
/// <c>bench agent-swarm</c>: a separate process holding many simulated agents, each a real gRPC client on its own TCP + TLS
/// connection (one <see cref="GrpcChannels.Create"/> channel per device, as each <c>meshai-agent</c> has) speaking the
/// real relay protocol 3: AgentHello with its CA-issued certificate, the signed challenge answer, heartbeats at the
/// interval Welcome announces (with a real capability report), NetworkUpdateAck for pushed updates, and a JobDecline
/// (numbered terminal frame) for any offer — the swarm skips workloads. A stream that ends is re-opened with backoff,
/// like the agent's. Prints <c>SWARM_CONNECTED</c> once every device's first heartbeat was acknowledged, then
/// <c>SWARM_STATS</c> every 5 s.
/// </summary>
internal static class AgentSwarm
{
    public static async Task<int> RunAsync(string credentialsPath, int from, int count, int connectInFlight)
    {
        var (url, fingerprint, devices) = SwarmDevices.Read(credentialsPath, from, count);
        var capabilities = new LinuxDeviceStateProvider().Capture();
        var stats = new SwarmStats();
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };

        var agents = devices.Select(d => new SimulatedAgent(d, url, fingerprint, capabilities, stats)).ToList();
        var clock = Stopwatch.StartNew();
        using var gate = new SemaphoreSlim(connectInFlight);
        var runs = agents.Select(async agent =>
        {
            // At most connectInFlight handshakes at once (TLS + hello + challenge); a device that is not online within 30 s
            // frees its slot anyway and keeps retrying on its own.
            await gate.WaitAsync(stop.Token);
            _ = Task.WhenAny(agent.FirstAck.Task, Task.Delay(30_000, CancellationToken.None)).ContinueWith(_ => gate.Release(), TaskScheduler.Default);
            await agent.RunAsync(stop.Token);
        }).ToList();

        var report = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(5_000, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                Console.WriteLine(stats.Line("SWARM_STATS"));
            }
        });
        await Task.WhenAll(agents.Select(a => a.FirstAck.Task));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"SWARM_CONNECTED count={agents.Count} ms={clock.ElapsedMilliseconds}"));
        await report;

        await Task.WhenAll(runs).ContinueWith(_ => { }, TaskScheduler.Default);
        return 0;
    }
}

/// <summary>Counters of one swarm process (printed as one line).</summary>
internal sealed class SwarmStats
{
    private readonly ConcurrentQueue<double> _rtts = new();
    private long _sessions;
    private long _online;
    private long _heartbeats;
    private long _acks;
    private long _ended;
    private long _updates;
    private long _offers;
    private long _errors;
    private volatile string _lastError = "";

    public void Session() => Interlocked.Increment(ref _sessions);

    public void Online(int delta) => Interlocked.Add(ref _online, delta);

    public void Heartbeat() => Interlocked.Increment(ref _heartbeats);

    public void Ack(double rttMs)
    {
        Interlocked.Increment(ref _acks);
        _rtts.Enqueue(rttMs);
    }

    public void Ended() => Interlocked.Increment(ref _ended);

    public void Error(Exception ex)
    {
        Interlocked.Increment(ref _errors);
        _lastError = ex is RpcException rpc ? $"{rpc.StatusCode}:{rpc.Status.Detail}" : $"{ex.GetType().Name}:{ex.Message}";
    }

    public void Update() => Interlocked.Increment(ref _updates);

    public void Offer() => Interlocked.Increment(ref _offers);

    /// <summary>The counters, and heartbeat round trips (p50/p99) since the previous line.</summary>
    public string Line(string tag)
    {
        var rtts = new List<double>();
        while (_rtts.TryDequeue(out var r))
        {
            rtts.Add(r);
        }

        rtts.Sort();
        double P(double p) => rtts.Count == 0 ? 0 : rtts[Math.Clamp((int)Math.Ceiling(p * rtts.Count) - 1, 0, rtts.Count - 1)];
        return string.Create(CultureInfo.InvariantCulture,
            $"{tag} online={Interlocked.Read(ref _online)} sessions={Interlocked.Read(ref _sessions)} ended={Interlocked.Read(ref _ended)} heartbeats={Interlocked.Read(ref _heartbeats)} acks={Interlocked.Read(ref _acks)} rtt_p50_ms={P(0.5):F1} rtt_p99_ms={P(0.99):F1} updates={Interlocked.Read(ref _updates)} offers={Interlocked.Read(ref _offers)} errors={Interlocked.Read(ref _errors)} last_error={_lastError.Replace(' ', '_')}");
    }
}

/// <summary>One simulated agent: its own channel (TCP + TLS connection) and relay stream, re-opened with backoff when it ends.</summary>
internal sealed class SimulatedAgent(SwarmDevice device, string url, string fingerprint, CapabilityReport capabilities, SwarmStats stats)
{
    private readonly SemaphoreSlim _write = new(1, 1);
    private long _sequence;

    /// <summary>Completes when the relay acknowledged this agent's first heartbeat (the real agent's MESHAI_AGENT_ONLINE).</summary>
    public TaskCompletionSource FirstAck { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var channel = GrpcChannels.Create(url, fingerprint);
        var client = new RelayService.RelayServiceClient(channel);
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await SessionAsync(client, cancellationToken);
                backoff = TimeSpan.FromMilliseconds(250);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                // refused, dropped or timed out: back off and dial again, as meshai-agent does
                stats.Error(ex);
            }

            stats.Ended();
            await Task.Delay(backoff + TimeSpan.FromMilliseconds(Random.Shared.Next(250)), cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
            backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 10_000));
        }
    }

    private async Task SessionAsync(RelayService.RelayServiceClient client, CancellationToken cancellationToken)
    {
        using var call = client.Connect(cancellationToken: cancellationToken);
        stats.Session();
        await call.RequestStream.WriteAsync(new ConnectRequest
        {
            Hello = new AgentHello { Certificate = device.Certificate, AgentVersion = "bench-swarm", Capabilities = capabilities, ProtocolVersion = MeshAI.Agent.Jobs.RelaySession.ProtocolVersion },
        }, cancellationToken);
        var responses = call.ResponseStream;
        if (!await responses.MoveNext(cancellationToken) || responses.Current.FrameCase != ConnectResponse.FrameOneofCase.Challenge)
        {
            return;
        }

        var challenge = responses.Current.Challenge;
        await call.RequestStream.WriteAsync(new ConnectRequest
        {
            ChallengeAnswer = new ChallengeAnswer { Signature = ByteString.CopyFrom(device.Signing.Sign(ProofMessages.RelayChallenge(challenge.Nonce.Span, challenge.RelayId))) },
        }, cancellationToken);
        if (!await responses.MoveNext(cancellationToken) || responses.Current.FrameCase != ConnectResponse.FrameOneofCase.Welcome)
        {
            return;
        }

        var welcome = responses.Current.Welcome;
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sent = new ConcurrentDictionary<long, long>();
        var heartbeats = HeartbeatsAsync(call.RequestStream, Math.Max(100, welcome.HeartbeatIntervalMs), sent, session.Token);
        var online = false;
        try
        {
            while (await responses.MoveNext(cancellationToken))
            {
                var frame = responses.Current;
                switch (frame.FrameCase)
                {
                    case ConnectResponse.FrameOneofCase.HeartbeatAck:
                        if (sent.TryRemove(frame.HeartbeatAck.Sequence, out var at))
                        {
                            stats.Ack(Stopwatch.GetElapsedTime(at).TotalMilliseconds);
                        }

                        if (!online)
                        {
                            online = true;
                            stats.Online(1);
                            FirstAck.TrySetResult();
                        }

                        break;
                    case ConnectResponse.FrameOneofCase.NetworkUpdate:
                        stats.Update();
                        await WriteAsync(call.RequestStream, new ConnectRequest { NetworkUpdateAck = new NetworkUpdateAck { Serial = frame.NetworkUpdate.Serial } }, cancellationToken);
                        break;
                    case ConnectResponse.FrameOneofCase.JobOffer:
                        stats.Offer();
                        var details = PlacementTicketDetails.Parser.ParseFrom(frame.JobOffer.Ticket.Details);
                        await WriteAsync(call.RequestStream, new ConnectRequest
                        {
                            JobDecline = new JobDecline { JobId = details.JobId, Attempt = details.Attempt, ChunkId = details.ChunkId, Reason = DeclineReason.UnsupportedWorkload, Detail = "bench swarm runs no workloads" },
                            Sequence = Interlocked.Increment(ref _sequence),
                        }, cancellationToken);
                        break;
                    case ConnectResponse.FrameOneofCase.Cut:
                        return;
                    default:
                        break; // FrameAck: nothing is kept to forget
                }
            }
        }
        finally
        {
            if (online)
            {
                stats.Online(-1);
            }

            await session.CancelAsync();
            await heartbeats.ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task HeartbeatsAsync(IClientStreamWriter<ConnectRequest> stream, int intervalMs, ConcurrentDictionary<long, long> sent, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(intervalMs));
        long sequence = 0;
        do
        {
            sequence++;
            sent[sequence] = Stopwatch.GetTimestamp();
            sent.TryRemove(sequence - 16, out _);
            await WriteAsync(stream, new ConnectRequest
            {
                Heartbeat = new Heartbeat { Sequence = sequence, Capabilities = capabilities, ContributionEnabled = true, SentTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) },
            }, cancellationToken);
            stats.Heartbeat();
        }
        while (await timer.WaitForNextTickAsync(cancellationToken));
    }

    private async Task WriteAsync(IClientStreamWriter<ConnectRequest> stream, ConnectRequest frame, CancellationToken cancellationToken)
    {
        await _write.WaitAsync(cancellationToken);
        try
        {
            await stream.WriteAsync(frame, cancellationToken);
        }
        finally
        {
            _write.Release();
        }
    }
}

using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using MeshAI.Agent.Device;
using MeshAI.Agent.Jobs;
using MeshAI.Agent.State;
using MeshAI.Agent.Workloads;
using MeshAI.Common.Crypto;
using MeshAI.Common.Seams;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Server;
using MeshAI.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshAI.Integration.Tests.Security;

/// <summary>Records every frame of every relay stream, in both directions, as serialized bytes (what the relay saw on the wire).</summary>
public sealed class RelayFrameRecorder : Interceptor
{
    public ConcurrentQueue<byte[]> Frames { get; } = new();

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        continuation(new Reader<TRequest>(requestStream, this), new Writer<TResponse>(responseStream, this), context);

    private sealed class Reader<T>(IAsyncStreamReader<T> inner, RelayFrameRecorder recorder) : IAsyncStreamReader<T>
    {
        public T Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            var more = await inner.MoveNext(cancellationToken);
            if (more && inner.Current is IMessage m)
            {
                recorder.Frames.Enqueue(m.ToByteArray());
            }

            return more;
        }
    }

    private sealed class Writer<T>(IServerStreamWriter<T> inner, RelayFrameRecorder recorder) : IServerStreamWriter<T>
    {
        public WriteOptions? WriteOptions { get => inner.WriteOptions; set => inner.WriteOptions = value; }

        public Task WriteAsync(T message) => WriteAsync(message, CancellationToken.None);

        public Task WriteAsync(T message, CancellationToken cancellationToken)
        {
            if (message is IMessage m)
            {
                recorder.Frames.Enqueue(m.ToByteArray());
            }

            return inner.WriteAsync(message, cancellationToken);
        }
    }
}

/// <summary>The real server (control + relay) in-process, with real in-process agents (RelaySession) joined through the real RPCs.</summary>
public sealed partial class SecureMeshHost : IAsyncDisposable
{
    private readonly List<GrpcChannel> _channels = [];
    private readonly List<HttpClient> _http = [];
    private readonly List<(CancellationTokenSource Stop, Task Run, WorkloadRegistry Registry)> _agents = [];

    private SecureMeshHost(WebApplication app, string dataDir, string url, string fingerprint, RelayFrameRecorder recorder)
    {
        App = app;
        DataDir = dataDir;
        Url = url;
        Fingerprint = fingerprint;
        Recorder = recorder;
    }

    private bool _ownsDataDir = true;
    private int _disposed;

    public WebApplication App { get; }

    /// <summary>The PostgreSQL connection string (null on SQLite).</summary>
    public string? Postgres { get; private init; }

    public string DataDir { get; }

    public string Url { get; }

    public string Fingerprint { get; }

    public RelayFrameRecorder Recorder { get; }

    public IServiceProvider Services => App.Services;

    /// <summary>Starts the server; <paramref name="configure"/> may replace seams (it runs before the components register).</summary>
    public static Task<SecureMeshHost> StartAsync(string store = "sqlite", Action<IServiceCollection>? configure = null) => StartAsync(store, [], configure);

    /// <summary>The server with extra command-line options and services (e.g. an in-memory trace exporter, replaced seams).</summary>
    public static Task<SecureMeshHost> StartAsync(string store, IReadOnlyList<string> extraArguments, Action<IServiceCollection>? configureServices) =>
        StartAsync(store, extraArguments, configureServices, null);

    /// <summary>
    /// A second instance of <paramref name="sibling"/>'s mesh when given: the same data dir (master key, certificate) and the
    /// same PostgreSQL database (pass the sibling's --bus in <paramref name="extraArguments"/> to share its bus too).
    /// </summary>
    public static async Task<SecureMeshHost> StartAsync(string store, IReadOnlyList<string> extraArguments, Action<IServiceCollection>? configureServices, SecureMeshHost? sibling)
    {
        var dataDir = sibling?.DataDir ?? Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "meshai-secure-" + Guid.NewGuid().ToString("N")[..10])).FullName;
        var args = new List<string> { "--data-dir", dataDir, "--port", "0", "--store", store, "--heartbeat-grace-seconds", "20" };
        args.AddRange(extraArguments);
        var postgres = store == "postgres" ? sibling?.Postgres ?? await SharedInfrastructure.CreatePostgresDatabaseAsync("secure") : null;
        if (postgres is not null)
        {
            args.AddRange(["--postgres", postgres]);
        }

        var recorder = new RelayFrameRecorder();
        var (app, settings, certificate) = ServerHost.Build([.. args], services =>
        {
            services.AddSingleton(recorder);
            services.AddGrpc(o => o.Interceptors.Add<RelayFrameRecorder>());
            configureServices?.Invoke(services);
        });
        var (url, fingerprint) = await ServerHost.StartAsync(app, settings, certificate, CancellationToken.None);
        if (sibling is not null)
        {
            sibling._ownsDataDir = false; // the instance started last deletes the shared data dir (tests stop the first one early)
        }

        return new SecureMeshHost(app, dataDir, url, fingerprint, recorder) { Postgres = postgres };
    }

    public GrpcChannel Channel(string? token = null)
    {
        var channel = GrpcChannels.Create(Url, Fingerprint, token is null ? null : () => token);
        _channels.Add(channel);
        return channel;
    }

    public async Task<string> SignInAsync(string email)
    {
        var identity = new IdentityService.IdentityServiceClient(Channel());
        await identity.StartMagicLinkAsync(new StartMagicLinkRequest { Email = email });
        var file = Directory.GetFiles(Path.Combine(DataDir, "outbox"), "*-" + email + ".eml").OrderBy(f => f, StringComparer.Ordinal).Last();
        var link = LinkLine().Match(await File.ReadAllTextAsync(file)).Groups[1].Value;
        var token = Uri.UnescapeDataString(link[(link.IndexOf("token=", StringComparison.Ordinal) + 6)..]);
        return (await identity.CompleteMagicLinkAsync(new CompleteMagicLinkRequest { Token = token, ClientName = "test" })).SessionToken;
    }

    /// <summary>Registers a device with fresh keys through a join token of <paramref name="ownerToken"/> and returns its state.</summary>
    public async Task<(AgentEnrollment Enrollment, AgentKeys Keys)> JoinAsync(string ownerToken, string networkId, string name, CapabilityReport? capabilities = null)
    {
        var join = await new DeviceService.DeviceServiceClient(Channel(ownerToken)).CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = networkId });
        if (!JoinLink.TryParse(join.JoinLink, out var link))
        {
            throw new InvalidOperationException("bad join link " + join.JoinLink);
        }

        var keys = AgentKeys.Generate();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var response = await new DeviceService.DeviceServiceClient(Channel()).RegisterDeviceAsync(new RegisterDeviceRequest
        {
            JoinToken = link!.Token,
            DeviceName = name,
            InstallationId = keys.InstallationId,
            SigningPublicKey = ByteString.CopyFrom(keys.SigningPublicKey),
            EncryptionPublicKey = ByteString.CopyFrom(keys.EncryptionPublicKey),
            TimestampUnixMs = now,
            ProofSignature = ByteString.CopyFrom(keys.Signing.Sign(ProofMessages.Register(link.Token, keys.InstallationId, now, keys.SigningPublicKey, keys.EncryptionPublicKey))),
            Capabilities = capabilities ?? new CapabilityReport { CpuCores = 4, RamMb = 8000, Os = "linux", Platform = Platform.Linux, Workloads = { WorkloadClass.DiagnosticEcho } },
        });
        return (AgentEnrollment.FromRegistration(Url, Fingerprint, name, response), keys);
    }

    /// <summary>Runs the real agent session for the device until disposal; returns when the relay has it online.</summary>
    /// <param name="handler">The device's echo handler (default: the real <see cref="EchoHandler"/>; tests pass a tampering one).</param>
    /// <param name="network">The agent's view of its network (pushed NetworkUpdates land there; offers are verified against its keys).</param>
    public Task<Task<SessionEnd>> GoOnlineAsync(AgentEnrollment enrollment, AgentKeys keys, Func<DateTimeOffset, IReadOnlyDictionary<string, byte[]>>? controlKeys = null, IWorkloadHandler? handler = null, AgentNetworkState? network = null) =>
        GoOnlineAsync(enrollment, keys, new WorkloadRegistry([handler ?? new EchoHandler()]), controlKeys, network);

    /// <summary>Runs the real agent session with <paramref name="registry"/>'s handlers (e.g. the agent's real embeddings and chat runtimes).</summary>
    public async Task<Task<SessionEnd>> GoOnlineAsync(AgentEnrollment enrollment, AgentKeys keys, WorkloadRegistry registry, Func<DateTimeOffset, IReadOnlyDictionary<string, byte[]>>? controlKeys = null, AgentNetworkState? network = null)
    {
        var session = new RelaySession(enrollment, keys, new LinuxDeviceStateProvider(), registry,
            new OfferVerifier(controlKeys ?? (network ??= new AgentNetworkState(enrollment)).ControlKeys, enrollment.DeviceId, enrollment.NetworkId), NullLogger.Instance, _ => { },
            network: network);
        var stop = new CancellationTokenSource();
        var run = session.RunAsync(new RelayService.RelayServiceClient(Channel()), stop.Token);
        _agents.Add((stop, run, registry));
        var presence = Services.GetRequiredService<IPresenceDirectory>();
        var deadline = DateTime.UtcNow.AddSeconds(15);
        // Online = its first heartbeat arrived (contribution enabled), not only the stream's hello.
        while (presence.GetOnline(enrollment.DeviceId, DateTimeOffset.UtcNow) is not { ContributionEnabled: true } online || online.Capabilities.Workloads.Count == 0)
        {
            if (run.IsCompleted || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"device {enrollment.DeviceId} did not come online: {(run.IsCompleted ? (await run).Detail : "timeout")}");
            }

            await Task.Delay(25);
        }

        return run;
    }

    /// <summary>An HTTP client that trusts exactly this server's certificate (the gateway and the metrics endpoints).</summary>
    public HttpClient Http()
    {
        var handler = new SocketsHttpHandler
        {
            SslOptions = new System.Net.Security.SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(cert.GetRawCertData())) == Fingerprint,
            },
        };
        var client = new HttpClient(handler) { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromSeconds(60) };
        _http.Add(client);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return; // tests stop an instance mid-test and dispose it again at the end
        }

        foreach (var (stop, run, registry) in _agents)
        {
            await stop.CancelAsync();
            try
            {
                await run.WaitAsync(TimeSpan.FromSeconds(5));
            }
            catch (Exception)
            {
                // the session ends with the cancellation
            }

            stop.Dispose();
            registry.Dispose();
        }

        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        foreach (var client in _http)
        {
            client.Dispose();
        }

        await App.StopAsync();
        await App.DisposeAsync();
        if (!_ownsDataDir)
        {
            return;
        }

        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [GeneratedRegex(@"^Link: (\S+)\r?$", RegexOptions.Multiline)]
    private static partial Regex LinkLine();
}

using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Grpc.Net.Client;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Identity.V1;

namespace MeshAI.Testing;

/// <summary>
/// The scale-out topology on one machine with real processes (docs/scale-out.md): PostgreSQL, Redis, two relay instances,
/// two control instances behind nginx (deploy/nginx/meshai-front-door.conf), sharing one TLS certificate, data dir and
/// master key. Used by the scale-out end-to-end test and by scripts/scale-out.sh (through bench/MeshAI.Bench).
/// </summary>
public sealed partial class ScaleOutMesh : IAsyncDisposable
{
    private readonly List<ProcessRunner> _processes = [];
    private readonly List<string> _directories = [];
    private readonly string _dataDirectory;
    private readonly string _tlsDirectory;

    private ScaleOutMesh(PostgresServer postgres, RedisServer redis, string dataDirectory, string tlsDirectory)
    {
        Postgres = postgres;
        Redis = redis;
        _dataDirectory = dataDirectory;
        _tlsDirectory = tlsDirectory;
        _directories.Add(dataDirectory);
        _directories.Add(tlsDirectory);
    }

    /// <summary>The PostgreSQL cluster (the source of truth).</summary>
    public PostgresServer Postgres { get; }

    /// <summary>The Redis bus.</summary>
    public RedisServer Redis { get; }

    /// <summary>The PostgreSQL connection string of the mesh's database.</summary>
    public string Store { get; private set; } = "";

    /// <summary>Control instances by id ("ctl-a", "ctl-b").</summary>
    public Dictionary<string, ProcessRunner> Controls { get; } = new(StringComparer.Ordinal);

    /// <summary>Each control instance's backend address ("127.0.0.1:port"), as nginx logs it in $upstream_addr.</summary>
    public Dictionary<string, string> ControlAddresses { get; } = new(StringComparer.Ordinal);

    /// <summary>nginx's access log: one line per call with the status and the upstream(s) that answered it.</summary>
    public string NginxAccessLog { get; private set; } = "";

    /// <summary>Relay instances by id ("relay-a", "relay-b").</summary>
    public Dictionary<string, ProcessRunner> Relays { get; } = new(StringComparer.Ordinal);

    /// <summary>Relay URLs by id.</summary>
    public Dictionary<string, string> RelayUrls { get; } = new(StringComparer.Ordinal);

    /// <summary>The front door (nginx) URL every client uses.</summary>
    public string Url { get; private set; } = "";

    /// <summary>The shared certificate's fingerprint.</summary>
    public string Fingerprint { get; private set; } = "";

    /// <summary>nginx.</summary>
    public ProcessRunner? Nginx { get; private set; }

    /// <summary>The agents.</summary>
    public List<MeshAgent> Agents { get; } = [];

    /// <summary>Starts the whole topology: store and bus, then control A (creates the master key), control B, both relays, nginx.</summary>
    public static async Task<ScaleOutMesh> StartAsync(PostgresServer postgres, RedisServer redis, CancellationToken cancellationToken = default)
    {
        var mesh = new ScaleOutMesh(postgres, redis, ScratchDirectory.Create("meshai-scale-data"), ScratchDirectory.Create("meshai-scale-tls"));
        try
        {
            mesh.Store = await postgres.CreateUniqueDatabaseAsync("scale", cancellationToken);
            await mesh.WriteCertificateAsync(cancellationToken);
            var relayPorts = new Dictionary<string, int> { ["relay-a"] = FreePort.Next(), ["relay-b"] = FreePort.Next() };
            foreach (var (id, port) in relayPorts)
            {
                mesh.RelayUrls[id] = $"https://127.0.0.1:{port}";
            }

            var nginxPort = FreePort.Next();
            mesh.Url = $"https://127.0.0.1:{nginxPort}";
            var controlPorts = new Dictionary<string, int> { ["ctl-a"] = FreePort.Next(), ["ctl-b"] = FreePort.Next() };
            foreach (var (id, port) in controlPorts)
            {
                mesh.Controls[id] = await mesh.StartServerAsync("control", id, port, cancellationToken);
            }

            foreach (var (id, port) in relayPorts)
            {
                mesh.Relays[id] = await mesh.StartServerAsync("relay", id, port, cancellationToken);
            }

            foreach (var (id, port) in controlPorts)
            {
                mesh.ControlAddresses[id] = "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture);
            }

            await mesh.StartNginxAsync(nginxPort, controlPorts.Values.ToList(), cancellationToken);
            return mesh;
        }
        catch
        {
            await mesh.DisposeAsync();
            throw;
        }
    }

    /// <summary>The arguments of a meshai-server instance of this mesh (also what docs/scale-out.md shows).</summary>
    public IReadOnlyList<string> ServerArguments(string role, string id, int port) =>
    [
        RepoPaths.BuiltAssembly("services/MeshAI.Server", "meshai-server"),
        "--role", role, role == "relay" ? "--relay-id" : "--instance-id", id,
        "--port", port.ToString(CultureInfo.InvariantCulture),
        "--data-dir", _dataDirectory,
        "--store", "postgres", "--postgres", Store,
        "--bus", $"redis://127.0.0.1:{Redis.Port}",
        "--Bus:Prefix", BusPrefix,
        "--tls-cert", Path.Combine(_tlsDirectory, "cert.pem"), "--tls-key", Path.Combine(_tlsDirectory, "key.pem"),
        "--public-url", Url,
        "--relay-urls", string.Join(',', RelayUrls.Values),
        "--heartbeat-grace-seconds", "10",
        "--log-level", "Warning",
    ];

    private async Task<ProcessRunner> StartServerAsync(string role, string id, int port, CancellationToken cancellationToken)
    {
        var server = ProcessRunner.Start(new ProcessRunnerOptions { FileName = ProcessRunner.DotnetHostPath, Arguments = ServerArguments(role, id, port), Name = id });
        _processes.Add(server);
        var ready = await server.WaitForLineAsync("MESHAI_SERVER_READY", TimeSpan.FromSeconds(120), cancellationToken: cancellationToken);
        Fingerprint = ReadyLine().Match(ready.Text).Groups["fp"].Value;
        return server;
    }

    /// <summary>Kills an instance (SIGKILL: no goodbye, like a crashed process).</summary>
    public void Kill(string id)
    {
        var process = Controls.GetValueOrDefault(id) ?? Relays[id];
        process.Kill();
    }

    /// <summary>Unfinished jobs the store still shows owned by <paramref name="instanceId"/>.</summary>
    public async Task<long> UnfinishedJobsOwnedByAsync(string instanceId, CancellationToken cancellationToken)
    {
        await using var connection = new Npgsql.NpgsqlConnection(Store);
        await connection.OpenAsync(cancellationToken);
        return await Dapper.SqlMapper.ExecuteScalarAsync<long>(connection, new Dapper.CommandDefinition(
            "SELECT COUNT(*) FROM jobs WHERE owner_instance = @instanceId AND state NOT IN (4, 5, 6)", new { instanceId }, cancellationToken: cancellationToken));
    }

    /// <summary>Devices whose presence key in Redis names <paramref name="relayId"/>.</summary>
    public async Task<long> DevicesOnRelayAsync(string relayId, CancellationToken cancellationToken)
    {
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        var database = redis.GetDatabase();
        long count = 0;
        await foreach (var key in server.KeysAsync(pattern: BusPrefix + "presence:*").WithCancellation(cancellationToken))
        {
            var value = await database.StringGetAsync(key);
            if (value.HasValue && MeshAI.Contracts.Bus.V1.PresenceUpdate.Parser.ParseFrom((byte[])value!).RelayId == relayId)
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>The bus prefix of this mesh's instances.</summary>
    public string BusPrefix => "meshai-" + Path.GetFileName(_dataDirectory) + ":";

    /// <summary>A channel through the front door.</summary>
    public GrpcChannel Channel(string? sessionToken = null) => GrpcChannels.Create(Url, Fingerprint, sessionToken is null ? null : () => sessionToken);

    /// <summary>Signs in through the front door (magic link: the mail lands in the shared outbox; completed over gRPC).</summary>
    public async Task<string> SignInAsync(string email, CancellationToken cancellationToken = default)
    {
        using var channel = Channel();
        var identity = new IdentityService.IdentityServiceClient(channel);
        await identity.StartMagicLinkAsync(new StartMagicLinkRequest { Email = email }, cancellationToken: cancellationToken);
        var outbox = Path.Combine(_dataDirectory, "outbox");
        string? token = null;
        for (var i = 0; i < 100 && token is null; i++)
        {
            var mail = Directory.Exists(outbox) ? Directory.GetFiles(outbox, "*-" + email + ".eml").OrderBy(f => f, StringComparer.Ordinal).LastOrDefault() : null;
            if (mail is not null && LinkLine().Match(await File.ReadAllTextAsync(mail, cancellationToken)) is { Success: true } m)
            {
                var link = m.Groups[1].Value;
                token = Uri.UnescapeDataString(link[(link.IndexOf("token=", StringComparison.Ordinal) + 6)..]);
            }
            else
            {
                await Task.Delay(100, cancellationToken);
            }
        }

        var done = await identity.CompleteMagicLinkAsync(new CompleteMagicLinkRequest { Token = token ?? throw new TimeoutException("no magic link mail"), ClientName = "scale-out" }, cancellationToken: cancellationToken);
        return done.SessionToken;
    }

    /// <summary>A real agent joined through the front door (its relays: every relay instance).</summary>
    public async Task<MeshAgent> StartAgentAsync(string joinLink, string name, CancellationToken cancellationToken = default)
    {
        var state = ScratchDirectory.Create("meshai-scale-agent");
        _directories.Add(state);
        var agentDll = RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent");
        await using (var join = await ProcessRunner.RunAsync(new ProcessRunnerOptions
        {
            FileName = ProcessRunner.DotnetHostPath, Arguments = [agentDll, "join", joinLink, "--state-dir", state, "--name", name], Name = "join-" + name,
        }, TimeSpan.FromSeconds(120), cancellationToken))
        {
            if (join.ExitCode != 0)
            {
                throw new InvalidOperationException($"agent join failed: {join.Output}");
            }

            var deviceId = JoinedLine().Match(join.Output).Groups["id"].Value;
            var run = ProcessRunner.Start(new ProcessRunnerOptions
            {
                FileName = ProcessRunner.DotnetHostPath, Arguments = [agentDll, "run", "--state-dir", state, "--no-sandbox"], Name = "agent-" + name,
            });
            _processes.Add(run);
            await run.WaitForLineAsync("MESHAI_AGENT_ONLINE", TimeSpan.FromSeconds(60), cancellationToken: cancellationToken);
            var agent = new MeshAgent(name, deviceId, state, run);
            Agents.Add(agent);
            return agent;
        }
    }

    /// <summary>Stops every process, drops nothing of the shared PostgreSQL/Redis (their owner stops them), deletes scratch dirs.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var process in Enumerable.Reverse(_processes))
        {
            await process.DisposeAsync();
        }

        if (Nginx is not null)
        {
            await Nginx.DisposeAsync();
        }

        foreach (var directory in _directories)
        {
            ScratchDirectory.TryDelete(directory);
        }
    }

    private async Task WriteCertificateAsync(CancellationToken cancellationToken)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(2));
        await File.WriteAllTextAsync(Path.Combine(_tlsDirectory, "cert.pem"), certificate.ExportCertificatePem(), cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(_tlsDirectory, "key.pem"), key.ExportPkcs8PrivateKeyPem(), cancellationToken);
    }

    private async Task StartNginxAsync(int port, List<int> controlPorts, CancellationToken cancellationToken)
    {
        var nginx = File.Exists("/usr/sbin/nginx") ? "/usr/sbin/nginx" : throw new InvalidOperationException(
            "nginx not found at /usr/sbin/nginx; ./test.sh installs the Debian nginx package (APT_PACKAGES)");
        var dir = ScratchDirectory.Create("meshai-nginx");
        _directories.Add(dir);
        var template = await File.ReadAllTextAsync(Path.Combine(RepoPaths.Root, "deploy", "nginx", "meshai-front-door.conf"), cancellationToken);
        var config = template
            .Replace("${DIR}", dir, StringComparison.Ordinal)
            .Replace("${PORT}", port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("${CERT}", Path.Combine(_tlsDirectory, "cert.pem"), StringComparison.Ordinal)
            .Replace("${KEY}", Path.Combine(_tlsDirectory, "key.pem"), StringComparison.Ordinal)
            .Replace("${CONTROL_A}", "127.0.0.1:" + controlPorts[0].ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("${CONTROL_B}", "127.0.0.1:" + controlPorts[1].ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
        var path = Path.Combine(dir, "nginx.conf");
        NginxAccessLog = Path.Combine(dir, "access.log");
        await File.WriteAllTextAsync(path, config, cancellationToken);
        Nginx = ProcessRunner.Start(new ProcessRunnerOptions { FileName = nginx, Arguments = ["-c", path, "-p", dir, "-e", Path.Combine(dir, "error.log")], Name = "nginx" });
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var client = new System.Net.Sockets.TcpClient();
                await client.ConnectAsync(System.Net.IPAddress.Loopback, port, cancellationToken);
                return;
            }
            catch (System.Net.Sockets.SocketException)
            {
                if (Nginx.HasExited)
                {
                    throw new InvalidOperationException("nginx exited: " + Nginx.Output + await File.ReadAllTextAsync(Path.Combine(dir, "error.log"), cancellationToken));
                }

                await Task.Delay(100, cancellationToken);
            }
        }

        throw new TimeoutException("nginx did not listen on " + port);
    }

    [GeneratedRegex(@"url=(?<url>\S+)\s+fingerprint=(?<fp>[0-9a-f]+)")]
    private static partial Regex ReadyLine();

    [GeneratedRegex(@"MESHAI_AGENT_JOINED device_id=(?<id>\S+)")]
    private static partial Regex JoinedLine();

    [GeneratedRegex(@"^Link: (\S+)\r?$", RegexOptions.Multiline)]
    private static partial Regex LinkLine();
}

using System.Globalization;
using System.Net.Security;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Grpc.Net.Client;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Identity.V1;

namespace MeshAI.Testing;

/// <summary>Which store a <see cref="LocalMesh"/> server runs on.</summary>
public enum MeshStore
{
    /// <summary>The embedded default: a SQLite file in the server's data dir.</summary>
    Sqlite,

    /// <summary>A throwaway PostgreSQL database.</summary>
    Postgres,
}

/// <summary>How to start a <see cref="LocalMesh"/>.</summary>
public sealed class LocalMeshOptions
{
    /// <summary>Store of the server.</summary>
    public MeshStore Store { get; init; } = MeshStore.Sqlite;

    /// <summary>Connection string when <see cref="Store"/> is Postgres.</summary>
    public string? PostgresConnectionString { get; init; }

    /// <summary>Presence grace (the spec's 20 s by default).</summary>
    public int HeartbeatGraceSeconds { get; init; } = 20;

    /// <summary>Extra server arguments.</summary>
    public IReadOnlyList<string> ExtraServerArguments { get; init; } = [];
}

/// <summary>
/// Real processes on loopback: a meshai-server (control plane + relay), agents and CLI invocations, each in its own
/// scratch directory. Shared by the end-to-end tests, the load harness and anything else that needs a whole mesh.
/// </summary>
public sealed partial class LocalMesh : IAsyncDisposable
{
    private readonly List<ProcessRunner> _processes = [];
    private readonly List<string> _directories = [];
    private IReadOnlyList<string> _serverArguments = [];

    private LocalMesh(ProcessRunner server, string dataDirectory, string url, string fingerprint)
    {
        Server = server;
        DataDirectory = dataDirectory;
        Url = url;
        Fingerprint = fingerprint;
        _processes.Add(server);
        _directories.Add(dataDirectory);
    }

    /// <summary>The server process (a new one after <see cref="RestartServerAsync"/>).</summary>
    public ProcessRunner Server { get; private set; }

    /// <summary>The server's data directory.</summary>
    public string DataDirectory { get; }

    /// <summary>Public URL from the READY line.</summary>
    public string Url { get; }

    /// <summary>SHA-256 fingerprint of the server's self-signed TLS certificate.</summary>
    public string Fingerprint { get; }

    /// <summary>Folder the server writes magic-link mails to.</summary>
    public string OutboxDirectory => Path.Combine(DataDirectory, "outbox");

    /// <summary>Starts meshai-server on a free port and waits for its READY line.</summary>
    public static async Task<LocalMesh> StartAsync(LocalMeshOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var dataDirectory = ScratchDirectory.Create("meshai-server");
        List<string> arguments =
        [
            RepoPaths.BuiltAssembly("services/MeshAI.Server", "meshai-server"),
            "--data-dir", dataDirectory,
            "--port", "0",
            "--heartbeat-grace-seconds", options.HeartbeatGraceSeconds.ToString(CultureInfo.InvariantCulture),
        ];
        if (options.Store == MeshStore.Postgres)
        {
            arguments.AddRange(["--store", "postgres", "--postgres", options.PostgresConnectionString ?? throw new ArgumentException("PostgresConnectionString is required", nameof(options))]);
        }

        arguments.AddRange(options.ExtraServerArguments);
        var server = ProcessRunner.Start(new ProcessRunnerOptions { FileName = ProcessRunner.DotnetHostPath, Arguments = arguments, Name = "server" });
        try
        {
            var ready = await server.WaitForLineAsync("MESHAI_SERVER_READY", TimeSpan.FromSeconds(90), cancellationToken: cancellationToken);
            var match = ReadyLine().Match(ready.Text);
            if (!match.Success)
            {
                throw new InvalidOperationException("Unexpected READY line: " + ready.Text);
            }

            return new LocalMesh(server, dataDirectory, match.Groups["url"].Value, match.Groups["fp"].Value) { _serverArguments = arguments };
        }
        catch
        {
            await server.DisposeAsync();
            ScratchDirectory.TryDelete(dataDirectory);
            throw;
        }
    }

    /// <summary>
    /// Stops the server and starts it again on the same data directory, port and TLS certificate, so running agents
    /// see their stream drop and reconnect by themselves (nothing about the agents is restarted).
    /// </summary>
    public Task RestartServerAsync(CancellationToken cancellationToken = default) => RestartServerAsync(kill: false, cancellationToken);

    /// <summary>
    /// Restarts the server as <see cref="RestartServerAsync(CancellationToken)"/> does; with <paramref name="kill"/> the old
    /// process is killed (SIGKILL, a crash) instead of asked to stop.
    /// </summary>
    public async Task RestartServerAsync(bool kill, CancellationToken cancellationToken = default)
    {
        var port = new Uri(Url).Port.ToString(CultureInfo.InvariantCulture);
        var arguments = _serverArguments.ToList();
        arguments[arguments.IndexOf("--port") + 1] = port;
        if (kill)
        {
            Server.Kill();
        }

        await Server.DisposeAsync();
        var server = ProcessRunner.Start(new ProcessRunnerOptions { FileName = ProcessRunner.DotnetHostPath, Arguments = arguments, Name = "server" });
        _processes.Add(server);
        Server = server;
        var ready = await server.WaitForLineAsync("MESHAI_SERVER_READY", TimeSpan.FromSeconds(90), cancellationToken: cancellationToken);
        var match = ReadyLine().Match(ready.Text);
        if (!match.Success || match.Groups["url"].Value != Url || match.Groups["fp"].Value != Fingerprint)
        {
            throw new InvalidOperationException($"the restarted server answers differently: {ready.Text} (was url={Url} fingerprint={Fingerprint})");
        }
    }

    /// <summary>A pinned gRPC channel to the server, optionally carrying a session token.</summary>
    public GrpcChannel Channel(string? sessionToken = null) =>
        GrpcChannels.Create(Url, Fingerprint, sessionToken is null ? null : () => sessionToken);

    /// <summary>
    /// Signs in through the real device-code flow: StartDeviceLogin, open the magic link from the outbox, poll.
    /// Returns the session token.
    /// </summary>
    public async Task<string> SignInAsync(string email, CancellationToken cancellationToken = default)
    {
        using var channel = Channel();
        var identity = new IdentityService.IdentityServiceClient(channel);
        var start = await identity.StartDeviceLoginAsync(new StartDeviceLoginRequest { Email = email, ClientName = "tests" }, cancellationToken: cancellationToken);
        await OpenMagicLinkAsync(email, cancellationToken);
        var deadline = DateTimeOffset.UtcNow.AddSeconds(30);
        while (DateTimeOffset.UtcNow < deadline)
        {
            var poll = await identity.PollDeviceLoginAsync(new PollDeviceLoginRequest { DeviceCode = start.DeviceCode }, cancellationToken: cancellationToken);
            if (poll.State == DeviceLoginState.Approved)
            {
                return poll.SessionToken;
            }

            await Task.Delay(200, cancellationToken);
        }

        throw new TimeoutException("device login was not approved within 30 s");
    }

    /// <summary>
    /// Signs in through the real meshnet CLI (device-code login, approved by opening the magic link from the outbox)
    /// with the given CLI config file; returns the session token the CLI saved there.
    /// </summary>
    public async Task<string> SignInWithCliAsync(string cliConfig, string email, CancellationToken cancellationToken = default)
    {
        var login = StartCli(cliConfig, "auth", "login", "--server", Url, "--fingerprint", Fingerprint, "--email", email);
        await OpenMagicLinkAsync(email, cancellationToken);
        var exit = await login.WaitForExitAsync(TimeSpan.FromSeconds(60), cancellationToken);
        if (exit != 0)
        {
            throw new InvalidOperationException($"meshnet auth login exited with {exit}:\n{login.Output}");
        }

        using var config = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(cliConfig, cancellationToken));
        return config.RootElement.EnumerateObject()
            .First(p => p.Name.Contains("token", StringComparison.OrdinalIgnoreCase)).Value.GetString()!;
    }

    /// <summary>Finds the newest magic-link mail for the address in the outbox and opens its link (HTTP GET, pinned TLS).</summary>
    public async Task OpenMagicLinkAsync(string email, CancellationToken cancellationToken = default)
    {
        var link = await WaitForMagicLinkAsync(email, cancellationToken);
        using var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, cert, _, _) =>
                    cert is not null && Convert.ToHexStringLower(SHA256.HashData(cert.GetRawCertData())) == Fingerprint,
            },
        };
        using var http = new HttpClient(handler);
        using var response = await http.GetAsync(new Uri(link), cancellationToken);
        response.EnsureSuccessStatusCode();
    }

    /// <summary>Waits for a magic-link mail to the address and returns its link.</summary>
    public async Task<string> WaitForMagicLinkAsync(string email, CancellationToken cancellationToken = default)
    {
        var deadline = DateTimeOffset.UtcNow.AddSeconds(30);
        while (DateTimeOffset.UtcNow < deadline)
        {
            if (Directory.Exists(OutboxDirectory))
            {
                var mail = new DirectoryInfo(OutboxDirectory).GetFiles("*.eml")
                    .Where(f => f.Name.Contains(email, StringComparison.OrdinalIgnoreCase))
                    .OrderByDescending(f => f.Name, StringComparer.Ordinal)
                    .FirstOrDefault();
                if (mail is not null)
                {
                    var line = (await File.ReadAllLinesAsync(mail.FullName, cancellationToken)).FirstOrDefault(l => l.StartsWith("Link: ", StringComparison.Ordinal));
                    if (line is not null)
                    {
                        return line["Link: ".Length..].Trim();
                    }
                }
            }

            await Task.Delay(100, cancellationToken);
        }

        throw new TimeoutException($"no magic link for {email} in {OutboxDirectory}");
    }

    /// <summary>Runs the real meshnet CLI to completion with its own config file.</summary>
    public static async Task<CliResult> RunCliAsync(string configPath, IEnumerable<string> arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var run = await ProcessRunner.RunAsync(new ProcessRunnerOptions
        {
            FileName = ProcessRunner.DotnetHostPath,
            Arguments = [RepoPaths.BuiltAssembly("cli/MeshAI.Cli", "meshnet"), .. arguments],
            Environment = new Dictionary<string, string?> { ["MESHAI_CLI_CONFIG"] = configPath },
            Name = "meshnet",
        }, timeout ?? TimeSpan.FromSeconds(120), cancellationToken);
        await using (run)
        {
            return new CliResult(run.ExitCode ?? -1, run.StandardOutputText, run.StandardErrorText);
        }
    }

    /// <summary>Starts a long-running CLI invocation (e.g. auth login, which waits for approval).</summary>
    public ProcessRunner StartCli(string configPath, params string[] arguments)
    {
        var runner = ProcessRunner.Start(new ProcessRunnerOptions
        {
            FileName = ProcessRunner.DotnetHostPath,
            Arguments = [RepoPaths.BuiltAssembly("cli/MeshAI.Cli", "meshnet"), .. arguments],
            Environment = new Dictionary<string, string?> { ["MESHAI_CLI_CONFIG"] = configPath },
            Name = "meshnet",
        });
        _processes.Add(runner);
        return runner;
    }

    /// <summary>
    /// A real agent: joins with the link, starts <c>meshai-agent run</c> with the real packaged models as a shared
    /// read-only model cache (<see cref="ProvisionedModels"/>) and waits until the relay welcomed it.
    /// </summary>
    public Task<MeshAgent> StartAgentAsync(string joinLink, string name, CancellationToken cancellationToken = default) =>
        StartAgentAsync(joinLink, name, [], null, cancellationToken);

    /// <summary>
    /// A real agent started with extra <c>run</c> options; <paramref name="beforeRun"/> may change its state directory
    /// (e.g. tamper with the model) after join and before <c>run</c>.
    /// </summary>
    public async Task<MeshAgent> StartAgentAsync(string joinLink, string name, IReadOnlyList<string> runArguments, Action<string>? beforeRun, CancellationToken cancellationToken = default)
    {
        var stateDirectory = ScratchDirectory.Create("meshai-agent");
        _directories.Add(stateDirectory);
        var agentDll = RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent");
        var models = await ProvisionedModels.EnsureAsync(cancellationToken);
        var joined = await RunToSuccessAsync("agent-join", [agentDll, "join", joinLink, "--state-dir", stateDirectory, "--name", name, "--model-cache", models], cancellationToken);
        var deviceId = JoinedLine().Match(joined).Groups["id"].Value;
        beforeRun?.Invoke(stateDirectory);
        return await RunAgentAsync(stateDirectory, deviceId, name, runArguments, cancellationToken);
    }

    /// <summary>
    /// A scratch agent state directory (deleted with the mesh), for an agent that joins another way than a join link
    /// (e.g. <c>meshai-agent pair</c>, approved by a person); pass it <c>--model-cache</c> <see cref="ProvisionedModels.EnsureAsync"/>.
    /// </summary>
    public string NewAgentStateDirectory()
    {
        var stateDirectory = ScratchDirectory.Create("meshai-agent");
        _directories.Add(stateDirectory);
        return stateDirectory;
    }

    /// <summary>Starts <c>meshai-agent run</c> on an already joined state directory and waits until the relay welcomed it.</summary>
    public async Task<MeshAgent> RunAgentAsync(string stateDirectory, string deviceId, string name, IReadOnlyList<string> runArguments, CancellationToken cancellationToken = default)
    {
        var run = Track(ProcessRunner.Start(new ProcessRunnerOptions
        {
            FileName = ProcessRunner.DotnetHostPath,
            Arguments = [RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent"), "run", "--state-dir", stateDirectory, "--model-cache", await ProvisionedModels.EnsureAsync(cancellationToken), .. runArguments],
            Name = "agent-" + name,
        }));
        await run.WaitForLineAsync("MESHAI_AGENT_ONLINE", TimeSpan.FromSeconds(60), cancellationToken: cancellationToken);
        return new MeshAgent(name, deviceId, stateDirectory, run);
    }

    /// <summary>Starts <c>meshai-agent run</c> again on a (killed or stopped) agent's state directory and waits until the relay welcomed it.</summary>
    public async Task<MeshAgent> RestartAgentAsync(MeshAgent agent, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(agent);
        var agentDll = RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent");
        var run = ProcessRunner.Start(new ProcessRunnerOptions
        {
            FileName = ProcessRunner.DotnetHostPath,
            Arguments = [agentDll, "run", "--state-dir", agent.StateDirectory],
            Name = "agent-" + agent.Name,
        });
        _processes.Add(run);
        try
        {
            await run.WaitForLineAsync("MESHAI_AGENT_ONLINE", TimeSpan.FromSeconds(60), cancellationToken: cancellationToken);
        }
        catch
        {
            // A restart that did not come online in time must not linger as a second process on the same state directory.
            run.Kill();
            throw;
        }

        return agent with { Process = run };
    }

    /// <summary>Stops <paramref name="process"/> with the mesh (for processes a test starts itself).</summary>
    public ProcessRunner Track(ProcessRunner process)
    {
        _processes.Add(process);
        return process;
    }

    /// <summary>Stops every process and deletes every scratch directory.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var process in Enumerable.Reverse(_processes))
        {
            await process.DisposeAsync();
        }

        foreach (var directory in _directories)
        {
            ScratchDirectory.TryDelete(directory);
        }
    }

    private static async Task<string> RunToSuccessAsync(string name, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        await using var run = await ProcessRunner.RunAsync(
            new ProcessRunnerOptions { FileName = ProcessRunner.DotnetHostPath, Arguments = arguments, Name = name },
            TimeSpan.FromSeconds(120), cancellationToken);
        if (run.ExitCode != 0)
        {
            throw new InvalidOperationException($"{name} exited with {run.ExitCode}:\n{run.Output}");
        }

        return run.Output;
    }

    [GeneratedRegex(@"url=(?<url>\S+)\s+fingerprint=(?<fp>[0-9a-f]+)")]
    private static partial Regex ReadyLine();

    [GeneratedRegex(@"MESHAI_AGENT_JOINED device_id=(?<id>\S+)")]
    private static partial Regex JoinedLine();
}

/// <summary>Exit code and output of one CLI run.</summary>
public sealed record CliResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>A running agent process of a <see cref="LocalMesh"/>.</summary>
public sealed record MeshAgent(string Name, string DeviceId, string StateDirectory, ProcessRunner Process);

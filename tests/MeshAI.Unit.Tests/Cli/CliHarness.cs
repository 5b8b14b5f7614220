using MeshAI.Cli;
using MeshAI.Cli.Config;
using MeshAI.Client;

namespace MeshAI.Unit.Tests.Cli;

/// <summary>Runs `meshnet` in-process against a <see cref="FakeMesh"/> with a throwaway config file.</summary>
internal sealed class CliHarness : IDisposable
{
    public const string Server = "https://127.0.0.1:7443";
    public const string Fingerprint = "aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44";
    public const string Token = "ses-token-secret";

    /// <summary>With <paramref name="realTransport"/>, commands dial the configured server for real instead of the fake.</summary>
    public CliHarness(bool realTransport = false)
    {
        Directory = Path.Combine(Path.GetTempPath(), "meshnet-test-" + Guid.NewGuid().ToString("N")[..12]);
        ConfigPath = Path.Combine(Directory, "home", ".meshai", "cli.json");
        Environment = new CliEnvironment
        {
            GetEnvironmentVariable = name => name == CliConfigStore.PathVariable ? ConfigPath : null,
            HomeDirectory = Path.Combine(Directory, "home"),
            CreateClient = target =>
            {
                Targets.Add(target);
                return realTransport
                    ? new MeshClient(target.ServerUrl, target.Fingerprint, target.Credential) { DefaultTimeout = TimeSpan.FromSeconds(10) }
                    : new MeshClient(Mesh, target.Credential, target.ServerUrl) { EncryptPayloads = false }; // the fake mesh has no devices to encrypt to
            },
            CallTimeout = TimeSpan.FromSeconds(10),
            Delay = (_, _) => Task.CompletedTask,
            ClientName = "meshnet tests",
        };
    }

    public string Directory { get; }

    public string ConfigPath { get; }

    public FakeMesh Mesh { get; } = new();

    public List<ServerTarget> Targets { get; } = [];

    public CliEnvironment Environment { get; }

    public string Stdout { get; private set; } = "";

    public string Stderr { get; private set; } = "";

    public async Task<int> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        var code = await CliApp.RunAsync(args, stdout, stderr, Environment, CancellationToken.None);
        Stdout = stdout.ToString();
        Stderr = stderr.ToString();
        return code;
    }

    public async Task LoginAsync(string? defaultNetworkId = "net_home", string server = Server, string fingerprint = Fingerprint)
    {
        await new CliConfigStore(ConfigPath).SaveAsync(
            new CliConfig
            {
                ServerUrl = server,
                Fingerprint = fingerprint,
                SessionToken = Token,
                DefaultNetworkId = defaultNetworkId,
                Email = "ada@example.com",
                UserId = "usr_ada",
            },
            CancellationToken.None);
    }

    public Task<CliConfig> ConfigAsync() => new CliConfigStore(ConfigPath).LoadAsync(CancellationToken.None);

    public void Dispose()
    {
        if (System.IO.Directory.Exists(Directory))
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }
}

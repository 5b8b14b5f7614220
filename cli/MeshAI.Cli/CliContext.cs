using System.CommandLine;
using System.Text.Json.Nodes;
using Google.Protobuf;
using MeshAI.Cli.Config;
using MeshAI.Cli.Output;
using MeshAI.Client;
using MeshAI.Common.Local;

namespace MeshAI.Cli;

/// <summary>One command invocation: its parse result, output writers, config and connection helpers.</summary>
public sealed class CliContext
{
    private CliConfig? config;

    internal CliContext(ParseResult parseResult, CliRuntime runtime, CancellationToken cancellationToken)
    {
        ParseResult = parseResult;
        Out = runtime.Out;
        Error = runtime.Error;
        Environment = runtime.Environment;
        Json = parseResult.GetValue(runtime.JsonOption);
        Store = new CliConfigStore(CliConfigStore.ResolvePath(
            parseResult.GetValue(runtime.ConfigOption), Environment.GetEnvironmentVariable, Environment.HomeDirectory));
        CancellationToken = cancellationToken;
    }

    /// <summary>The parsed command line.</summary>
    public ParseResult ParseResult { get; }

    /// <summary>Results and tables.</summary>
    public TextWriter Out { get; }

    /// <summary>Errors and progress.</summary>
    public TextWriter Error { get; }

    /// <summary>The outside world.</summary>
    public CliEnvironment Environment { get; }

    /// <summary>True with --json: stdout carries exactly one JSON document.</summary>
    public bool Json { get; }

    /// <summary>The config file.</summary>
    public CliConfigStore Store { get; }

    /// <summary>Ctrl+C.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>The server this command talks to, once known (for error messages).</summary>
    public ServerTarget? Target { get; set; }

    /// <summary>Names a request field the way the user gave it ("--text #2"), for error messages; null keeps the path.</summary>
    public Func<string, string?>? FieldLabel { get; set; }

    /// <summary>Deadline for one unary call.</summary>
    public DateTime Deadline => Environment.Time.GetUtcNow().UtcDateTime + Environment.CallTimeout;

    /// <summary>The value of <paramref name="option"/>.</summary>
    public T? Get<T>(Option<T> option) => ParseResult.GetValue(option);

    /// <summary>The value of <paramref name="argument"/>.</summary>
    public T? Get<T>(Argument<T> argument) => ParseResult.GetValue(argument);

    /// <summary>The stored config (read once per invocation).</summary>
    public async Task<CliConfig> ConfigAsync() => config ??= await Store.LoadAsync(CancellationToken);

    /// <summary>Persists <paramref name="updated"/>.</summary>
    public async Task SaveConfigAsync(CliConfig updated)
    {
        await Store.SaveAsync(updated, CancellationToken);
        config = updated;
    }

    /// <summary>The stored config, or a "Not logged in" failure.</summary>
    public async Task<CliConfig> RequireLoginAsync()
    {
        var current = await ConfigAsync();
        if (!current.IsLoggedIn)
        {
            throw new CliException("Not logged in. Run: " + LoginCommand(current));
        }

        return current;
    }

    /// <summary>
    /// The login command to suggest: the configured server and fingerprint, else the local server of $MESHAI_HOME (its
    /// endpoint.json), else placeholders that say where the fingerprint comes from.
    /// </summary>
    public string LoginCommand(CliConfig current)
    {
        ArgumentNullException.ThrowIfNull(current);
        var email = string.IsNullOrEmpty(current.Email) ? "EMAIL" : current.Email;
        if (!string.IsNullOrEmpty(current.ServerUrl))
        {
            return $"meshnet auth login --server {current.ServerUrl}" +
                   (string.IsNullOrEmpty(current.Fingerprint) ? "" : $" --fingerprint {current.Fingerprint}") + $" --email {email}";
        }

        if (LocalServer() is { } local)
        {
            return $"meshnet auth login --server {local.Url} --fingerprint {local.Fingerprint} --email {email}";
        }

        return $"meshnet auth login --server URL --fingerprint FP --email {email} " +
               "(FP is the fingerprint=… that meshai-server prints when it starts; leave it out for a CA-signed certificate)";
    }

    /// <summary>The server running from $MESHAI_HOME on this machine (its endpoint.json), or null.</summary>
    public LocalServerEndpoint? LocalServer()
    {
        var directory = MeshHome.ResolveDirectory(Environment.GetEnvironmentVariable, Environment.HomeDirectory);
        return LocalServerEndpoint.TryRead(Path.Combine(directory, "server", MeshHome.EndpointFileName));
    }

    /// <summary>A client for the logged-in session.</summary>
    public async Task<MeshClient> ConnectAsync()
    {
        var current = await RequireLoginAsync();
        return Connect(new ServerTarget(current.ServerUrl!, NullIfEmpty(current.Fingerprint), current.SessionToken));
    }

    /// <summary>A client for <paramref name="target"/>.</summary>
    public MeshClient Connect(ServerTarget target)
    {
        Target = target;
        return Environment.CreateClient(target);
    }

    /// <summary>--network when given, else the default network, else a failure that says how to pick one.</summary>
    public async Task<string> NetworkIdAsync(Option<string> networkOption)
    {
        // Not being logged in is the more useful message when both are missing.
        await RequireLoginAsync();
        var explicitId = Get(networkOption);
        if (!string.IsNullOrWhiteSpace(explicitId))
        {
            return explicitId.Trim();
        }

        var current = await ConfigAsync();
        return !string.IsNullOrEmpty(current.DefaultNetworkId)
            ? current.DefaultNetworkId
            : throw new CliException("No network selected. Pass --network ID, or run: meshnet net use ID (see: meshnet net list)");
    }

    /// <summary>A line for people: stdout normally, stderr with --json so stdout stays one JSON document.</summary>
    public void Info(string line) => (Json ? Error : Out).WriteLine(line);

    /// <summary>Writes one JSON document to stdout.</summary>
    public void WriteJson(JsonNode? node) => Out.WriteLine(JsonOutput.Text(node));

    /// <summary>Writes a proto message as one JSON document to stdout.</summary>
    public void WriteJson(IMessage message) => WriteJson(JsonOutput.Node(message));

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}

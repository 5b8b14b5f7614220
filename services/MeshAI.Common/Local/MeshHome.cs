using System.Globalization;

namespace MeshAI.Common.Local;

/// <summary>
/// The one environment story shared by meshai-server, meshai-agent and meshnet (docs/newcomer.md): everything lives
/// under <c>$MESHAI_HOME</c> (default <c>~/.meshai</c>) — <c>server/</c>, <c>agent/</c>, <c>cli.json</c>, <c>run/</c> — and
/// the local server listens on <c>$MESHAI_PORT</c> (default 7443). Command-line options still win over both.
/// </summary>
public sealed class MeshHome
{
    /// <summary>Variable naming the home folder.</summary>
    public const string HomeVariable = "MESHAI_HOME";

    /// <summary>Variable naming the local server's port.</summary>
    public const string PortVariable = "MESHAI_PORT";

    /// <summary>Port of the local server when <see cref="PortVariable"/> is not set.</summary>
    public const int DefaultPort = 7443;

    /// <summary>File the server writes at start with its public URL and TLS fingerprint (public facts, for local clients).</summary>
    public const string EndpointFileName = "endpoint.json";

    private MeshHome(string directory, int port, bool portFromEnvironment)
    {
        Directory = directory;
        Port = port;
        PortFromEnvironment = portFromEnvironment;
    }

    /// <summary>The home folder (absolute).</summary>
    public string Directory { get; }

    /// <summary>The local server's port.</summary>
    public int Port { get; }

    /// <summary>True when <see cref="Port"/> came from <c>$MESHAI_PORT</c>.</summary>
    public bool PortFromEnvironment { get; }

    /// <summary>The server's data folder (<c>server/</c>).</summary>
    public string ServerDirectory => Path.Combine(Directory, "server");

    /// <summary>The agent's state folder (<c>agent/</c>).</summary>
    public string AgentDirectory => Path.Combine(Directory, "agent");

    /// <summary>The CLI's config file (<c>cli.json</c>).</summary>
    public string CliConfigPath => Path.Combine(Directory, "cli.json");

    /// <summary>The local server's endpoint file (<c>server/endpoint.json</c>).</summary>
    public string EndpointPath => Path.Combine(ServerDirectory, EndpointFileName);

    /// <summary>The local server's URL on loopback.</summary>
    public string LocalServerUrl => "https://127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture);

    /// <summary>The process's own environment.</summary>
    public static MeshHome Current => From(System.Environment.GetEnvironmentVariable, System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile));

    /// <summary>
    /// Reads <c>MESHAI_HOME</c> and <c>MESHAI_PORT</c> through <paramref name="environment"/>; throws
    /// <see cref="InvalidOperationException"/> with a one-line message when MESHAI_PORT is not a port number.
    /// </summary>
    public static MeshHome From(Func<string, string?> environment, string userHome)
    {
        var directory = ResolveDirectory(environment, userHome);
        var portText = environment(PortVariable);
        if (string.IsNullOrWhiteSpace(portText))
        {
            return new MeshHome(directory, DefaultPort, false);
        }

        return TryParsePort(portText, out var port)
            ? new MeshHome(directory, port, true)
            : throw new InvalidOperationException($"{PortVariable} must be a port number between 1 and 65535, got '{portText.Trim()}'.");
    }

    /// <summary>The home folder alone (absolute): <c>$MESHAI_HOME</c>, else <c>&lt;userHome&gt;/.meshai</c>.</summary>
    public static string ResolveDirectory(Func<string, string?> environment, string userHome)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var home = environment(HomeVariable);
        return Path.GetFullPath(string.IsNullOrWhiteSpace(home) ? Path.Combine(userHome, ".meshai") : home.Trim());
    }

    /// <summary>The agent's default state folder for the process's environment (<c>$MESHAI_HOME/agent</c>).</summary>
    public static string CurrentAgentDirectory =>
        Path.Combine(ResolveDirectory(System.Environment.GetEnvironmentVariable, System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile)), "agent");

    /// <summary>True for "1" … "65535" (0 is allowed only by the server's own --port, meaning "any free port").</summary>
    public static bool TryParsePort(string? text, out int port) =>
        int.TryParse(text?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is >= 1 and <= 65535;
}

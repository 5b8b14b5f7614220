using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace MeshAI.Server;

/// <summary>The meshai-server options of docs/phase0-contract.md, from "--key value" or env MESHAI_KEY (MESHAI_DATA_DIR, MESHAI_data-dir…).</summary>
public sealed record ServerSettings(
    string DataDir,
    int Port,
    string Listen,
    string Store,
    string? Postgres,
    int HeartbeatGraceSeconds,
    string? PublicUrl,
    string LogLevel,
    string? TlsCertificate = null,
    string? TlsKey = null,
    string? TlsPassword = null,
    string? WebRoot = null,
    string? ModelsDir = null)
{
    /// <summary>Default data directory (~/.meshai/server).</summary>
    public static string DefaultDataDir => Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".meshai", "server");

    /// <summary>Reads the options; unknown keys are left for other layers (e.g. "Control:Limits:…").</summary>
    public static ServerSettings From(IConfiguration configuration) => new(
        Path.GetFullPath(Read(configuration, "data-dir") ?? DefaultDataDir),
        int.Parse(Read(configuration, "port") ?? "7443", CultureInfo.InvariantCulture),
        Read(configuration, "listen") ?? "127.0.0.1",
        (Read(configuration, "store") ?? "sqlite").ToLowerInvariant(),
        Read(configuration, "postgres"),
        int.Parse(Read(configuration, "heartbeat-grace-seconds") ?? "20", CultureInfo.InvariantCulture),
        Read(configuration, "public-url"),
        Read(configuration, "log-level") ?? "Warning",
        Read(configuration, "tls-cert"),
        Read(configuration, "tls-key"),
        Read(configuration, "tls-password"),
        Read(configuration, "web-root"),
        Read(configuration, "models-dir"));

    /// <summary>The value under any spelling of a dashed key: "data-dir", "data_dir" (env MESHAI_DATA_DIR) or "DataDir".</summary>
    public static string? Read(IConfiguration configuration, string dashedKey)
    {
        var pascal = string.Concat(dashedKey.Split('-').Select(p => char.ToUpperInvariant(p[0]) + p[1..]));
        foreach (var key in new[] { dashedKey, dashedKey.Replace('-', '_'), pascal })
        {
            if (configuration[key] is { Length: > 0 } value)
            {
                return value;
            }
        }

        return null;
    }

    /// <summary>The keys AddControlPlane and AddRelay read, derived from these options and the SMTP switches.</summary>
    public IEnumerable<KeyValuePair<string, string?>> ToComponentConfiguration(IConfiguration configuration)
    {
        yield return new("Control:DataDir", DataDir);
        yield return new("Control:Store", Store);
        yield return new("Control:PostgresConnectionString", Postgres);
        yield return new("heartbeat-grace-seconds", HeartbeatGraceSeconds.ToString(CultureInfo.InvariantCulture));
        foreach (var (option, key) in new[] { ("smtp-host", "Host"), ("smtp-port", "Port"), ("smtp-user", "User"), ("smtp-password", "Password"), ("smtp-from", "From") })
        {
            if (Read(configuration, option) is { } value)
            {
                yield return new("Control:Smtp:" + key, value);
            }
        }
    }
}

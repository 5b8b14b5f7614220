using System.Globalization;
using MeshAI.Common.Local;
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
    string Role = "all",
    string? Bus = null,
    string? InstanceId = null,
    string? RelayId = null,
    string? RelayUrls = null,
    string? WebRoot = null,
    string? ModelsDir = null)
{
    /// <summary>The roles a process can take: control plane + relay (embedded default), control plane only, relay only.</summary>
    public static readonly IReadOnlyList<string> Roles = ["all", "control", "relay"];

    /// <summary>True when this process serves the control plane's RPCs.</summary>
    public bool RunsControl => Role is "all" or "control";

    /// <summary>True when this process holds agents' relay streams.</summary>
    public bool RunsRelay => Role is "all" or "relay";

    /// <summary>Default data directory: <c>$MESHAI_HOME/server</c> (<c>~/.meshai/server</c>).</summary>
    public static string DefaultDataDir => MeshHome.Current.ServerDirectory;

    /// <summary>
    /// Reads the options; unknown keys are left for other layers (e.g. "Control:Limits:…"). A malformed value throws
    /// <see cref="InvalidOperationException"/> with one line naming the option (meshai-server prints it and exits 2).
    /// </summary>
    public static ServerSettings From(IConfiguration configuration)
    {
        var listen = Read(configuration, "listen") ?? "127.0.0.1";
        if (!System.Net.IPAddress.TryParse(listen, out _))
        {
            throw new InvalidOperationException($"--listen must be an IP address such as 127.0.0.1 or 0.0.0.0, got '{listen}'.");
        }

        var logLevel = Read(configuration, "log-level") ?? "Warning";
        if (!Enum.TryParse<Microsoft.Extensions.Logging.LogLevel>(logLevel, ignoreCase: true, out _))
        {
            throw new InvalidOperationException($"--log-level must be one of Trace, Debug, Information, Warning, Error, Critical, None; got '{logLevel}'.");
        }

        var store = Read(configuration, "store") ?? "sqlite";
        var postgres = Read(configuration, "postgres");
        if (store.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || store.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))
        {
            postgres = PostgresUrl(store);
            store = "postgres";
        }

        store = store.ToLowerInvariant();
        if (store is not ("sqlite" or "postgres"))
        {
            throw new InvalidOperationException($"--store must be sqlite, postgres or a postgres://user:password@host:port/database URL, got '{store}'.");
        }

        var role = (Read(configuration, "role") ?? "all").ToLowerInvariant();
        if (!Roles.Contains(role))
        {
            throw new InvalidOperationException($"--role must be one of {string.Join(", ", Roles)}, got '{role}'.");
        }

        var bus = Read(configuration, "bus");
        if (bus is not null && !bus.StartsWith("redis://", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"--bus must be a redis://host:port URL (leave it out for the in-process bus), got '{bus}'.");
        }

        return new(
            Path.GetFullPath(Read(configuration, "data-dir") ?? DefaultDataDir),
            Number(configuration, "port", MeshHome.DefaultPort, 0, 65535, "a port number (0 = any free port)"),
            listen,
            store,
            postgres,
            Number(configuration, "heartbeat-grace-seconds", 20, 1, 3600, "a number of seconds"),
            Read(configuration, "public-url"),
            logLevel,
            Read(configuration, "tls-cert"),
            Read(configuration, "tls-key"),
            Read(configuration, "tls-password"),
            role,
            bus,
            Read(configuration, "instance-id"),
            Read(configuration, "relay-id"),
            Read(configuration, "relay-urls"),
            Read(configuration, "web-root"),
            Read(configuration, "models-dir"));
    }

    /// <summary>An Npgsql connection string from a postgres://user:password@host:port/database URL.</summary>
    public static string PostgresUrl(string url)
    {
        var uri = new Uri(url);
        var userInfo = uri.UserInfo.Split(':', 2);
        var builder = new System.Text.StringBuilder();
        builder.Append(CultureInfo.InvariantCulture, $"Host={uri.Host};Port={(uri.Port > 0 ? uri.Port : 5432)};Database={uri.AbsolutePath.TrimStart('/')}");
        if (userInfo[0].Length > 0)
        {
            builder.Append(CultureInfo.InvariantCulture, $";Username={Uri.UnescapeDataString(userInfo[0])}");
        }

        if (userInfo.Length > 1)
        {
            builder.Append(CultureInfo.InvariantCulture, $";Password={Uri.UnescapeDataString(userInfo[1])}");
        }

        return builder.ToString();
    }

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

    private static int Number(IConfiguration configuration, string dashedKey, int fallback, int min, int max, string what)
    {
        var text = Read(configuration, dashedKey);
        if (text is null)
        {
            return fallback;
        }

        var variable = "MESHAI_" + dashedKey.Replace('-', '_').ToUpperInvariant();
        return int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new InvalidOperationException($"--{dashedKey} (or {variable}) must be {what} between {min} and {max}, got '{text}'.");
    }

    /// <summary>The keys AddControlPlane and AddRelay read, derived from these options and the SMTP switches.</summary>
    public IEnumerable<KeyValuePair<string, string?>> ToComponentConfiguration(IConfiguration configuration)
    {
        yield return new("Control:DataDir", DataDir);
        yield return new("Control:Store", Store);
        yield return new("Control:PostgresConnectionString", Postgres);
        yield return new("heartbeat-grace-seconds", HeartbeatGraceSeconds.ToString(CultureInfo.InvariantCulture));
        yield return new("role", Role);
        if (InstanceId is not null)
        {
            yield return new("Control:Jobs:InstanceId", InstanceId);
        }

        if (RelayId is not null)
        {
            yield return new("Relay:RelayId", RelayId);
        }

        if (RelayUrls is not null)
        {
            yield return new("Control:RelayUrls", RelayUrls);
            yield return new("Relay:PublicUrls", RelayUrls);
        }
        foreach (var (option, key) in new[] { ("metrics-token", "MetricsToken"), ("otlp-endpoint", "OtlpEndpoint"), ("otlp-protocol", "OtlpProtocol") })
        {
            if (Read(configuration, option) is { } value)
            {
                yield return new("Control:Observability:" + key, value);
            }
        }

        foreach (var (option, key) in new[] { ("smtp-host", "Host"), ("smtp-port", "Port"), ("smtp-user", "User"), ("smtp-password", "Password"), ("smtp-from", "From") })
        {
            if (Read(configuration, option) is { } value)
            {
                yield return new("Control:Smtp:" + key, value);
            }
        }
    }
}

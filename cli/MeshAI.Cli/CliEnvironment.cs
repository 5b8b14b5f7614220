using MeshAI.Client;

namespace MeshAI.Cli;

/// <summary>Where the CLI connects: server, pinned fingerprint and bearer credential.</summary>
public sealed record ServerTarget(string ServerUrl, string? Fingerprint, string? Credential);

/// <summary>The outside world of a CLI run (environment, home folder, connections, clock), replaceable in tests.</summary>
public sealed class CliEnvironment
{
    /// <summary>Reads an environment variable.</summary>
    public Func<string, string?> GetEnvironmentVariable { get; init; } = Environment.GetEnvironmentVariable;

    /// <summary>The user's home folder (for ~/.meshai/cli.json).</summary>
    public string HomeDirectory { get; init; } = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    /// <summary>Opens a client for a target; the default dials the server with TLS pinning.</summary>
    public Func<ServerTarget, MeshClient> CreateClient { get; init; } =
        target => new MeshClient(target.ServerUrl, target.Fingerprint, target.Credential);

    /// <summary>Waits between polls.</summary>
    public Func<TimeSpan, CancellationToken, Task> Delay { get; init; } = Task.Delay;

    /// <summary>The clock.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Name sent as the session's client name.</summary>
    public string ClientName { get; init; } = "meshnet on " + Environment.MachineName;

    /// <summary>Deadline for unary calls.</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

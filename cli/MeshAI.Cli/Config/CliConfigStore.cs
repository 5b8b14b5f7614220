using System.Text.Json;

namespace MeshAI.Cli.Config;

/// <summary>Reads and writes the CLI config file; the file is created with mode 0600 and its folder with 0700 (it holds a session token).</summary>
public sealed class CliConfigStore
{
    /// <summary>Environment variable that overrides the config path.</summary>
    public const string PathVariable = "MESHAI_CLI_CONFIG";

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    /// <summary>A store for the file at <paramref name="path"/>.</summary>
    public CliConfigStore(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
    }

    /// <summary>Absolute path of the config file.</summary>
    public string Path { get; }

    /// <summary>The path to use: --config, then MESHAI_CLI_CONFIG, then $MESHAI_HOME/cli.json (~/.meshai/cli.json).</summary>
    public static string ResolvePath(string? optionValue, Func<string, string?> environment, string homeDirectory)
    {
        ArgumentNullException.ThrowIfNull(environment);
        if (!string.IsNullOrWhiteSpace(optionValue))
        {
            return optionValue;
        }

        var fromEnvironment = environment(PathVariable);
        return !string.IsNullOrWhiteSpace(fromEnvironment)
            ? fromEnvironment
            : System.IO.Path.Combine(MeshAI.Common.Local.MeshHome.ResolveDirectory(environment, homeDirectory), "cli.json");
    }

    /// <summary>The stored config, or an empty one when the file does not exist.</summary>
    public async Task<CliConfig> LoadAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(Path))
        {
            return new CliConfig();
        }

        try
        {
            await using var stream = File.OpenRead(Path);
            return await JsonSerializer.DeserializeAsync<CliConfig>(stream, JsonOptions, cancellationToken) ?? new CliConfig();
        }
        catch (JsonException ex)
        {
            throw new CliException($"The config file {Path} is not valid JSON ({ex.Message}). Fix or delete it, then run: meshnet auth login");
        }
    }

    /// <summary>Writes <paramref name="config"/> atomically (temp file with mode 0600, then rename).</summary>
    public async Task SaveAsync(CliConfig config, CancellationToken cancellationToken)
    {
        var directory = System.IO.Path.GetDirectoryName(Path)!;
        if (!Directory.Exists(directory))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(directory);
            }
            else
            {
                Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        var temp = Path + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            await using (var stream = new FileStream(temp, options))
            {
                await JsonSerializer.SerializeAsync(stream, config, JsonOptions, cancellationToken);
            }

            File.Move(temp, Path, overwrite: true);
            if (!OperatingSystem.IsWindows())
            {
                // An older file may have been created with a wider mode; the rename keeps the temp file's mode, but be explicit.
                File.SetUnixFileMode(Path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }
}

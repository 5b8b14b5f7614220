namespace MeshAI.Testing;

/// <summary>
/// The real embedding models (all-minilm-l6-v2, arctic-embed-xs) installed once per machine by the project's own command,
/// <c>meshai-agent models install --out .artifacts/models</c> (./test.sh runs it before the test rings; this runs it again
/// when a test is started on its own). Agents of a <see cref="LocalMesh"/> read it as a shared, read-only model cache.
/// </summary>
public static class ProvisionedModels
{
    /// <summary>Name of the default model.</summary>
    public const string MiniLm = "all-minilm-l6-v2";

    /// <summary>Name of the second packaged model.</summary>
    public const string ArcticXs = "arctic-embed-xs";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static bool _done;

    /// <summary>The shared cache root (one directory per model).</summary>
    public static string Root => Environment.GetEnvironmentVariable("MESHAI_TEST_MODELS") is { Length: > 0 } fromEnv ? fromEnv : RepoPaths.Combine(".artifacts", "models");

    /// <summary>The directory of one installed model.</summary>
    public static string Directory(string name) => Path.Combine(Root, name);

    /// <summary>Installs (or re-verifies) the packaged models into <see cref="Root"/> once per test process; returns the root.</summary>
    public static async Task<string> EnsureAsync(CancellationToken cancellationToken = default)
    {
        await Gate.WaitAsync(cancellationToken);
        try
        {
            if (!_done)
            {
                await using var run = await ProcessRunner.RunAsync(new ProcessRunnerOptions
                {
                    FileName = ProcessRunner.DotnetHostPath,
                    Arguments = [RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent"), "models", "install", "--out", Root],
                    Name = "models-install",
                }, TimeSpan.FromMinutes(5), cancellationToken);
                if (run.ExitCode != 0)
                {
                    throw new InvalidOperationException($"meshai-agent models install exited with {run.ExitCode}:\n{run.Output}");
                }

                _done = true;
            }

            return Root;
        }
        finally
        {
            Gate.Release();
        }
    }
}

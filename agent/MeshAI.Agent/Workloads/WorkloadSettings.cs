using MeshAI.Agent.Commands;

namespace MeshAI.Agent.Workloads;

/// <summary>
/// What the handlers need to find their runtimes and models. The agent builds it from its command line and passes
/// the same values to each sandbox worker (<see cref="ToWorkerArguments"/>), so both sides build the same handler.
/// </summary>
public sealed record WorkloadSettings
{
    /// <summary>An explicit embeddings model directory (<c>--model-dir</c>); it becomes the default model.</summary>
    public string? EmbeddingsModelDir { get; init; }

    /// <summary>
    /// Model cache roots scanned for one directory per model: the agent's own (<c>STATE/models</c>) first, then any
    /// read-only shared caches named by <c>--model-cache DIR[,DIR]</c>.
    /// </summary>
    public IReadOnlyList<string> ModelRoots { get; init; } = [];

    /// <summary>The embeddings model for jobs that name none (<c>--default-model</c>); all-minilm-l6-v2 when installed, else the first found.</summary>
    public string? DefaultModel { get; init; }

    /// <summary>Directory with a GGUF chat model and its manifest (LLamaSharp runtime).</summary>
    public string? ChatModelDir { get; init; }

    /// <summary>Base URL of a local OpenAI-compatible server (llama.cpp server, Ollama) used instead of LLamaSharp.</summary>
    public string? ChatOpenAiUrl { get; init; }

    /// <summary>Model name sent to the OpenAI-compatible server.</summary>
    public string? ChatOpenAiModel { get; init; }

    /// <summary>The tesseract executable (Debian tesseract-ocr).</summary>
    public string TesseractPath { get; init; } = "tesseract";

    /// <summary>The pocketsphinx executable (Debian pocketsphinx).</summary>
    public string PocketsphinxPath { get; init; } = "pocketsphinx_continuous";

    /// <summary>
    /// Reads the settings from <c>--model-dir</c>, <c>--model-cache</c>, <c>--default-model</c>, <c>--chat-model-dir</c>,
    /// <c>--chat-openai-url</c>, … options; <paramref name="ownModelRoot"/> is scanned before any <c>--model-cache</c>.
    /// </summary>
    public static WorkloadSettings FromCommandLine(CommandLine line, string ownModelRoot, string defaultChatDir)
    {
        ArgumentNullException.ThrowIfNull(line);
        var caches = (line.Get("model-cache") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new WorkloadSettings
        {
            EmbeddingsModelDir = line.Get("model-dir"),
            ModelRoots = [.. new[] { ownModelRoot }.Concat(caches).Where(r => !string.IsNullOrEmpty(r)).Distinct(StringComparer.Ordinal)],
            DefaultModel = line.Get("default-model"),
            ChatModelDir = line.Get("chat-model-dir") ?? defaultChatDir,
            ChatOpenAiUrl = line.Get("chat-openai-url"),
            ChatOpenAiModel = line.Get("chat-openai-model"),
            TesseractPath = line.Get("tesseract") ?? "tesseract",
            PocketsphinxPath = line.Get("pocketsphinx") ?? "pocketsphinx_continuous",
        };
    }

    /// <summary>The options that rebuild these settings in a worker.</summary>
    public IReadOnlyList<string> ToWorkerArguments()
    {
        // The worker's own root is empty: every root travels in --model-cache, in the agent's order.
        var args = new List<string> { "--tesseract", TesseractPath, "--pocketsphinx", PocketsphinxPath };
        Add("--model-dir", EmbeddingsModelDir);
        Add("--model-cache", string.Join(',', ModelRoots));
        Add("--default-model", DefaultModel);
        Add("--chat-model-dir", ChatModelDir);
        Add("--chat-openai-url", ChatOpenAiUrl);
        Add("--chat-openai-model", ChatOpenAiModel);
        return args;

        void Add(string name, string? value)
        {
            if (!string.IsNullOrEmpty(value))
            {
                args.Add(name);
                args.Add(value);
            }
        }
    }
}

/// <summary>Finds external programs the handlers call (tesseract, pocketsphinx).</summary>
public static class Executables
{
    /// <summary>The full path of <paramref name="name"/> (absolute, or looked up on PATH), or null.</summary>
    public static string? Find(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (Path.IsPathRooted(name))
        {
            return File.Exists(name) ? name : null;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Runs a program to completion; returns exit code, stdout and stderr. Killed on cancel.</summary>
    public static async Task<(int ExitCode, string StandardOutput, string StandardError)> RunAsync(
        string fileName, IEnumerable<string> arguments, string workingDirectory, CancellationToken cancellationToken)
    {
        var info = new System.Diagnostics.ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in arguments)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = System.Diagnostics.Process.Start(info) ?? throw new InvalidOperationException("could not start " + fileName);
        using var kill = cancellationToken.Register(() =>
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Already exited.
            }
        });
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        await process.WaitForExitAsync(CancellationToken.None);
        cancellationToken.ThrowIfCancellationRequested();
        return (process.ExitCode, await stdout, await stderr);
    }
}

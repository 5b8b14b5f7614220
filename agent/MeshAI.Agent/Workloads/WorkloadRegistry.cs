using MeshAI.Agent.Embeddings;
using MeshAI.Agent.Models;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using Microsoft.Extensions.Logging;

namespace MeshAI.Agent.Workloads;

/// <summary>The one place handlers are registered; what it holds is what the device advertises.</summary>
public sealed partial class WorkloadRegistry : IDisposable
{
    private readonly Dictionary<WorkloadInput.InputOneofCase, IWorkloadHandler> _handlers = [];
    private readonly List<IDisposable> _owned = [];
    private LocalModelSet _models = new([], null);
    private InstalledModel? _chatModel;

    /// <summary>Creates an empty registry.</summary>
    public WorkloadRegistry(IEnumerable<IWorkloadHandler> handlers)
    {
        foreach (var handler in handlers)
        {
            _handlers[handler.InputCase] = handler;
        }
    }

    /// <summary>
    /// Creates a registry of <paramref name="handlers"/> that advertises <paramref name="models"/> as its embeddings models
    /// (a host composing its own embeddings handler over a verified model set).
    /// </summary>
    public WorkloadRegistry(IEnumerable<IWorkloadHandler> handlers, LocalModelSet models)
        : this(handlers)
    {
        ArgumentNullException.ThrowIfNull(models);
        _models = models;
    }

    /// <summary>Workload classes with a handler (advertised in capability reports).</summary>
    public IReadOnlyList<WorkloadClass> Workloads => [.. _handlers.Values.Select(h => h.Workload).Distinct().Order()];

    /// <summary>
    /// The agent's handlers: diagnostic echo always; embeddings when <paramref name="embeddingsModelDir"/> holds a model
    /// whose every file matches its manifest (otherwise logged and not advertised).
    /// </summary>
    public static WorkloadRegistry CreateDefault(string embeddingsModelDir, ILogger logger) =>
        CreateDefault(new WorkloadSettings { EmbeddingsModelDir = embeddingsModelDir }, logger);

    /// <summary>
    /// Every handler this device can run: echo always; embeddings with every verified model of the model cache roots
    /// (and <c>--model-dir</c>); OCR when tesseract is installed; transcription when pocketsphinx is; chat with a verified
    /// GGUF or a configured OpenAI-compatible server. What cannot run is logged and not advertised.
    /// </summary>
    public static WorkloadRegistry CreateDefault(WorkloadSettings settings, ILogger logger) => CreateDefault(settings, logger, worker: null);

    /// <summary>
    /// As <see cref="CreateDefault(WorkloadSettings, ILogger)"/>, for the sandbox worker of <paramref name="worker"/>: a
    /// worker of another class does not look for embeddings models, and the embeddings worker reads their manifests without
    /// hashing every file (the model a job selects is verified when it is loaded).
    /// </summary>
    public static WorkloadRegistry CreateDefault(WorkloadSettings settings, ILogger logger, WorkloadClass? worker)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var handlers = new List<IWorkloadHandler> { new EchoHandler(), new BatchHandler() };
        var models = worker is null or WorkloadClass.Embeddings
            ? LocalModelSet.Discover(settings.EmbeddingsModelDir, settings.ModelRoots, settings.DefaultModel ?? ModelPackages.PackagedModels.DefaultModel,
                (dir, reason) => LogModelRefused(logger, dir, reason), verifyFiles: worker is null)
            : new LocalModelSet([], null);
        EmbeddingsHandler? embeddings = null;
        if (models.Models.Count > 0)
        {
            embeddings = new EmbeddingsHandler(models);
            handlers.Add(embeddings);
            foreach (var model in models.Models)
            {
                LogModelLoaded(logger, model.Name, model.Directory, ReferenceEquals(model, models.Default));
            }
        }
        else
        {
            LogNoModel(logger, string.Join(", ", new[] { settings.EmbeddingsModelDir ?? "" }.Concat(settings.ModelRoots).Where(d => d.Length > 0)));
        }

        var extra = WorkloadRuntimes.Discover(settings, logger);
        handlers.AddRange(extra);
        var registry = new WorkloadRegistry(handlers) { _models = models, _chatModel = ChatModel(settings, extra) };
        if (embeddings is not null)
        {
            registry._owned.Add(embeddings);
        }

        registry._owned.AddRange(extra.OfType<IDisposable>());
        return registry;
    }

    /// <summary>The verified embeddings models (empty when none).</summary>
    public LocalModelSet EmbeddingsModels => _models;

    /// <summary>Every model this device advertises: its embeddings models and its chat model.</summary>
    public IReadOnlyList<InstalledModel> InstalledModels => [.. _models.ToInstalled(), .. _chatModel is null ? [] : new[] { _chatModel }];

    /// <summary>Adds what this device can run (workload classes and installed models) to a capability report.</summary>
    public void Advertise(CapabilityReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        report.Workloads.AddRange(Workloads);
        report.Models.AddRange(InstalledModels);
    }

    private static InstalledModel? ChatModel(WorkloadSettings settings, IReadOnlyList<IWorkloadHandler> handlers)
    {
        if (!handlers.Any(h => h.Workload == WorkloadClass.SmallChat))
        {
            return null;
        }

        if (!string.IsNullOrEmpty(settings.ChatOpenAiUrl))
        {
            return string.IsNullOrEmpty(settings.ChatOpenAiModel) ? null : new InstalledModel { Name = settings.ChatOpenAiModel, WorkloadClass = WorkloadClass.SmallChat, IsDefault = true };
        }

        // The chat handler exists only when this manifest verified (WorkloadRuntimes.Discover).
        return new LocalModel(settings.ChatModelDir!, ModelManifest.Load(settings.ChatModelDir!)).ToInstalled(isDefault: true);
    }

    /// <summary>Every registered handler.</summary>
    public IReadOnlyList<IWorkloadHandler> Handlers => [.. _handlers.Values];

    /// <summary>The handler serving <paramref name="workload"/>, or null.</summary>
    public IWorkloadHandler? FindClass(WorkloadClass workload) => _handlers.Values.FirstOrDefault(h => h.Workload == workload);

    /// <summary>A registry whose handlers run in sandbox worker processes (this one keeps only what it advertises).</summary>
    public WorkloadRegistry Sandboxed(Sandbox.SandboxOptions options)
    {
        var sandboxed = new WorkloadRegistry(_handlers.Values.Select(h => (IWorkloadHandler)new Sandbox.SandboxedHandler(h, options))) { _models = _models, _chatModel = _chatModel };
        sandboxed._owned.AddRange(sandboxed._handlers.Values.OfType<IDisposable>());
        return sandboxed;
    }

    /// <summary>The handler for the input, or null when this device cannot run it.</summary>
    public IWorkloadHandler? Find(WorkloadInput input) =>
        input is not null && _handlers.TryGetValue(input.InputCase, out var handler) ? handler : null;

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var owned in _owned)
        {
            owned.Dispose();
        }
    }

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Embeddings model {Model} verified in {Dir} (default: {IsDefault})")]
    private static partial void LogModelLoaded(ILogger logger, string model, string dir, bool isDefault);

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Error, Message = "Embeddings model in {Dir} REFUSED, embeddings not advertised: {Reason}")]
    private static partial void LogModelRefused(ILogger logger, string dir, string reason);

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "No embeddings model in {Dir}; embeddings not advertised")]
    private static partial void LogNoModel(ILogger logger, string dir);
}

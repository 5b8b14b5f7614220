using MeshAI.Agent.Embeddings;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using Microsoft.Extensions.Logging;

namespace MeshAI.Agent.Workloads;

/// <summary>The one place handlers are registered; what it holds is what the device advertises.</summary>
public sealed partial class WorkloadRegistry : IDisposable
{
    private readonly Dictionary<WorkloadInput.InputOneofCase, IWorkloadHandler> _handlers = [];
    private readonly List<IDisposable> _owned = [];

    /// <summary>Creates an empty registry.</summary>
    public WorkloadRegistry(IEnumerable<IWorkloadHandler> handlers)
    {
        foreach (var handler in handlers)
        {
            _handlers[handler.InputCase] = handler;
        }
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
    /// Every handler this device can run: echo always; embeddings with a verified model; OCR when tesseract is
    /// installed; transcription when pocketsphinx is; chat with a verified GGUF or a configured OpenAI-compatible server.
    /// What cannot run is logged and not advertised.
    /// </summary>
    public static WorkloadRegistry CreateDefault(WorkloadSettings settings, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var embeddingsModelDir = settings.EmbeddingsModelDir;
        var handlers = new List<IWorkloadHandler> { new EchoHandler(), new BatchHandler() };
        EmbeddingModel? model = null;
        if (Directory.Exists(embeddingsModelDir))
        {
            try
            {
                model = EmbeddingModel.Load(embeddingsModelDir);
                handlers.Add(new EmbeddingsHandler(model));
                LogModelLoaded(logger, model.Manifest.Name, embeddingsModelDir);
            }
            catch (ModelVerificationException ex)
            {
                LogModelRefused(logger, embeddingsModelDir, ex.Message);
            }
            catch (Exception ex) when (ex is Microsoft.ML.OnnxRuntime.OnnxRuntimeException or IOException or InvalidOperationException or ArgumentException)
            {
                LogModelRefused(logger, embeddingsModelDir, ex.Message);
            }
        }
        else
        {
            LogNoModel(logger, embeddingsModelDir);
        }

        var extra = WorkloadRuntimes.Discover(settings, logger);
        handlers.AddRange(extra);
        var registry = new WorkloadRegistry(handlers);
        if (model is not null)
        {
            registry._owned.Add(model);
        }

        registry._owned.AddRange(extra.OfType<IDisposable>());
        return registry;
    }

    /// <summary>Every registered handler.</summary>
    public IReadOnlyList<IWorkloadHandler> Handlers => [.. _handlers.Values];

    /// <summary>The handler serving <paramref name="workload"/>, or null.</summary>
    public IWorkloadHandler? FindClass(WorkloadClass workload) => _handlers.Values.FirstOrDefault(h => h.Workload == workload);

    /// <summary>A registry whose handlers run in sandbox worker processes (this one keeps only what it advertises).</summary>
    public WorkloadRegistry Sandboxed(Sandbox.SandboxOptions options)
    {
        var sandboxed = new WorkloadRegistry(_handlers.Values.Select(h => (IWorkloadHandler)new Sandbox.SandboxedHandler(h, options)));
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

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Embeddings model {Model} verified and loaded from {Dir}")]
    private static partial void LogModelLoaded(ILogger logger, string model, string dir);

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Error, Message = "Embeddings model in {Dir} REFUSED, embeddings not advertised: {Reason}")]
    private static partial void LogModelRefused(ILogger logger, string dir, string reason);

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "No embeddings model at {Dir}; embeddings not advertised")]
    private static partial void LogNoModel(ILogger logger, string dir);
}

using MeshAI.Agent.Chat;
using MeshAI.Agent.Embeddings;
using Microsoft.Extensions.Logging;

namespace MeshAI.Agent.Workloads;

/// <summary>Finds the runtimes and models for OCR, transcription and chat; what is missing is logged and skipped.</summary>
public static partial class WorkloadRuntimes
{
    /// <summary>Directory of the pocketsphinx en-us model Debian's pocketsphinx-en-us installs.</summary>
    public const string PocketsphinxModelDir = "/usr/share/pocketsphinx/model/en-us";

    /// <summary>The OCR, transcription and chat handlers this device can run.</summary>
    public static IReadOnlyList<IWorkloadHandler> Discover(WorkloadSettings settings, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var handlers = new List<IWorkloadHandler>();
        if (Executables.Find(settings.TesseractPath) is { } tesseract)
        {
            handlers.Add(new OcrHandler(tesseract));
        }
        else
        {
            LogMissing(logger, "ocr_preprocess", $"{settings.TesseractPath} not found (apt-get install tesseract-ocr tesseract-ocr-eng)");
        }

        if (Executables.Find(settings.PocketsphinxPath) is { } pocketsphinx && Directory.Exists(PocketsphinxModelDir))
        {
            handlers.Add(new TranscribeHandler(pocketsphinx));
        }
        else
        {
            LogMissing(logger, "audio_transcribe_chunked", $"{settings.PocketsphinxPath} or {PocketsphinxModelDir} not found (apt-get install pocketsphinx pocketsphinx-en-us)");
        }

        if (!string.IsNullOrEmpty(settings.ChatOpenAiUrl))
        {
            handlers.Add(new ChatHandler(new OpenAiCompatibleRuntime(settings.ChatOpenAiUrl, settings.ChatOpenAiModel)));
        }
        else if (!string.IsNullOrEmpty(settings.ChatModelDir) && File.Exists(Path.Combine(settings.ChatModelDir, ModelManifest.FileName)))
        {
            try
            {
                var manifest = ModelManifest.Load(settings.ChatModelDir);
                manifest.Verify(settings.ChatModelDir);
                var gguf = manifest.ModelFile.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
                    ? manifest.ModelFile
                    : throw new ModelVerificationException("the chat manifest's model_file is not a .gguf file");
                var maxContext = manifest.MaxTokens > 0 ? manifest.MaxTokens : ChatHandler.DefaultContextTokens;
                handlers.Add(new ChatHandler(new LlamaRuntime(Path.Combine(settings.ChatModelDir, gguf), manifest.Name, maxContext)));
            }
            catch (ModelVerificationException ex)
            {
                LogMissing(logger, "small_chat", $"chat model in {settings.ChatModelDir} REFUSED: {ex.Message}");
            }
        }
        else
        {
            LogMissing(logger, "small_chat", "no GGUF model (--chat-model-dir) and no --chat-openai-url");
        }

        return handlers;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Workload} not advertised: {Reason}")]
    private static partial void LogMissing(ILogger logger, string workload, string reason);
}

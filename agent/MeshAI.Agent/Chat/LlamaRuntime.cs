using System.Runtime.CompilerServices;
using LLama;
using LLama.Common;
using LLama.Sampling;

namespace MeshAI.Agent.Chat;

/// <summary>llama.cpp through LLamaSharp (CPU backend): loads a verified GGUF once, streams tokens per request.</summary>
public sealed class LlamaRuntime : IChatRuntime
{
    private readonly string _modelPath;
    private readonly int _maxContext;
    private readonly Lazy<LLamaWeights> _weights;

    /// <summary>Creates the runtime; the weights load on first use (inside the sandbox worker).</summary>
    public LlamaRuntime(string modelPath, string modelName, int maxContext)
    {
        _modelPath = modelPath;
        _maxContext = maxContext;
        ModelName = modelName;
        _weights = new Lazy<LLamaWeights>(() => LLamaWeights.LoadFromFile(Parameters(_maxContext)));
    }

    /// <inheritdoc />
    public string ModelName { get; }

    /// <inheritdoc />
    public async IAsyncEnumerable<string> StreamAsync(ChatRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var weights = _weights.Value;
        var parameters = Parameters(Math.Min(request.ContextTokens, _maxContext));
        var executor = new StatelessExecutor(weights, parameters);
        var inference = new InferenceParams
        {
            MaxTokens = request.MaxTokens,
            AntiPrompts = [.. request.Stop, "\nUser:"],
            // A fixed seed would make every answer the same at any temperature: only an explicit seed repeats one.
            SamplingPipeline = new DefaultSamplingPipeline { Temperature = request.Temperature, Seed = request.Seed ?? (uint)System.Security.Cryptography.RandomNumberGenerator.GetInt32(int.MaxValue) },
        };
        await foreach (var piece in executor.InferAsync(ChatPrompt.Format(request.Messages, request.AssistantPrefix), inference, cancellationToken))
        {
            yield return piece;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_weights.IsValueCreated)
        {
            _weights.Value.Dispose();
        }
    }

    private ModelParams Parameters(int contextTokens) => new(_modelPath)
    {
        ContextSize = (uint)Math.Max(64, contextTokens),
        GpuLayerCount = 0,
        Threads = Math.Max(1, Environment.ProcessorCount / 2),
    };
}

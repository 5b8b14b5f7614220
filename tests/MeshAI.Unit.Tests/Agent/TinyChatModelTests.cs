using MeshAI.Agent.Chat;
using MeshAI.Agent.Embeddings;
using MeshAI.Agent.Workloads;
using MeshAI.Contracts.Job.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

/// <summary>
/// The real LLamaSharp 0.30 / llama.cpp CPU path on the generated tiny llama GGUF (random weights: the text is word
/// salad, the pipeline is real: GGUF parsing, SPM tokenizer, decode, sampling, streaming detokenisation).
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class TinyChatModelTests
{
    private string _dir = null!;
    private ModelManifest _manifest = null!;

    [OneTimeSetUp]
    public void Generate()
    {
        _dir = Path.Combine(Path.GetTempPath(), "meshai-tiny-chat-" + Guid.NewGuid().ToString("N"));
        _manifest = TinyChatModelGenerator.Generate(_dir);
    }

    [OneTimeTearDown]
    public void Cleanup() => Directory.Delete(_dir, recursive: true);

    private static ChatRequest Request(int maxTokens, string prompt = "Hello there, who are you?") =>
        new([new ChatMessage { Role = ChatRole.User, Content = prompt }], maxTokens, 256, 0.7f, []);

    [Test]
    public void Generated_gguf_is_v3_aligned_and_pinned_by_its_manifest()
    {
        var bytes = File.ReadAllBytes(Path.Combine(_dir, TinyChatModelGenerator.FileName));

        Assert.That(System.Text.Encoding.ASCII.GetString(bytes, 0, 4), Is.EqualTo("GGUF"));
        Assert.That(BitConverter.ToUInt32(bytes, 4), Is.EqualTo(3u));
        Assert.That(BitConverter.ToUInt64(bytes, 8), Is.EqualTo((ulong)(3 + (TinyChatModelGenerator.BlockCount * 9))), "tensor count");
        Assert.That(bytes.Length % GgufWriter.Alignment, Is.Zero);
        Assert.DoesNotThrow(() => _manifest.Verify(_dir));
        Assert.That(TinyChatModelGenerator.Generate(_dir + "-again").Files[0].Sha256, Is.EqualTo(_manifest.Files[0].Sha256), "seeded: same bytes every time");
        Directory.Delete(_dir + "-again", recursive: true);
    }

    [Test]
    public async Task LLamaSharp_loads_the_generated_gguf_and_streams_exactly_max_tokens_pieces()
    {
        using var runtime = new LlamaRuntime(Path.Combine(_dir, TinyChatModelGenerator.FileName), _manifest.Name, _manifest.MaxTokens);
        var pieces = new List<string>();
        await foreach (var piece in runtime.StreamAsync(Request(12), CancellationToken.None))
        {
            pieces.Add(piece);
        }

        TestContext.Out.WriteLine($"{pieces.Count} pieces: {string.Concat(pieces)}");
        Assert.That(pieces, Has.Count.EqualTo(12), "the tiny model never samples </s>, so it runs to max_tokens");
        Assert.That(string.Concat(pieces).Trim(), Is.Not.Empty);
    }

    [Test]
    public async Task Chat_handler_over_the_llama_runtime_emits_one_token_frame_per_piece_and_respects_max_tokens()
    {
        using var handler = new ChatHandler(new LlamaRuntime(Path.Combine(_dir, TinyChatModelGenerator.FileName), _manifest.Name, _manifest.MaxTokens));
        var context = new RecordingContext();
        var input = new WorkloadInput { Chat = new ChatInput { MaxTokens = 8, ContextTokens = 256, Messages = { new ChatMessage { Content = "Say something." } } } };

        var output = (await handler.RunAsync(input, context, CancellationToken.None)).Chat;

        Assert.That(output.CompletionTokens, Is.EqualTo(8));
        Assert.That(output.FinishReason, Is.EqualTo("length"));
        Assert.That(context.Tokens, Is.Not.Empty.And.Count.LessThanOrEqualTo(8));
        Assert.That(string.Concat(context.Tokens), Is.EqualTo(output.Text));
    }

    [Test]
    public async Task Cancelling_mid_stream_stops_the_llama_runtime()
    {
        using var runtime = new LlamaRuntime(Path.Combine(_dir, TinyChatModelGenerator.FileName), _manifest.Name, _manifest.MaxTokens);
        using var cts = new CancellationTokenSource();
        var count = 0;
        Assert.That(async () =>
        {
            await foreach (var _ in runtime.StreamAsync(Request(200), cts.Token))
            {
                if (++count == 3)
                {
                    await cts.CancelAsync();
                }
            }
        }, Throws.InstanceOf<OperationCanceledException>());
        Assert.That(count, Is.LessThan(200));
    }

    private sealed class RecordingContext : IJobContext
    {
        public List<string> Tokens { get; } = [];

        public ValueTask ReportProgressAsync(double fraction, string message, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask LogAsync(LogLevel level, string message, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask EmitTokenAsync(string text, int index, CancellationToken cancellationToken)
        {
            Tokens.Add(text);
            return ValueTask.CompletedTask;
        }
    }
}

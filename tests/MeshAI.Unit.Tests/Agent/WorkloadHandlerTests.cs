using System.Runtime.CompilerServices;
using Google.Protobuf;
using MeshAI.Agent.Audio;
using MeshAI.Agent.Chat;
using MeshAI.Agent.Ocr;
using MeshAI.Agent.Workloads;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace MeshAI.Unit.Tests.Agent;

[Category("Unit")]
public sealed class WorkloadHandlerTests
{
    [Test]
    public async Task Chat_streams_each_piece_as_a_token_and_stops_at_a_stop_sequence()
    {
        using var handler = new ChatHandler(new FixedRuntime(["Hi", " there", ".", " END", " more"]));
        var context = new RecordingContext();
        var input = new WorkloadInput { Chat = new ChatInput { Messages = { new ChatMessage { Role = ChatRole.User, Content = "hello" } }, Stop = { " END" } } };
        var output = (await handler.RunAsync(input, context, CancellationToken.None)).Chat;
        Assert.That(string.Join("|", context.Tokens), Is.EqualTo("Hi| there|."));
        Assert.That(output.Text, Is.EqualTo("Hi there."));
        Assert.That(output.FinishReason, Is.EqualTo("stop"));
    }

    [Test]
    public async Task Chat_max_tokens_cuts_the_stream()
    {
        using var handler = new ChatHandler(new FixedRuntime(["a", "b", "c", "d"]));
        var context = new RecordingContext();
        var input = new WorkloadInput { Chat = new ChatInput { MaxTokens = 2, Messages = { new ChatMessage { Content = "x" } } } };
        var output = (await handler.RunAsync(input, context, CancellationToken.None)).Chat;
        Assert.That(output.Text, Is.EqualTo("ab"));
        Assert.That(output.FinishReason, Is.EqualTo("length"));
    }

    [Test]
    public void Chat_refuses_a_prompt_that_does_not_fit_the_context()
    {
        using var handler = new ChatHandler(new FixedRuntime(["a"]));
        var input = new WorkloadInput { Chat = new ChatInput { ContextTokens = 100, MaxTokens = 50, Messages = { new ChatMessage { Content = new string('x', 400) } } } };
        Assert.ThrowsAsync<InvalidWorkloadInputException>(() => handler.RunAsync(input, new RecordingContext(), CancellationToken.None));
    }

    [Test]
    public void OpenAi_sse_delta_content_is_read_and_other_events_skipped()
    {
        Assert.That(OpenAiCompatibleRuntime.DeltaContent("""{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"""), Is.EqualTo("Hel"));
        Assert.That(OpenAiCompatibleRuntime.DeltaContent("""{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"""), Is.Null);
        Assert.That(OpenAiCompatibleRuntime.DeltaContent("not json"), Is.Null);
    }

    [Test]
    public void Tesseract_tsv_words_boxes_and_confidence_are_parsed()
    {
        const string tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n" +
                           "4\t1\t1\t1\t1\t0\t10\t10\t200\t20\t-1\t\n" +
                           "5\t1\t1\t1\t1\t1\t10\t10\t50\t20\t96.5\tHello\n" +
                           "5\t1\t1\t1\t1\t2\t70\t10\t60\t20\t90.5\tworld\n";
        var output = TesseractOcr.ParseTsv(tsv);
        Assert.That(output.Text, Is.EqualTo("Hello world"));
        Assert.That(output.Words, Has.Count.EqualTo(2));
        Assert.That(output.Words[1].Left, Is.EqualTo(70));
        Assert.That(output.MeanConfidence, Is.EqualTo(0.935f).Within(1e-4));
    }

    [Test]
    public void Deskew_finds_the_rotation_of_rotated_lines()
    {
        using var image = new Image<Rgba32>(600, 400, Color.White);
        for (var line = 0; line < 6; line++)
        {
            for (var x = 50; x < 550; x += 3)
            {
                for (var y = 0; y < 6; y++)
                {
                    image[x, 50 + line * 50 + y] = Color.Black;
                }
            }
        }

        Assert.That(ImagePreprocessor.EstimateSkewDegrees(image), Is.EqualTo(0).Within(0.3));
        image.Mutate(x => x.Rotate(4).BackgroundColor(Color.White));
        var skew = ImagePreprocessor.EstimateSkewDegrees(image);
        Assert.That(Math.Abs(skew), Is.EqualTo(4).Within(0.6));
        image.Mutate(x => x.Rotate((float)-skew).BackgroundColor(Color.White));
        Assert.That(ImagePreprocessor.EstimateSkewDegrees(image), Is.EqualTo(0).Within(0.6), "rotating by minus the estimate levels the lines");
    }

    [Test]
    public void Wav_round_trips_and_resamples_to_16_khz()
    {
        var tone = new float[22050];
        for (var i = 0; i < tone.Length; i++)
        {
            tone[i] = (float)(0.5 * Math.Sin(2 * Math.PI * 440 * i / 22050));
        }

        var wav = WavAudio.WritePcm16(new PcmAudio(tone, 22050));
        var read = WavAudio.Read(wav);
        Assert.That(read.SampleRate, Is.EqualTo(22050));
        Assert.That(read.DurationMs, Is.EqualTo(1000));
        var resampled = WavAudio.Resample(read, 16000);
        Assert.That(resampled.Samples, Has.Length.EqualTo(16000).Within(1));
        var rms = Math.Sqrt(resampled.Samples.Skip(100).Take(15000).Average(s => (double)s * s));
        Assert.That(rms, Is.EqualTo(0.5 / Math.Sqrt(2)).Within(0.02), "a 440 Hz tone keeps its level through the low-pass");
    }

    [Test]
    public void Transcribe_refuses_a_blob_that_is_not_wav()
    {
        var handler = new TranscribeHandler("pocketsphinx_continuous");
        var context = new RecordingContext { BlobList = [new Blob { Name = "audio", InlineData = ByteString.CopyFromUtf8("not a wav") }] };
        var input = new WorkloadInput { Transcribe = new TranscribeInput { AudioBlob = "audio" } };
        Assert.ThrowsAsync<InvalidWorkloadInputException>(() => handler.RunAsync(input, context, CancellationToken.None));
    }

    [Test]
    public void Ocr_refuses_a_missing_image_blob()
    {
        var handler = new OcrHandler("tesseract");
        var input = new WorkloadInput { Ocr = new OcrInput { ImageBlob = "image" } };
        Assert.ThrowsAsync<InvalidWorkloadInputException>(() => handler.RunAsync(input, new RecordingContext(), CancellationToken.None));
    }

    private sealed class FixedRuntime(IReadOnlyList<string> pieces) : IChatRuntime
    {
        public string ModelName => "fixed";

        public async IAsyncEnumerable<string> StreamAsync(ChatRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            foreach (var piece in pieces)
            {
                await Task.Yield();
                yield return piece;
            }
        }

        public void Dispose()
        {
        }
    }

    private sealed class RecordingContext : IJobContext
    {
        public List<string> Tokens { get; } = [];

        public List<Blob> BlobList { get; init; } = [];

        public IReadOnlyList<Blob> Blobs => BlobList;

        public ValueTask ReportProgressAsync(double fraction, string message, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask LogAsync(LogLevel level, string message, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask EmitTokenAsync(string text, int index, CancellationToken cancellationToken)
        {
            Tokens.Add(text);
            return ValueTask.CompletedTask;
        }
    }
}

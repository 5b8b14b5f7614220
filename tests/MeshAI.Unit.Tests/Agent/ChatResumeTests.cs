#pragma warning disable CA1861 // expected values read best inline
using System.Runtime.CompilerServices;
using Google.Protobuf;
using MeshAI.Agent.Chat;
using MeshAI.Agent.Jobs;
using MeshAI.Agent.State;
using MeshAI.Agent.Workloads;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Ledger;
using MeshAI.Unit.Tests.Security;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

/// <summary>The pure parts of chat resume (docs/chat-resume.md): the handler's continuation, the sealed resume tokens, observed heartbeats.</summary>
[TestFixture]
[Category("Unit")]
public sealed class ChatResumeTests
{
    [Test]
    public async Task A_resumed_chat_continues_after_the_prefix_numbers_on_and_counts_the_prefix_against_max_tokens()
    {
        var runtime = new PrefixRecordingRuntime(["c", "d", "e", "f"]);
        using var handler = new ChatHandler(runtime);
        var context = new IndexRecordingContext();
        var input = new WorkloadInput
        {
            Chat = new ChatInput { MaxTokens = 5, Messages = { new ChatMessage { Content = "x" } }, Resume = new ChatResume { AssistantText = "ab", NextIndex = 2 } },
        };
        var output = (await handler.RunAsync(input, context, CancellationToken.None)).Chat;

        Assert.Multiple(() =>
        {
            Assert.That(runtime.Prefix, Is.EqualTo("ab"), "the runtime continues after the delivered text");
            Assert.That(runtime.MaxTokens, Is.EqualTo(3), "only what is left of max_tokens");
            Assert.That(context.Tokens, Is.EqualTo(new[] { (2, "c"), (3, "d"), (4, "e") }), "numbering continues at next_index");
            Assert.That(output.Text, Is.EqualTo("abcde"), "the output is the whole answer");
            Assert.That(output.CompletionTokens, Is.EqualTo(5));
            Assert.That(output.FinishReason, Is.EqualTo("length"));
        });
    }

    [Test]
    public async Task A_stop_sequence_inside_the_resumed_prefix_does_not_end_the_continuation()
    {
        using var handler = new ChatHandler(new PrefixRecordingRuntime([" more", " END", " after"]));
        var context = new IndexRecordingContext();
        var input = new WorkloadInput
        {
            Chat = new ChatInput { Messages = { new ChatMessage { Content = "x" } }, Stop = { " END" }, Resume = new ChatResume { AssistantText = "before END", NextIndex = 2 } },
        };
        var output = (await handler.RunAsync(input, context, CancellationToken.None)).Chat;

        Assert.That(output.Text, Is.EqualTo("before END more"));
        Assert.That(output.FinishReason, Is.EqualTo("stop"));
        Assert.That(context.Tokens, Is.EqualTo(new[] { (2, " more") }));
    }

    [Test]
    public void A_resume_over_its_bounds_is_invalid_input()
    {
        using var handler = new ChatHandler(new PrefixRecordingRuntime(["a"]));
        var input = new WorkloadInput { Chat = new ChatInput { Messages = { new ChatMessage { Content = "x" } }, Resume = new ChatResume { NextIndex = -1 } } };
        Assert.ThrowsAsync<InvalidWorkloadInputException>(() => handler.RunAsync(input, new IndexRecordingContext(), CancellationToken.None));
    }

    [Test]
    public void Tokens_sealed_by_one_recipient_are_opened_by_another_and_nobody_else()
    {
        var first = AgentKeys.Generate();
        var second = AgentKeys.Generate();
        var outsider = AgentKeys.Generate();
        var submitter = EncryptionKeyPair.Generate();
        var envelope = ChatEnvelope();
        PayloadCrypto.EncryptEnvelope(envelope, [new("dev_a", first.EncryptionPublicKey), new("dev_b", second.EncryptionPublicKey)], submitter.PublicKey);

        var stream = new EndToEndPayload(first, "dev_a").TokenStream(envelope, "job_1");
        var frames = new[] { "Once", " upon", " a time" }.Select((t, i) => stream.Frame(1, t, i)).ToList();
        var resume = new StreamResume { NextIndex = 3, Tokens = { frames.Select(f => new ResumeToken { Index = f.Index, Text = f.ResumeText, Nonce = f.ResumeNonce }) } };

        Assert.Multiple(() =>
        {
            Assert.That(frames.All(f => !f.ResumeText.IsEmpty && !f.ResumeNonce.IsEmpty), Is.True, "the resume copy is sealed");
            Assert.That(PayloadCryptoTests.Contains(resume.ToByteArray(), "upon"u8), Is.False, "relay and control see ciphertext only in a resume");
            Assert.That(frames.All(f => !f.Nonce.IsEmpty && !PayloadCryptoTests.Contains(f.Token.ToByteArray(), "upon"u8)), Is.True, "the submitter's copy is sealed to the submitter");
            Assert.That(System.Text.Encoding.UTF8.GetString(PayloadCrypto.OpenFromDevice(frames[1].Token.Span, frames[1].Nonce.Span, submitter, "job_1")), Is.EqualTo(" upon"), "the submitter opens its copy");
            Assert.That(new EndToEndPayload(second, "dev_b").TokenStream(envelope, "job_1").Open(resume), Is.EqualTo(new ChatResume { AssistantText = "Once upon a time", NextIndex = 3 }));
            Assert.Throws<PayloadCryptoException>(() => new EndToEndPayload(outsider, "dev_c").TokenStream(envelope, "job_1"), "a device the key was not wrapped for");
            Assert.Throws<PayloadCryptoException>(() => new EndToEndPayload(second, "dev_b").TokenStream(envelope, "job_2").Open(resume), "bound to the job");
        });

        var swapped = resume.Clone();
        (swapped.Tokens[0].Text, swapped.Tokens[1].Text, swapped.Tokens[0].Nonce, swapped.Tokens[1].Nonce) = (swapped.Tokens[1].Text, swapped.Tokens[0].Text, swapped.Tokens[1].Nonce, swapped.Tokens[0].Nonce);
        Assert.Throws<PayloadCryptoException>(() => new EndToEndPayload(second, "dev_b").TokenStream(envelope, "job_1").Open(swapped), "reordered tokens do not authenticate");
        var dropped = resume.Clone();
        dropped.Tokens.RemoveAt(1);
        Assert.Throws<PayloadCryptoException>(() => new EndToEndPayload(second, "dev_b").TokenStream(envelope, "job_1").Open(dropped), "a missing token");
    }

    [Test]
    public void A_plaintext_resume_is_the_delivered_text_in_order()
    {
        var stream = new EndToEndPayload(AgentKeys.Generate(), "dev_a").TokenStream(ChatEnvelope(), "job_1");
        var frame = stream.Frame(2, "hé", 0);
        Assert.That(frame.ResumeText.IsEmpty && frame.Nonce.IsEmpty, Is.True, "plaintext jobs: control resumes from the token itself");
        var resume = new StreamResume { NextIndex = 2, Tokens = { new ResumeToken { Index = 0, Text = frame.Token }, new ResumeToken { Index = 1, Text = ByteString.CopyFromUtf8("llo") } } };
        Assert.That(stream.Open(resume).AssistantText, Is.EqualTo("héllo"));
        resume.NextIndex = 3;
        Assert.Throws<PayloadCryptoException>(() => stream.Open(resume), "next_index must match the tokens");
    }

    [Test]
    public void Observed_heartbeats_count_the_intervals_in_which_tokens_arrived()
    {
        Assert.Multiple(() =>
        {
            Assert.That(MintPolicy.ObservedHeartbeats(0, [100, 1_100, 2_100, 3_100], 1_000), Is.EqualTo(3), "a steady stream: floor(runtime / interval)");
            Assert.That(MintPolicy.ObservedHeartbeats(0, [100, 3_100], 1_000), Is.EqualTo(1), "a stall misses its beats");
            Assert.That(MintPolicy.ObservedHeartbeats(0, [], 1_000), Is.Zero);
        });
    }

    private static JobEnvelope ChatEnvelope() => new()
    {
        NetworkId = "net_a",
        WorkloadId = WorkloadClass.SmallChat,
        InputManifest = new InputManifest { Payload = new WorkloadInput { Chat = new ChatInput { Messages = { new ChatMessage { Content = "story" } } } }.ToByteString() },
    };

    private sealed class PrefixRecordingRuntime(IReadOnlyList<string> pieces) : IChatRuntime
    {
        public string ModelName => "prefix";

        public string? Prefix { get; private set; }

        public int MaxTokens { get; private set; }

        public async IAsyncEnumerable<string> StreamAsync(ChatRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            Prefix = request.AssistantPrefix;
            MaxTokens = request.MaxTokens;
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

    private sealed class IndexRecordingContext : IJobContext
    {
        public List<(int, string)> Tokens { get; } = [];

        public IReadOnlyList<Blob> Blobs => [];

        public ValueTask ReportProgressAsync(double fraction, string message, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask LogAsync(LogLevel level, string message, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask EmitTokenAsync(string text, int index, CancellationToken cancellationToken)
        {
            Tokens.Add((index, text));
            return ValueTask.CompletedTask;
        }
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Agent.Embeddings;
using MeshAI.Agent.Jobs;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Model.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

/// <summary>
/// Browser devices run the device side in TypeScript (@meshai/client device.ts, used by the web contributor page). This
/// holds the BUILT package (driven through clients/typescript/scripts/device-interop.mjs) to the native agent's own code:
/// every offer — valid, forged, misaddressed, expired, tampered, replayed — gets the same verdict, reason and detail from
/// the page's verifier as from <see cref="OfferVerifier"/>; signed model manifests verify alike; the signed proof messages
/// are byte-identical to <see cref="ProofMessages"/> (#13).
/// </summary>
[TestFixture]
[Category("Unit")]
public sealed class DeviceInteropTests
{
    private const string DeviceId = "dev_phone";
    private const string NetworkId = "net_home";
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    // Static: the offer cases (TestCaseSource) re-sign tickets with it.
    private static readonly SigningKeyPair Control = SigningKeyPair.Generate();
    private static readonly SigningKeyPair Submitter = SigningKeyPair.Generate();
    private DeviceInterop _node = null!;

    /// <summary>One node process answers every request of the fixture.</summary>
    [OneTimeSetUp]
    public void Start() => _node = DeviceInterop.Start();

    /// <summary>Ends the node process.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_node is not null)
        {
            await _node.DisposeAsync();
        }
    }

    private static IEnumerable<TestCaseData> Offers()
    {
        yield return Case("a valid offer", _ => { });
        yield return Case("no ticket", o => o.Ticket = null);
        yield return Case("a flipped signature byte", o => o.Ticket.Signature = Flip(o.Ticket.Signature, 5));
        yield return Case("a flipped ticket byte", o => o.Ticket.Details = Flip(o.Ticket.Details, 3));
        yield return Case("an unknown signing key id", o => o.Ticket.SigningKeyId = "key_unknown");
        yield return Case("a flipped envelope byte", o => o.Envelope = Flip(o.Envelope, o.Envelope.Length - 1));
        yield return Case("another device", o => Resign(o, d => d.DeviceId = "dev_other"));
        yield return Case("another network", o => Resign(o, d => d.NetworkId = "net_other"));
        yield return Case("an expired ticket", o => Resign(o, d => d.ExpireTime = Timestamp.FromDateTimeOffset(Now.AddSeconds(-1))));
        yield return Case("no expiry", o => Resign(o, d => d.ExpireTime = null));
        yield return Case("a ticket for another job id than the envelope", o => Resign(o, d => d.JobId = "job_other"));
        yield return Case("an unbound chunk", o => o.Chunk = new ChunkPayload { ChunkId = "c1", Payload = ByteString.CopyFromUtf8("x") });
        yield return Case("a bound chunk", o =>
        {
            o.Chunk = new ChunkPayload { ChunkId = "c1", ChunkIndex = 1, ChunkCount = 2, Payload = ByteString.CopyFromUtf8("chunk") };
            Resign(o, d => d.ChunkSha256 = Secrets.Sha256Hex(o.Chunk.ToByteArray()));
        });
        yield return Case("a chunk that differs from the bound hash", o =>
        {
            o.Chunk = new ChunkPayload { ChunkId = "c1", Payload = ByteString.CopyFromUtf8("chunk") };
            Resign(o, d => d.ChunkSha256 = Secrets.Sha256Hex(ByteString.CopyFromUtf8("other").Span));
        });
        yield return Case("a valid submitter signature", o => WithEnvelope(o, e => EnvelopeSignatures.Sign(e, Submitter)));
        yield return Case("a submitter signature over other content", o => WithEnvelope(o, e =>
        {
            EnvelopeSignatures.Sign(e, Submitter);
            e.DataSensitivityTag = DataSensitivityTag.Sensitive;
        }));
        yield return Case("a signed timeout of 0 that control filled in", o => WithEnvelope(o, e =>
        {
            e.TimeoutMs = 0;
            EnvelopeSignatures.Sign(e, Submitter);
            e.TimeoutMs = 30_000;
        }));
        yield return Case("a malformed envelope", o =>
        {
            o.Envelope = ByteString.CopyFrom(0xFF, 0xFF, 0xFF);
            Resign(o, d => d.EnvelopeSha256 = Secrets.Sha256Hex(o.Envelope.Span));
        });
    }

    [TestCaseSource(nameof(Offers))]
    public async Task The_page_decides_every_offer_exactly_like_the_native_agent(string what, Action<JobOffer> change)
    {
        var offer = NewOffer("job_" + what.Replace(' ', '_'));
        change(offer);

        var native = NativeVerifier().Check(offer);
        var page = await VerifyInPageAsync("case:" + what, offer);

        Assert.Multiple(() =>
        {
            Assert.That(page.Accepted, Is.EqualTo(native.Accepted), $"{what}: accepted (native detail: '{native.Detail}')");
            Assert.That(page.Reason, Is.EqualTo(native.Reason), $"{what}: reason");
            Assert.That(page.Detail, Is.EqualTo(native.Detail), $"{what}: detail");
        });
    }

    [Test]
    public async Task A_replayed_offer_is_refused_by_the_page_as_by_the_agent()
    {
        var offer = NewOffer("job_replayed");
        var native = NativeVerifier();

        var first = (native.Check(offer), await VerifyInPageAsync("replay", offer));
        var second = (native.Check(offer), await VerifyInPageAsync("replay", offer));

        Assert.Multiple(() =>
        {
            Assert.That(first.Item1.Accepted && first.Item2.Accepted, Is.True, "the first delivery is accepted by both");
            Assert.That(second.Item1.Reason, Is.EqualTo(DeclineReason.Replayed));
            Assert.That(second.Item2.Reason, Is.EqualTo(DeclineReason.Replayed));
            Assert.That(second.Item2.Detail, Is.EqualTo(second.Item1.Detail));
        });
    }

    [Test]
    public async Task Signed_model_manifests_verify_in_the_page_as_in_csharp()
    {
        var details = new ModelManifestDetails { NetworkId = NetworkId, Name = "all-minilm-l6-v2", Version = "1", WorkloadClass = WorkloadClass.Embeddings };
        details.Files.Add(new MeshAI.Contracts.Model.V1.ModelFile { Path = "model.onnx", Sha256 = new string('a', 64), SizeBytes = 10, Source = "https://server/models/all-minilm-l6-v2/model.onnx" });
        var manifest = ModelManifests.Sign(details, Control, "mdl_1");
        var forged = manifest.Clone();
        forged.Details = Flip(forged.Details, 4);

        foreach (var (what, candidate, network) in new[] { ("signed", manifest, NetworkId), ("forged", forged, NetworkId), ("other network", manifest, "net_other") })
        {
            var csharp = ModelManifests.Verify(candidate, Keys(), network, out var reason);
            var answer = await _node.AskAsync(new JsonObject
            {
                ["op"] = "verifyManifest", ["manifest"] = B64(candidate.ToByteArray()), ["controlKeys"] = KeysJson(), ["networkId"] = network,
            });
            Assert.Multiple(() =>
            {
                Assert.That(answer["valid"]!.GetValue<bool>(), Is.EqualTo(csharp is not null), what);
                Assert.That(answer["reason"]!.GetValue<string>(), Is.EqualTo(reason), what);
            });
        }
    }

    [Test]
    public async Task The_messages_a_page_signs_are_the_bytes_the_server_verifies()
    {
        var signing = SigningKeyPair.Generate();
        var encryption = EncryptionKeyPair.Generate();
        var nonce = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        const long timestamp = 1_764_590_400_123;
        var answer = await _node.AskAsync(new JsonObject
        {
            ["op"] = "messages", ["joinToken"] = "jt_secret_ü", ["installationId"] = "web-install-1", ["timestampMs"] = timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["signingPublicKey"] = B64(signing.PublicKey), ["encryptionPublicKey"] = B64(encryption.PublicKey), ["nonce"] = B64(nonce), ["relayId"] = "relay-local",
            ["serial"] = "0a1b2c", ["networkId"] = NetworkId,
        });

        Assert.Multiple(() =>
        {
            Assert.That(Bytes(answer, "register"), Is.EqualTo(ProofMessages.Register("jt_secret_ü", "web-install-1", timestamp, signing.PublicKey, encryption.PublicKey)));
            Assert.That(Bytes(answer, "relay"), Is.EqualTo(ProofMessages.RelayChallenge(nonce, "relay-local")));
            Assert.That(Bytes(answer, "fetch"), Is.EqualTo(ModelManifests.FetchProof("0a1b2c", NetworkId, timestamp)));
        });
    }

    private static TestCaseData Case(string what, Action<JobOffer> change) => new TestCaseData(what, change) { TestName = "Offer with " + what };

    private static OfferVerifier NativeVerifier() => new(_ => Keys(), DeviceId, NetworkId, new FixedTime(Now));

    private static Dictionary<string, byte[]> Keys() => new() { [SigningKeyPair.KeyId(Control.PublicKey)] = Control.PublicKey };

    private static JsonObject KeysJson() => new() { [SigningKeyPair.KeyId(Control.PublicKey)] = B64(Control.PublicKey) };

    private static JobOffer NewOffer(string jobId)
    {
        var envelope = new JobEnvelope
        {
            JobId = jobId,
            NetworkId = NetworkId,
            WorkloadId = WorkloadClass.Embeddings,
            TimeoutMs = 30_000,
            InputManifest = new InputManifest { Payload = new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { "a cat sat on the mat" } } }.ToByteString() },
        };
        var bytes = envelope.ToByteString();
        var details = new PlacementTicketDetails
        {
            JobId = jobId, Attempt = 1, DeviceId = DeviceId, NetworkId = NetworkId, EnvelopeSha256 = Secrets.Sha256Hex(bytes.Span),
            ExpireTime = Timestamp.FromDateTimeOffset(Now.AddMinutes(1)),
        };
        return new JobOffer { Ticket = PlacementTickets.Sign(details, Control), Envelope = bytes };
    }

    private static void Resign(JobOffer offer, Action<PlacementTicketDetails> change)
    {
        var details = PlacementTicketDetails.Parser.ParseFrom(offer.Ticket.Details);
        change(details);
        offer.Ticket = PlacementTickets.Sign(details, Control);
    }

    private static void WithEnvelope(JobOffer offer, Action<JobEnvelope> change)
    {
        var envelope = JobEnvelope.Parser.ParseFrom(offer.Envelope);
        change(envelope);
        offer.Envelope = envelope.ToByteString();
        Resign(offer, d => d.EnvelopeSha256 = Secrets.Sha256Hex(offer.Envelope.Span));
    }

    private async Task<(bool Accepted, DeclineReason Reason, string Detail)> VerifyInPageAsync(string verifier, JobOffer offer)
    {
        var answer = await _node.AskAsync(new JsonObject
        {
            ["op"] = "verifyOffer", ["verifier"] = verifier, ["offer"] = B64(offer.ToByteArray()), ["controlKeys"] = KeysJson(),
            ["deviceId"] = DeviceId, ["networkId"] = NetworkId, ["nowMs"] = Now.ToUnixTimeMilliseconds(),
        });
        return (answer["accepted"]!.GetValue<bool>(), (DeclineReason)answer["reason"]!.GetValue<int>(), answer["detail"]!.GetValue<string>());
    }

    private static ByteString Flip(ByteString bytes, int index)
    {
        var copy = bytes.ToByteArray();
        copy[index] ^= 0x01;
        return ByteString.CopyFrom(copy);
    }

    private static string B64(byte[] bytes) => Convert.ToBase64String(bytes);

    private static byte[] Bytes(JsonObject answer, string name) =>
        answer[name] is { } value ? Convert.FromBase64String(value.GetValue<string>()) : throw new AssertionException($"no '{name}' in {answer.ToJsonString(new JsonSerializerOptions())}");

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}

/// <summary>
/// The page's tokenizer (@meshai/client WordPieceTokenizer) against the agent's (<see cref="EmbeddingModel.Tokenize"/>,
/// Microsoft.ML.Tokenizers' BertTokenizer) on the real all-MiniLM-L6-v2 vocabulary, over texts chosen to hit every rule:
/// case, accents, CJK, scripts with combining marks, symbols and emoji (dropped), control characters, special tokens,
/// over-long words and truncation at the model's 256 tokens. Equal ids are what makes the page's vectors equal the agent's.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class TokenizerInteropTests
{
    private static readonly string[] Texts =
    [
        "A cat sat on the mat.", "Hello, World! How's it going?", "naïve café résumé Ünïcödé ÀÉÎÕÜ", "hello\nworld\ttab\r\nend",
        "  multiple   spaces\u00a0and\u2003em spaces  ", "$5.00 + 10% = ? € £ ¥ © ™", "e-mail: first.last@example.com, url https://x.y/z?q=1",
        "emoji 😀👍🏽 test ❤️", "中文字符测试，句号。", "日本語のテキストとカタカナ", "한국어 텍스트 입니다", "हिन्दी भाषा में लिखा गया", "العربية لغة جميلة",
        "Ελληνικά κείμενα", "Русский текст с Ёлкой", "[CLS] special [SEP] tokens [mask] and [UNK]", "ZWJ\u200djoined ZWNJ\u200cword", "İstanbul ǅemal ﬁne",
        "snake_case_word CamelCaseWord", "numbers 1234567890 ٣٤٥ ①②", "𝐁𝐨𝐥𝐝 math 𝟙𝟚", new string('x', 150) + " after a long word", "", "   ", "\u0000nul\ufffdrep",
        "full-width ＡＢＣ１２３", "combining e\u0301 vs é", "Ⅻ roman ½ fraction", "tab\u0009and\u000bvertical\u000cfeed", "quotes “curly” ‘single’ «guillemets»",
        string.Join(' ', Enumerable.Range(0, 300).Select(i => "word" + i)),
        string.Join(' ', Enumerable.Repeat("antidisestablishmentarianism", 60)),
    ];

    private EmbeddingModel _model = null!;
    private DeviceInterop _node = null!;
    private string _vocab = null!;

    /// <summary>Installs (or re-verifies) the real model and loads it the way the agent does.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        var root = await ProvisionedModels.EnsureAsync();
        var directory = Path.Combine(root, ProvisionedModels.MiniLm);
        _model = EmbeddingModel.Load(directory);
        _vocab = Path.Combine(directory, _model.Manifest.VocabFile);
        _node = DeviceInterop.Start();
    }

    /// <summary>Releases the model and the node process.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        _model?.Dispose();
        if (_node is not null)
        {
            await _node.DisposeAsync();
        }
    }

    [Test]
    public async Task The_page_tokenizes_every_text_into_the_ids_the_agent_feeds_the_model()
    {
        var answer = await _node.AskAsync(new JsonObject
        {
            ["op"] = "tokenize", ["vocabPath"] = _vocab, ["maxTokens"] = _model.MaxTokens, ["texts"] = new JsonArray(Texts.Select(t => (JsonNode)t).ToArray()),
        });
        var pageIds = answer["ids"]!.AsArray();

        Assert.Multiple(() =>
        {
            for (var i = 0; i < Texts.Length; i++)
            {
                var agent = _model.Tokenize(Texts[i]);
                var page = pageIds[i]!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
                Assert.That(page, Is.EqualTo(agent), $"text {i}: {Texts[i][..Math.Min(60, Texts[i].Length)]}");
            }
        });
        // Truncation drops whole words, so a text longer than the limit stops within one word of it: both sides truncated.
        Assert.That(_model.Tokenize(Texts[^2]), Has.Count.InRange(_model.MaxTokens - 4, _model.MaxTokens), "the long text reaches the model's limit, so truncation is compared");
    }
}

/// <summary>The node process running clients/typescript/scripts/device-interop.mjs over the built package.</summary>
internal sealed class DeviceInterop : IAsyncDisposable
{
    private static readonly string ClientDirectory = RepoPaths.Combine("clients", "typescript");
    private readonly ProcessRunner _node;

    private DeviceInterop(ProcessRunner node) => _node = node;

    public static DeviceInterop Start()
    {
        if (!File.Exists(Path.Combine(ClientDirectory, "dist", "device.js")))
        {
            Assert.Fail($"the TypeScript client is not built: run `npm ci && npm run build` in {ClientDirectory} (./test.sh does)");
        }

        return new DeviceInterop(ProcessRunner.Start(new ProcessRunnerOptions
        {
            FileName = "node",
            Arguments = [Path.Combine(ClientDirectory, "scripts", "device-interop.mjs")],
            WorkingDirectory = ClientDirectory,
            RedirectStandardInput = true,
            Name = "device-interop",
        }));
    }

    public async Task<JsonObject> AskAsync(JsonObject request)
    {
        var from = _node.LineCount;
        await _node.StandardInput.WriteLineAsync(request.ToJsonString());
        await _node.StandardInput.FlushAsync();
        var line = await _node.WaitForLineAsync(l => l.StartsWith('{'), TimeSpan.FromSeconds(60), from);
        var answer = JsonNode.Parse(line.Text)!.AsObject();
        if (answer["error"] is { } error)
        {
            Assert.Fail($"{request["op"]}: {error}\n{_node.Output}");
        }

        return answer;
    }

    public ValueTask DisposeAsync() => _node.DisposeAsync();
}

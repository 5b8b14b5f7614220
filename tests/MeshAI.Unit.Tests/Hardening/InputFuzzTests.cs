using System.Buffers;
using System.Globalization;
using CsCheck;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control;
using MeshAI.Control.Jobs;
using MeshAI.Control.Rpc;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Hardening;

/// <summary>
/// Fuzzing the two decoders untrusted bytes reach first: the relay frame decoder (agent → relay frames: protobuf decode
/// through <see cref="RequestDecoding"/>, then the <see cref="RequestBounds"/> check the relay stream applies per frame)
/// and the job envelope validator (<see cref="JobEnvelopeValidator"/>, after the same bounds). Inputs are the seed corpus in
/// tests/fuzz-corpus (real frames and envelopes of every kind, plus every input that ever failed) mutated byte-wise
/// (flips, truncation, insertion, splicing, length bytes set to extremes), and structure-aware random messages. The
/// properties: nothing but a specific INVALID_ARGUMENT ever escapes, a frame that passes re-encodes to itself, and an
/// envelope that passes has a timeout in range. Default ring: a few thousand cases in about a second; set
/// MESHAI_FUZZ_SECONDS to run each property that long (e.g. 600 for a nightly run).
/// </summary>
[TestFixture]
[Category("Unit")]
public sealed class InputFuzzTests
{
    private static readonly RequestBounds Bounds = RequestBounds.Default;
    private static readonly ControlLimits Limits = new();
    private static readonly string[] BoundReasons =
        [ErrorReasons.FieldTooLong, ErrorReasons.TooManyItems, ErrorReasons.UnknownEnumValue, ErrorReasons.InvalidCharacters, ErrorReasons.ValueOutOfRange];

    private static int? FuzzSeconds =>
        int.TryParse(Environment.GetEnvironmentVariable("MESHAI_FUZZ_SECONDS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : null;

    private static void Run<T>(Gen<T> gen, Action<T> property, long iterations) =>
        gen.Sample(property, writeLine: TestContext.Out.WriteLine, iter: FuzzSeconds is null ? iterations : -1, time: FuzzSeconds ?? -1, threads: 1);

    // ---- the relay frame decoder ----

    /// <summary>Decodes one agent frame the way the relay does; returns it when it passes the bounds, null when refused as it should be.</summary>
    private static ConnectRequest? RelayFrameProperty(byte[] bytes)
    {
        ConnectRequest frame;
        try
        {
            frame = RequestDecoding.Decode(ConnectRequest.Parser, new ReadOnlySequence<byte>(bytes));
        }
        catch (RpcException e)
        {
            AssertSpecific(e, ErrorReasons.MalformedRequest);
            return null;
        }

        var violations = Bounds.Check(frame);
        AssertPassesAgrees(frame, violations);
        if (violations.Count > 0)
        {
            Assert.That(violations.All(v => BoundReasons.Contains(v.Reason)), Is.True, string.Join(", ", violations.Select(v => v.Reason)));
            AssertSpecific(RequestBounds.ToException(violations), violations[0].Reason);
            return null;
        }

        var again = ConnectRequest.Parser.ParseFrom(frame.ToByteArray());
        Assert.That(again, Is.EqualTo(frame), "a frame that passes re-encodes to itself");
        return frame;
    }

    [Test]
    public void Relay_frame_decoder_refuses_mutated_real_frames_only_with_specific_errors()
    {
        var seeds = Corpus("relay-frames");
        Assert.That(seeds.Count, Is.GreaterThanOrEqualTo(8), "the seed corpus of real frames");
        foreach (var seed in seeds)
        {
            Assert.That(RelayFrameProperty(seed.Bytes), Is.Not.Null, seed.Name + " is a valid frame that passes the bounds (or it belongs in regressions/)");
        }

        Run(Mutated(seeds), bytes => RelayFrameProperty(bytes), 4000);
    }

    [Test]
    public void Relay_frame_decoder_survives_arbitrary_bytes() =>
        Run(Gen.Byte.Array[0, 300], bytes => RelayFrameProperty(bytes), 3000);

    [Test]
    public void Random_structured_frames_are_accepted_exactly_when_every_field_is_within_its_bound() =>
        Run(Frames, frame =>
        {
            var passed = RelayFrameProperty(frame.ToByteArray());
            var violations = Bounds.Check(frame);
            Assert.That(passed is not null, Is.EqualTo(violations.Count == 0));
        }, 2000);

    // ---- the envelope validator ----

    /// <summary>What submit does with envelope bytes: decode, bounds (the interceptor), then the envelope validator.</summary>
    private static void EnvelopeProperty(byte[] bytes)
    {
        JobEnvelope envelope;
        try
        {
            envelope = RequestDecoding.Decode(JobEnvelope.Parser, new ReadOnlySequence<byte>(bytes));
        }
        catch (RpcException e)
        {
            AssertSpecific(e, ErrorReasons.MalformedRequest);
            return;
        }

        var envelopeViolations = Bounds.Check(envelope, "envelope");
        AssertPassesAgrees(envelope, envelopeViolations);
        if (envelopeViolations.Count > 0)
        {
            return; // the request layer refuses it before the validator sees it
        }

        try
        {
            var (input, timeout) = JobEnvelopeValidator.Validate(envelope, Limits, Bounds);
            Assert.That(timeout, Is.InRange(1, Limits.MaxJobTimeoutMs));
            var encrypted = envelope.PayloadEncryption?.Scheme is not (null or PayloadEncryptionScheme.Unspecified or PayloadEncryptionScheme.None);
            Assert.That(input is null, Is.EqualTo(encrypted), "a plaintext envelope that passes has a decoded input");
        }
        catch (RpcException e)
        {
            Assert.That(e.StatusCode, Is.EqualTo(StatusCode.InvalidArgument), e.Status.Detail);
            Assert.That(ErrorReasons.All, Does.Contain(RpcErrors.ReasonOf(e)), e.Status.Detail);
            var violation = e.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations[0];
            Assert.That(violation.Field, Does.StartWith("envelope"));
        }
    }

    [Test]
    public void Envelope_validator_refuses_mutated_real_envelopes_only_with_field_violations()
    {
        var seeds = Corpus("envelopes");
        Assert.That(seeds.Count, Is.GreaterThanOrEqualTo(6), "the seed corpus of envelopes");
        foreach (var seed in seeds)
        {
            var envelope = JobEnvelope.Parser.ParseFrom(seed.Bytes);
            Assert.That(() => JobEnvelopeValidator.Validate(envelope, Limits, Bounds), Throws.Nothing, seed.Name + " is a valid envelope (or it belongs in regressions/)");
        }

        Run(Mutated(seeds), EnvelopeProperty, 2500);
    }

    [Test]
    public void Envelope_validator_survives_random_envelopes_and_payloads() =>
        Run(Envelopes, envelope => EnvelopeProperty(envelope.ToByteArray()), 1500);

    [Test]
    public void Every_input_that_once_failed_stays_handled()
    {
        foreach (var (name, bytes) in Corpus("relay-frames/regressions", required: false))
        {
            Assert.That(() => RelayFrameProperty(bytes), Throws.Nothing, name);
        }

        foreach (var (name, bytes) in Corpus("envelopes/regressions", required: false))
        {
            Assert.That(() => EnvelopeProperty(bytes), Throws.Nothing, name);
        }
    }

    // ---- generators ----

    /// <summary>The compiled pass the interceptor runs first (<see cref="RequestBounds.Passes"/>) says yes exactly when the full walk finds nothing.</summary>
    private static void AssertPassesAgrees(IMessage message, IReadOnlyList<BoundViolation> violations) =>
        Assert.That(Bounds.Passes(message), Is.EqualTo(violations.Count == 0),
            violations.Count == 0 ? "the compiled pass refused a message the walk accepts" : $"the compiled pass accepted {violations[0].Field}: {violations[0].Description}");

    private static void AssertSpecific(RpcException e, string reason)
    {
        Assert.That(e.StatusCode, Is.EqualTo(StatusCode.InvalidArgument), e.Status.Detail);
        Assert.That(RpcErrors.ReasonOf(e), Is.EqualTo(reason), e.Status.Detail);
        Assert.That(e.GetRpcStatus()?.GetDetail<BadRequest>()?.FieldViolations, Is.Not.Empty);
    }

    private static List<(string Name, byte[] Bytes)> Corpus(string folder, bool required = true)
    {
        var dir = RepoPaths.Combine("tests", "fuzz-corpus", folder);
        if (!Directory.Exists(dir))
        {
            return required ? throw new DirectoryNotFoundException(dir) : [];
        }

        return Directory.GetFiles(dir, "*.bin").Order(StringComparer.Ordinal).Select(f => (Path.GetFileName(f), File.ReadAllBytes(f))).ToList();
    }

    /// <summary>A seed with 1-4 byte-level mutations (libFuzzer-style: flip, erase, insert, truncate, splice, extreme length byte).</summary>
    private static Gen<byte[]> Mutated(List<(string Name, byte[] Bytes)> seeds) =>
        Gen.Select(Gen.Int[0, seeds.Count - 1], Gen.Int[0, seeds.Count - 1], Gen.Int[1, 4], Gen.UInt, (a, b, count, salt) =>
        {
            var random = new Random((int)salt);
            var bytes = seeds[a].Bytes.ToList();
            for (var i = 0; i < count; i++)
            {
                var at = bytes.Count == 0 ? 0 : random.Next(bytes.Count);
                switch (random.Next(7))
                {
                    case 0 when bytes.Count > 0:
                        bytes[at] ^= (byte)(1 << random.Next(8));
                        break;
                    case 1 when bytes.Count > 0:
                        bytes.RemoveRange(at, Math.Min(random.Next(1, 9), bytes.Count - at));
                        break;
                    case 2:
                        bytes.InsertRange(at, Enumerable.Range(0, random.Next(1, 9)).Select(_ => (byte)random.Next(256)));
                        break;
                    case 3 when bytes.Count > 0:
                        bytes.RemoveRange(at, bytes.Count - at);
                        break;
                    case 4:
                        var other = seeds[b].Bytes;
                        var from = other.Length == 0 ? 0 : random.Next(other.Length);
                        bytes.InsertRange(at, other.Skip(from).Take(random.Next(1, 64)));
                        break;
                    case 5 when bytes.Count > 0:
                        bytes[at] = random.Next(3) switch { 0 => 0xff, 1 => 0x80, _ => 0x00 };
                        break;
                    default:
                        bytes.InsertRange(at, [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
                        break;
                }
            }

            return bytes.ToArray();
        });

    private static readonly Gen<string> Text = Gen.Frequency(
        (6, Gen.String[Gen.Char.AlphaNumeric, 0, 40]),
        (2, Gen.String[Gen.Char, 0, 40]),
        (1, Gen.Int[0, 3000].Select(n => new string('x', n))),
        (1, Gen.OneOf("a\0b", "line\nbreak", "esc\u001b[2J", "tab\there", "\u2028")));

    private static readonly Gen<int> AnyInt = Gen.Frequency((4, Gen.Int[-10, 1000]), (1, Gen.Int), (1, Gen.OneOf(int.MinValue, int.MaxValue, -1, 0)));

    private static readonly Gen<long> AnyLong = Gen.Frequency((4, Gen.Long[-10, 100_000]), (1, Gen.Long), (1, Gen.OneOf(long.MinValue, long.MaxValue, -1L, 0L)));

    private static readonly Gen<double> AnyDouble = Gen.Frequency((4, Gen.Double[-2, 2]), (1, Gen.OneOf(double.NaN, double.PositiveInfinity, double.NegativeInfinity, -0.0, 1e308)));

    private static readonly Gen<ByteString> AnyBytes = Gen.Frequency((5, Gen.Byte.Array[0, 64]), (1, Gen.Int[0, 20_000].Select(n => new byte[n]))).Select(ByteString.CopyFrom);

    private static readonly Gen<CapabilityReport> Capabilities =
        Gen.Select(AnyInt, Text, AnyLong, AnyInt, AnyDouble, Gen.Int[-2, 20].Array[0, 4], Text.Array[0, 3], AnyInt, (cores, os, ram, rtt, idle, workloads, lan, thermal) => new CapabilityReport
        {
            CpuCores = cores, Os = os, RamMb = ram, NetworkRttMs = rtt, IdleScore = idle, ThermalMillicelsius = thermal,
            Workloads = { workloads.Select(w => (WorkloadClass)w) }, LanAddresses = { lan },
            ThermalStateOptional = (ThermalState)(((cores % 7) + 7) % 7),
        });

    private static readonly Gen<ConnectRequest> Frames = Gen.Frequency(
        (1, Gen.Select(AnyBytes, AnyBytes, Text, Capabilities, (details, signature, version, caps) => new ConnectRequest
        {
            Hello = new AgentHello { Certificate = new DeviceCertificate { Details = details, Signature = signature }, AgentVersion = version, Capabilities = caps },
        })),
        (1, Gen.Select(AnyLong, Capabilities, Text.Array[0, 80], (seq, caps, running) => new ConnectRequest
        {
            Heartbeat = new Heartbeat { Sequence = seq, Capabilities = caps, RunningJobs = { running }, SentTime = new Timestamp { Seconds = seq, Nanos = (int)(seq % 2_000_000_000) } },
        })),
        (1, Gen.Select(Text, AnyInt, Text, AnyDouble, Text, (job, attempt, chunk, fraction, message) => new ConnectRequest
        {
            JobProgress = new JobProgress { JobId = job, Attempt = attempt, ChunkId = chunk, Fraction = fraction, Message = message },
        })),
        (1, Gen.Select(Text, AnyInt, AnyBytes, AnyInt, AnyBytes, (job, attempt, token, index, nonce) => new ConnectRequest
        {
            JobToken = new JobToken { JobId = job, Attempt = attempt, Token = token, Index = index, Nonce = nonce },
        })),
        (1, Gen.Select(Text, AnyInt, Gen.Int[-1, 6], Text, Gen.Dictionary(Text, Text)[0, 40], (job, attempt, level, message, fields) =>
        {
            var log = new JobLog { JobId = job, Attempt = attempt, Level = (LogLevel)level, Message = message };
            foreach (var (k, v) in fields)
            {
                log.Fields[k] = v;
            }

            return new ConnectRequest { JobLog = log };
        })),
        (2, Gen.Select(Text, AnyInt, AnyBytes, AnyLong, Gen.Int[-1, 7], Text.Array[0, 3], (job, attempt, output, runtime, tier, blobs) => new ConnectRequest
        {
            JobResult = new JobResult
            {
                JobId = job, Attempt = attempt, Output = output, Metering = new Metering { RuntimeMs = runtime, Tier = (Tier)tier },
                Blobs = { blobs.Select(n => new Blob { Name = n, InlineData = output }) },
            },
        })),
        (1, Gen.Select(Text, AnyInt, Gen.Int[-1, 9], Text, Gen.Bool, (job, attempt, reason, detail, retryable) => new ConnectRequest
        {
            JobDecline = new JobDecline { JobId = job, Attempt = attempt, Reason = (DeclineReason)reason, Detail = detail },
            JobFailure = new JobFailure { JobId = job, Attempt = attempt, Error = detail, Retryable = retryable },
        })));

    private static readonly Gen<WorkloadInput> Inputs = Gen.Frequency(
        (2, Gen.Select(Text.Array[0, 300], Text, (texts, model) => new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { texts }, Model = model } })),
        (1, Gen.Select(Text, AnyInt, Gen.Float, Text.Array[0, 4], (content, max, temperature, stop) => new WorkloadInput
        {
            Chat = new ChatInput { Messages = { new ChatMessage { Role = (ChatRole)(((max % 6) + 6) % 6), Content = content } }, MaxTokens = max, Temperature = temperature, Stop = { stop } },
        })),
        (1, Gen.Select(Text, AnyInt, (blob, side) => new WorkloadInput { Ocr = new OcrInput { ImageBlob = blob, MaxSidePx = side } })),
        (1, Gen.Select(Text, AnyInt, (blob, chunk) => new WorkloadInput { Transcribe = new TranscribeInput { AudioBlob = blob, ChunkMs = chunk } })),
        (1, Gen.Select(Text.Array[0, 20], Text, (items, op) => new WorkloadInput { Batch = new BatchInput { Items = { items }, Operation = op } })),
        (2, Gen.Select(AnyBytes, AnyInt, (data, delay) => new WorkloadInput { Echo = new EchoInput { Data = data, DelayMs = delay } })));

    private static readonly Gen<JobEnvelope> Envelopes =
        Gen.Select(Inputs, Gen.Int[-1, 8], Gen.Int[-1, 6], AnyLong, AnyLong, Gen.Int[0, 5], Text.Array[0, 3], Gen.Bool, (input, workload, routing, cap, timeout, tamper, pinned, encrypted) =>
        {
            var payload = input.ToByteString();
            if (tamper == 0 && payload.Length > 0)
            {
                payload = ByteString.CopyFrom(payload.Span[..(payload.Length / 2)]);
            }

            return new JobEnvelope
            {
                NetworkId = tamper == 1 ? "" : "net_fuzz",
                WorkloadId = (WorkloadClass)workload,
                RoutingMode = (RoutingMode)routing,
                MaxCostCredits = cap,
                TimeoutMs = timeout,
                InputManifest = tamper == 2 ? null : new InputManifest { Payload = payload },
                ResourceRequest = new ResourceRequest { RequiresPinnedDeviceIdsOptional = { pinned } },
                PayloadEncryption = encrypted ? new PayloadEncryption { Scheme = PayloadEncryptionScheme.X25519HkdfXchacha20Poly1305 } : null,
                AuthSignature = tamper == 3 ? new SubmitterSignature { PublicKey = ByteString.CopyFrom(new byte[32]), Signature = ByteString.CopyFrom(new byte[64]) } : null,
            };
        });
}

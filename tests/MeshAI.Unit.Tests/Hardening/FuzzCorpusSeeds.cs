using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Hardening;

/// <summary>
/// The seed corpus of <see cref="InputFuzzTests"/>: one real frame of every kind an agent sends and one envelope of every
/// workload, as the client and agent build them. The files are committed under tests/fuzz-corpus; run this explicit test
/// to rewrite them after a contract change (inputs that once failed live in the regressions/ folders and are kept).
/// </summary>
[TestFixture]
[Category("Unit")]
public sealed class FuzzCorpusSeeds
{
    [Test]
    [Explicit("rewrites tests/fuzz-corpus; run after a contract change")]
    public void Write_seed_corpus()
    {
        Write("relay-frames", Frames());
        Write("envelopes", Envelopes());
    }

    private static void Write(string folder, IEnumerable<(string Name, IMessage Message)> seeds)
    {
        var dir = Directory.CreateDirectory(RepoPaths.Combine("tests", "fuzz-corpus", folder)).FullName;
        foreach (var (name, message) in seeds)
        {
            File.WriteAllBytes(Path.Combine(dir, name + ".bin"), message.ToByteArray());
        }
    }

    private static IEnumerable<(string, IMessage)> Frames()
    {
        var ca = SigningKeyPair.Generate();
        var device = SigningKeyPair.Generate();
        var details = new DeviceCertificateDetails
        {
            DeviceId = "dev_0123456789abcdefghij", NetworkId = "net_0123456789abcdefghij", OwnerUserId = "usr_0123456789abcdefghij",
            SigningPublicKey = ByteString.CopyFrom(device.PublicKey), EncryptionPublicKey = ByteString.CopyFrom(new byte[32]),
            NotBefore = Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddYears(56)), NotAfter = Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddYears(57)),
            Serial = "0123456789abcdef0123456789abcdef", CaKeyId = SigningKeyPair.KeyId(ca.PublicKey), InstallationId = "inst_0123456789abcdefghij",
        };
        var capabilities = new CapabilityReport
        {
            CpuCores = 8, CpuArch = "x64", RamMb = 16_000, GpuPresent = true, GpuVramMb = 8_000, Os = "linux", NetworkRttMs = 12, UplinkMbps = 100, DownlinkMbps = 500,
            Platform = Platform.Android, IsMobile = true, NetworkType = NetworkType.Wifi, IdleScore = 0.7, ThermalMillicelsius = 41_000,
            BatteryStateOptional = new BatteryState { Percent = 80, Charging = true }, ThermalStateOptional = ThermalState.Fair,
            Workloads = { WorkloadClass.Embeddings, WorkloadClass.DiagnosticEcho }, LanAddresses = { "192.168.1.20/24", "fd00::20/64" },
        };
        const string job = "job_0123456789abcdefghij";
        yield return ("hello", new ConnectRequest { Hello = new AgentHello { Certificate = DeviceCertificates.Issue(details, ca), AgentVersion = "0.1.0", Capabilities = capabilities } });
        yield return ("challenge-answer", new ConnectRequest { ChallengeAnswer = new ChallengeAnswer { Signature = ByteString.CopyFrom(device.Sign([1, 2, 3])) } });
        yield return ("heartbeat", new ConnectRequest
        {
            Heartbeat = new Heartbeat { Sequence = 42, Capabilities = capabilities, RunningJobs = { job + "/1" }, ContributionEnabled = true, SentTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddYears(56)) },
        });
        yield return ("accept", new ConnectRequest { JobAccept = new JobAccept { JobId = job, Attempt = 1, ChunkId = "chunk-0001" } });
        yield return ("decline", new ConnectRequest { JobDecline = new JobDecline { JobId = job, Attempt = 2, Reason = DeclineReason.DeviceState, Detail = "battery 12% below 30%" } });
        yield return ("progress", new ConnectRequest { JobProgress = new JobProgress { JobId = job, Attempt = 1, ChunkId = "chunk-0001", Fraction = 0.5, Message = "half way" } });
        yield return ("token", new ConnectRequest { JobToken = new JobToken { JobId = job, Attempt = 1, Token = ByteString.CopyFromUtf8(" hello"), Index = 3, Nonce = ByteString.CopyFrom(new byte[24]) } });
        yield return ("log", new ConnectRequest { JobLog = new JobLog { JobId = job, Attempt = 1, Level = LogLevel.Info, Message = "model loaded", Fields = { ["model"] = "minilm", ["ms"] = "120" } } });
        yield return ("result", new ConnectRequest
        {
            JobResult = new JobResult
            {
                JobId = job, Attempt = 1, ChunkId = "chunk-0001", Output = new WorkloadOutput { Echo = new EchoOutput { Data = ByteString.CopyFromUtf8("pong") } }.ToByteString(),
                Blobs = { new Blob { Name = "out.txt", ContentType = "text/plain", InlineData = ByteString.CopyFromUtf8("text"), Sha256 = new string('a', 64), SizeBytes = 4 } },
                Nonce = ByteString.CopyFrom(new byte[24]), Encrypted = true,
                Metering = new Metering { RuntimeMs = 1234, Tier = Tier._2, PeakMemoryMb = 300, HeartbeatsDuringRun = 1 },
            },
        });
        yield return ("failure", new ConnectRequest
        {
            JobFailure = new JobFailure { JobId = job, Attempt = 1, Error = "worker exited with code 134", Retryable = true, Metering = new Metering { RuntimeMs = 50, Tier = Tier._2 } },
        });
    }

    private static IEnumerable<(string, IMessage)> Envelopes()
    {
        JobEnvelope Envelope(WorkloadClass workload, WorkloadInput input, params Blob[] blobs) => new()
        {
            NetworkId = "net_0123456789abcdefghij",
            WorkloadId = workload,
            DataSensitivityTag = DataSensitivityTag.Private,
            RoutingMode = RoutingMode.Auto,
            MaxCostCredits = 5_000_000,
            TimeoutMs = 30_000,
            TraceId = "0123456789abcdef0123456789abcdef",
            ResourceRequest = new ResourceRequest { MinTier = Tier._1, MinRamMb = 512, MaxLatencyMs = 2000 },
            InputManifest = new InputManifest { Payload = input.ToByteString(), Blobs = { blobs }, Labels = { ["app"] = "notes" } },
        };

        yield return ("embeddings", Envelope(WorkloadClass.Embeddings, new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { "a cat sat on the mat", "quarterly revenue grew 4 %" } } }));
        yield return ("ocr", Envelope(WorkloadClass.OcrPreprocess, new WorkloadInput { Ocr = new OcrInput { ImageBlob = "image", Language = "eng", Deskew = true, MaxSidePx = 2000 } },
            new Blob { Name = "image", ContentType = "image/png", InlineData = ByteString.CopyFrom(0x89, 0x50, 0x4e, 0x47) }));
        yield return ("chat", Envelope(WorkloadClass.SmallChat, new WorkloadInput
        {
            Chat = new ChatInput { Messages = { new ChatMessage { Role = ChatRole.System, Content = "Be brief." }, new ChatMessage { Role = ChatRole.User, Content = "Hi!" } }, MaxTokens = 64, Temperature = 0.7f, Stop = { "\n\n" } },
        }));
        yield return ("transcribe", Envelope(WorkloadClass.AudioTranscribeChunked, new WorkloadInput { Transcribe = new TranscribeInput { AudioBlob = "audio", Language = "en", ChunkMs = 10_000 } },
            new Blob { Name = "audio", ContentType = "audio/wav", InlineData = ByteString.CopyFromUtf8("RIFF\0\0\0\0WAVE") }));
        yield return ("batch", Envelope(WorkloadClass.BatchJobsEvalOrSynth, new WorkloadInput { Batch = new BatchInput { Items = { "one", "two", "three" }, Operation = "upper" } }));
        yield return ("echo", Envelope(WorkloadClass.DiagnosticEcho, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("ping"), DelayMs = 10 } }));
        var pinned = Envelope(WorkloadClass.DiagnosticEcho, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("pinned") } });
        pinned.RoutingMode = RoutingMode.PinnedDevice;
        pinned.ResourceRequest.RequiresPinnedDeviceIdsOptional.Add("dev_0123456789abcdefghij");
        yield return ("pinned", pinned);
        var encrypted = Envelope(WorkloadClass.Embeddings, new WorkloadInput());
        encrypted.InputManifest.Payload = ByteString.CopyFrom(new byte[48]);
        encrypted.PayloadEncryption = new PayloadEncryption
        {
            Scheme = PayloadEncryptionScheme.X25519HkdfXchacha20Poly1305, PayloadNonce = ByteString.CopyFrom(new byte[24]), SubmitterPublicKey = ByteString.CopyFrom(new byte[32]),
            Recipients = { new WrappedKey { DeviceId = "dev_0123456789abcdefghij", EphemeralPublicKey = ByteString.CopyFrom(new byte[32]), Nonce = ByteString.CopyFrom(new byte[24]), WrappedContentKey = ByteString.CopyFrom(new byte[48]) } },
        };
        yield return ("encrypted", encrypted);
    }
}

using System.Security.Cryptography;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Contracts.Tests;

/// <summary>
/// The single source of truth for the cross-language wire vectors in tests/vectors/.
/// Every field of every message (and of every nested message) is set to a distinctive non-default value,
/// so a field that one language drops or mis-encodes changes the bytes.
/// The .bin files and expected.json are produced from these builders (MESHAI_UPDATE_VECTORS=1);
/// the C# tests and the TypeScript client tests both check them.
/// </summary>
public static class VectorFixtures
{
    public const string JobEnvelopeFile = "job_envelope.bin";
    public const string ConnectRequestJobResultFile = "relay_connect_request_job_result.bin";
    public const string ConnectResponseJobOfferFile = "relay_connect_response_job_offer.bin";
    public const string ConnectResponseNetworkUpdateFile = "relay_connect_response_network_update.bin";
    public const string ConnectResponseWelcomeFile = "relay_connect_response_welcome.bin";
    public const string ExpectedJsonFile = "expected.json";

    /// <summary>2^53 + 1: not representable as a double, so a client that reads int64 as a JS number fails.</summary>
    public const long MaxCostCredits = 9_007_199_254_740_993L;

    /// <summary>Deterministic byte pattern: start, start+1, … (mod 256).</summary>
    public static ByteString Seq(int start, int count)
    {
        var bytes = new byte[count];
        for (var i = 0; i < count; i++)
        {
            bytes[i] = unchecked((byte)(start + i));
        }

        return ByteString.CopyFrom(bytes);
    }

    public static string Sha256Hex(ByteString data) =>
        Convert.ToHexStringLower(SHA256.HashData(data.Span));

    /// <summary>Payload bytes that include 0x00, 0x7F/0x80 and 0xFF and are not valid UTF-8.</summary>
    public static ByteString EnvelopePayload() => ByteString.CopyFrom(0x00, 0x01, 0x7F, 0x80, 0xC3, 0x28, 0xFE, 0xFF, 0x6D, 0x65, 0x73, 0x68);

    public static Blob InlineBlob()
    {
        var data = ByteString.CopyFrom(0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A);
        return new Blob
        {
            Name = "image",
            ContentType = "image/png",
            InlineData = data,
            Sha256 = Sha256Hex(data),
            SizeBytes = data.Length,
        };
    }

    public static Blob RefBlob() => new()
    {
        Name = "model-weights",
        ContentType = "application/octet-stream",
        RefUri = "meshai://models/phi-3-mini-q4@sha256:ab12",
        Sha256 = "5d41402abc4b2a76b9719d911017c592ae6a1e7bd5ea2c8c2aa3a0e4c5a1c2b3",
        // Larger than int32 on purpose.
        SizeBytes = 2_147_483_653L,
    };

    /// <summary>A fully populated job envelope (fixture 1).</summary>
    public static JobEnvelope JobEnvelope()
    {
        var payload = EnvelopePayload();
        return new JobEnvelope
        {
            JobId = "job_01HVECTORS0000000000000001",
            NetworkId = "net_vectors_01",
            // Non-ASCII on purpose: UTF-8 must round-trip.
            SubmittedByUserId = "usr_ålice_✓",
            WorkloadId = WorkloadClass.SmallChat,
            InputManifest = new InputManifest
            {
                Payload = payload,
                Blobs = { InlineBlob(), RefBlob() },
                PayloadSha256 = Sha256Hex(payload),
                Labels = { ["origin"] = "cross-language vectors ü" },
            },
            DataSensitivityTag = DataSensitivityTag.Sensitive,
            ResourceRequest = new ResourceRequest
            {
                MinTier = Tier._3,
                NeedsGpu = true,
                MinRamMb = 16_384,
                MaxLatencyMs = 2_500,
                RequiresPinnedDeviceIdsOptional = { "dev_pinned_a", "dev_pinned_b" },
                PinnedTier = Tier._4,
                Model = "all-minilm-l6-v2",
            },
            RoutingMode = RoutingMode.PinnedDevice,
            MaxCostCredits = MaxCostCredits,
            MaxCostMicro = MaxCostCredits,
            TimeoutMs = 120_000,
            AuthSignature = new SubmitterSignature
            {
                PublicKey = Seq(0x10, 32),
                Signature = Seq(0x40, 64),
            },
            PayloadEncryption = new PayloadEncryption
            {
                Scheme = PayloadEncryptionScheme.X25519HkdfXchacha20Poly1305,
                PayloadNonce = Seq(0xA0, 24),
                Recipients =
                {
                    new WrappedKey
                    {
                        DeviceId = "dev_pinned_a",
                        EphemeralPublicKey = Seq(0xB0, 32),
                        Nonce = Seq(0xD0, 24),
                        WrappedContentKey = Seq(0xE0, 48),
                    },
                    new WrappedKey
                    {
                        DeviceId = "dev_pinned_b",
                        EphemeralPublicKey = Seq(0x30, 32),
                        Nonce = Seq(0x50, 24),
                        WrappedContentKey = Seq(0x70, 48),
                    },
                },
                SubmitterPublicKey = Seq(0xF0, 32),
            },
            TraceId = "4bf92f3577b34da6a3ce929d0e0e4736",
        };
    }

    /// <summary>A fully populated agent → relay frame carrying a job result (fixture 2).</summary>
    public static ConnectRequest ConnectRequestJobResult() => new()
    {
        JobResult = new JobResult
        {
            JobId = "job_01HVECTORS0000000000000001",
            Attempt = 3,
            ChunkId = "chunk_0002",
            Output = Seq(0x21, 40),
            Blobs = { InlineBlob(), RefBlob() },
            Nonce = Seq(0x91, 24),
            Encrypted = true,
            Metering = new Metering
            {
                RuntimeMs = 4_321,
                Tier = Tier._2,
                PeakMemoryMb = 512,
                HeartbeatsDuringRun = 7,
            },
        },
        Sequence = 42,
        Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };

    /// <summary>The placement ticket details carried (serialized) inside fixture 3's ticket.</summary>
    public static PlacementTicketDetails PlacementTicketDetails() => new()
    {
        JobId = "job_01HVECTORS0000000000000001",
        Attempt = 3,
        DeviceId = "dev_pinned_a",
        NetworkId = "net_vectors_01",
        EnvelopeSha256 = Sha256Hex(JobEnvelope().ToByteString()),
        ExpireTime = new Timestamp { Seconds = 1_893_553_445, Nanos = 678_000_000 },
        ChunkId = "chunk_0002",
        ChunkSha256 = Sha256Hex(ChunkPayload().ToByteString()),
        ResumeSha256 = Sha256Hex(StreamResume().ToByteString()),
    };

    /// <summary>The tokens fixture 3's offer resumes after (its hash is bound by the ticket; docs/chat-resume.md).</summary>
    public static StreamResume StreamResume() => new()
    {
        // An encoding vector, not a whole resume: every field non-default, so the first token shown is index 1.
        NextIndex = 3,
        Tokens =
        {
            new ResumeToken { Index = 1, Text = Seq(0x71, 12), Nonce = Seq(0x81, 24) },
            new ResumeToken { Index = 2, Text = Seq(0x72, 9), Nonce = Seq(0x82, 24) },
        },
    };

    /// <summary>The chunk of fixture 3's offer (its hash is bound by the ticket).</summary>
    public static ChunkPayload ChunkPayload() => new()
    {
        ChunkId = "chunk_0002",
        ChunkIndex = 2,
        ChunkCount = 5,
        Payload = Seq(0xC1, 16),
        Blobs = { InlineBlob() },
    };

    /// <summary>A fully populated relay → agent frame carrying a job offer (fixture 3).</summary>
    public static ConnectResponse ConnectResponseJobOffer() => new()
    {
        JobOffer = new JobOffer
        {
            Ticket = new PlacementTicket
            {
                Details = PlacementTicketDetails().ToByteString(),
                Signature = Seq(0x60, 64),
                SigningKeyId = "key_ctl_vectors_1",
            },
            Envelope = JobEnvelope().ToByteString(),
            Chunk = ChunkPayload(),
            Resume = StreamResume(),
            Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01",
        },
    };

    /// <summary>A fully populated relay → agent frame carrying a pushed network update (fixture 4).</summary>
    public static ConnectResponse ConnectResponseNetworkUpdate() => new()
    {
        NetworkUpdate = new NetworkUpdate
        {
            Serial = MaxCostCredits + 2,
            NetworkKeys =
            {
                new MeshAI.Contracts.Device.V1.NetworkPublicKey
                {
                    KeyId = "key_ctl_vectors_2",
                    PublicKey = Seq(0xA0, 32),
                    Purpose = MeshAI.Contracts.Device.V1.NetworkKeyPurpose.ControlSigning,
                    NotAfter = new Timestamp { Seconds = 1_900_000_000, Nanos = 250_000_000 },
                },
            },
            RevokedDeviceIds = { "dev_vectors_revoked_1", "dev_vectors_revoked_2" },
            RelayUrls = { "https://relay-a.example.net:7443", "https://relay-b.example.net:7443" },
            HeartbeatIntervalMs = 4_750,
            FullState = true,
            ModelsChangedUnixMs = MaxCostCredits + 4,
        },
    };

    /// <summary>A fully populated relay → agent Welcome (fixture 5): the stream's heartbeat rhythm and, on protocol 4, its sparse acknowledgements.</summary>
    public static ConnectResponse ConnectResponseWelcome() => new()
    {
        Welcome = new Welcome
        {
            DeviceId = "dev_vectors_welcome",
            RelayId = "relay_vectors_1",
            HeartbeatIntervalMs = 5_000,
            GraceMs = 20_000,
            ProtocolVersion = 4,
            RelayUrls = { "https://relay-a.example.net:7443", "https://relay-c.example.net:7443" },
            HeartbeatAckEvery = 2,
        },
    };

    /// <summary>Every vector file with the message it must hold, in a stable order.</summary>
    public static IReadOnlyList<(string File, IMessage Message)> All() =>
    [
        (JobEnvelopeFile, JobEnvelope()),
        (ConnectRequestJobResultFile, ConnectRequestJobResult()),
        (ConnectResponseJobOfferFile, ConnectResponseJobOffer()),
        (ConnectResponseNetworkUpdateFile, ConnectResponseNetworkUpdate()),
        (ConnectResponseWelcomeFile, ConnectResponseWelcome()),
    ];
}

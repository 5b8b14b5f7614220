using NUnit.Framework;
using System.Collections;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Google.Protobuf.Reflection;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Contracts.Tests;

/// <summary>
/// Cross-language wire vectors (tests/vectors/). The TypeScript client decodes the same files
/// (clients/typescript/src/test/vectors.test.ts), so a drift on either side fails a test.
/// Set MESHAI_UPDATE_VECTORS=1 to rewrite the files from <see cref="VectorFixtures"/>.
/// </summary>
[TestFixture]
public class VectorTests
{
    [OneTimeSetUp]
    public void WriteVectorsWhenAsked()
    {
        if (!VectorFiles.UpdateRequested)
        {
            return;
        }

        Directory.CreateDirectory(VectorFiles.VectorsDir());
        foreach (var (file, message) in VectorFixtures.All())
        {
            File.WriteAllBytes(VectorFiles.PathOf(file), message.ToByteArray());
        }

        File.WriteAllBytes(VectorFiles.PathOf(VectorFixtures.ExpectedJsonFile), VectorFiles.RenderExpectedJsonBytes());
        TestContext.Out.WriteLine($"{VectorFiles.UpdateVariable}=1: rewrote the vectors in {VectorFiles.VectorsDir()}");
    }

    [Test]
    public void Fixtures_set_every_field_to_a_non_default_value()
    {
        var unset = new List<string>();
        foreach (var (file, message) in VectorFixtures.All())
        {
            CollectUnsetFields(message, file, unset);
        }

        CollectUnsetFields(VectorFixtures.PlacementTicketDetails(), "placement_ticket_details", unset);
        Assert.That(unset, Is.Empty, "fixture fields left at their default value (a vector must set every field)");
    }

    [Test]
    public void Vectors_match_committed_bytes()
    {
        using (Assert.EnterMultipleScope())
        {
            foreach (var (file, message) in VectorFixtures.All())
            {
                var path = VectorFiles.PathOf(file);
                Assert.That(File.Exists(path), Is.True, $"{path} is missing; run with {VectorFiles.UpdateVariable}=1 to create it");
                if (!File.Exists(path))
                {
                    continue;
                }

                var committed = File.ReadAllBytes(path);
                var serialized = message.ToByteArray();
                Assert.That(FirstDifference(committed, serialized), Is.Null,
                    $"{file}: committed bytes differ from the serialized fixture (run with {VectorFiles.UpdateVariable}=1 if the change is intended)");
                Assert.That(committed, Is.EqualTo(serialized), file);
            }

            var expectedJsonPath = VectorFiles.PathOf(VectorFixtures.ExpectedJsonFile);
            Assert.That(File.Exists(expectedJsonPath), Is.True, $"{expectedJsonPath} is missing");
            if (File.Exists(expectedJsonPath))
            {
                var committedJson = File.ReadAllText(expectedJsonPath).ReplaceLineEndings("\n");
                Assert.That(committedJson, Is.EqualTo(VectorFiles.RenderExpectedJson()),
                    $"expected.json differs from the fixtures (run with {VectorFiles.UpdateVariable}=1 if the change is intended)");
            }
        }
    }

    [Test]
    public void JobEnvelope_vector_decodes_field_by_field()
    {
        var actual = JobEnvelope.Parser.ParseFrom(ReadVector(VectorFixtures.JobEnvelopeFile));
        var expected = VectorFixtures.JobEnvelope();
        using (Assert.EnterMultipleScope())
        {
            AssertJobEnvelope("job_envelope", actual, expected);
            Assert.That(actual.Equals(expected), Is.True, "job_envelope: whole message (Equals)");
        }
    }

    [Test]
    public void ConnectRequest_job_result_vector_decodes_field_by_field()
    {
        var actual = ConnectRequest.Parser.ParseFrom(ReadVector(VectorFixtures.ConnectRequestJobResultFile));
        var expected = VectorFixtures.ConnectRequestJobResult();
        using (Assert.EnterMultipleScope())
        {
            Check("frame case", actual.FrameCase, ConnectRequest.FrameOneofCase.JobResult);
            var a = actual.JobResult ?? new JobResult();
            var e = expected.JobResult;
            Check("job_result.job_id", a.JobId, e.JobId);
            Check("job_result.attempt", a.Attempt, e.Attempt);
            Check("job_result.chunk_id", a.ChunkId, e.ChunkId);
            CheckBytes("job_result.output", a.Output, e.Output);
            AssertBlobs("job_result.blobs", a.Blobs, e.Blobs);
            CheckBytes("job_result.nonce", a.Nonce, e.Nonce);
            Check("job_result.encrypted", a.Encrypted, e.Encrypted);
            Assert.That(a.Metering, Is.Not.Null, "job_result.metering is missing");
            var am = a.Metering ?? new Metering();
            Check("job_result.metering.runtime_ms", am.RuntimeMs, e.Metering.RuntimeMs);
            Check("job_result.metering.tier", am.Tier, e.Metering.Tier);
            Check("job_result.metering.peak_memory_mb", am.PeakMemoryMb, e.Metering.PeakMemoryMb);
            Check("job_result.metering.heartbeats_during_run", am.HeartbeatsDuringRun, e.Metering.HeartbeatsDuringRun);
            Assert.That(actual.Equals(expected), Is.True, "relay_connect_request_job_result: whole message (Equals)");
        }
    }

    [Test]
    public void ConnectResponse_welcome_vector_decodes_field_by_field()
    {
        var actual = ConnectResponse.Parser.ParseFrom(ReadVector(VectorFixtures.ConnectResponseWelcomeFile));
        var expected = VectorFixtures.ConnectResponseWelcome().Welcome;
        using (Assert.EnterMultipleScope())
        {
            Check("frame case", actual.FrameCase, ConnectResponse.FrameOneofCase.Welcome);
            var a = actual.Welcome ?? new Welcome();
            Check("welcome.device_id", a.DeviceId, expected.DeviceId);
            Check("welcome.relay_id", a.RelayId, expected.RelayId);
            Check("welcome.heartbeat_interval_ms", a.HeartbeatIntervalMs, expected.HeartbeatIntervalMs);
            Check("welcome.grace_ms", a.GraceMs, expected.GraceMs);
            Check("welcome.protocol_version", a.ProtocolVersion, expected.ProtocolVersion);
            Assert.That(a.RelayUrls, Is.EqualTo(expected.RelayUrls), "welcome.relay_urls");
            Check("welcome.heartbeat_ack_every", a.HeartbeatAckEvery, expected.HeartbeatAckEvery);
        }
    }

    [Test]
    public void ConnectResponse_job_offer_vector_decodes_field_by_field()
    {
        var actual = ConnectResponse.Parser.ParseFrom(ReadVector(VectorFixtures.ConnectResponseJobOfferFile));
        var expected = VectorFixtures.ConnectResponseJobOffer();
        using (Assert.EnterMultipleScope())
        {
            Check("frame case", actual.FrameCase, ConnectResponse.FrameOneofCase.JobOffer);
            var a = actual.JobOffer ?? new JobOffer();
            var e = expected.JobOffer;

            Assert.That(a.Ticket, Is.Not.Null, "job_offer.ticket is missing");
            var ticket = a.Ticket ?? new PlacementTicket();
            CheckBytes("job_offer.ticket.details", ticket.Details, e.Ticket.Details);
            CheckBytes("job_offer.ticket.signature", ticket.Signature, e.Ticket.Signature);
            Check("job_offer.ticket.signing_key_id", ticket.SigningKeyId, e.Ticket.SigningKeyId);

            var details = PlacementTicketDetails.Parser.ParseFrom(ticket.Details);
            var ed = VectorFixtures.PlacementTicketDetails();
            Check("ticket.details.job_id", details.JobId, ed.JobId);
            Check("ticket.details.attempt", details.Attempt, ed.Attempt);
            Check("ticket.details.device_id", details.DeviceId, ed.DeviceId);
            Check("ticket.details.network_id", details.NetworkId, ed.NetworkId);
            Check("ticket.details.envelope_sha256", details.EnvelopeSha256, ed.EnvelopeSha256);
            Check("ticket.details.expire_time", details.ExpireTime, ed.ExpireTime);
            Check("ticket.details.chunk_id", details.ChunkId, ed.ChunkId);
            Check("ticket.details.envelope_sha256 binds job_offer.envelope", details.EnvelopeSha256, VectorFixtures.Sha256Hex(a.Envelope));

            CheckBytes("job_offer.envelope", a.Envelope, e.Envelope);
            CheckBytes("job_offer.envelope equals job_envelope.bin", a.Envelope,
                ByteString.CopyFrom(ReadVector(VectorFixtures.JobEnvelopeFile)));
            AssertJobEnvelope("job_offer.envelope", JobEnvelope.Parser.ParseFrom(a.Envelope), VectorFixtures.JobEnvelope());

            Assert.That(a.Chunk, Is.Not.Null, "job_offer.chunk is missing");
            var chunk = a.Chunk ?? new ChunkPayload();
            Check("job_offer.chunk.chunk_id", chunk.ChunkId, e.Chunk.ChunkId);
            Check("job_offer.chunk.chunk_index", chunk.ChunkIndex, e.Chunk.ChunkIndex);
            Check("job_offer.chunk.chunk_count", chunk.ChunkCount, e.Chunk.ChunkCount);
            CheckBytes("job_offer.chunk.payload", chunk.Payload, e.Chunk.Payload);
            Assert.That(actual.Equals(expected), Is.True, "relay_connect_response_job_offer: whole message (Equals)");
        }
    }

    private static void AssertJobEnvelope(string at, JobEnvelope a, JobEnvelope e)
    {
        Check($"{at}.job_id", a.JobId, e.JobId);
        Check($"{at}.network_id", a.NetworkId, e.NetworkId);
        Check($"{at}.submitted_by_user_id", a.SubmittedByUserId, e.SubmittedByUserId);
        Check($"{at}.workload_id", a.WorkloadId, e.WorkloadId);

        Assert.That(a.InputManifest, Is.Not.Null, $"{at}.input_manifest is missing");
        var im = a.InputManifest ?? new InputManifest();
        CheckBytes($"{at}.input_manifest.payload", im.Payload, e.InputManifest.Payload);
        AssertBlobs($"{at}.input_manifest.blobs", im.Blobs, e.InputManifest.Blobs);
        Check($"{at}.input_manifest.payload_sha256", im.PayloadSha256, e.InputManifest.PayloadSha256);
        Check($"{at}.input_manifest.payload_sha256 matches payload", im.PayloadSha256, VectorFixtures.Sha256Hex(im.Payload));
        Check($"{at}.input_manifest.labels", im.Labels.ToDictionary(), e.InputManifest.Labels.ToDictionary());

        Check($"{at}.data_sensitivity_tag", a.DataSensitivityTag, e.DataSensitivityTag);

        Assert.That(a.ResourceRequest, Is.Not.Null, $"{at}.resource_request is missing");
        var rr = a.ResourceRequest ?? new ResourceRequest();
        Check($"{at}.resource_request.min_tier", rr.MinTier, e.ResourceRequest.MinTier);
        Check($"{at}.resource_request.needs_gpu", rr.NeedsGpu, e.ResourceRequest.NeedsGpu);
        Check($"{at}.resource_request.min_ram_mb", rr.MinRamMb, e.ResourceRequest.MinRamMb);
        Check($"{at}.resource_request.max_latency_ms", rr.MaxLatencyMs, e.ResourceRequest.MaxLatencyMs);
        Check($"{at}.resource_request.requires_pinned_device_ids_optional", rr.RequiresPinnedDeviceIdsOptional.ToList(),
            e.ResourceRequest.RequiresPinnedDeviceIdsOptional.ToList());
        Check($"{at}.resource_request.pinned_tier", rr.PinnedTier, e.ResourceRequest.PinnedTier);

        Check($"{at}.routing_mode", a.RoutingMode, e.RoutingMode);
        Check($"{at}.max_cost_credits", a.MaxCostCredits, e.MaxCostCredits);
        Check($"{at}.timeout_ms", a.TimeoutMs, e.TimeoutMs);

        Assert.That(a.AuthSignature, Is.Not.Null, $"{at}.auth_signature is missing");
        var sig = a.AuthSignature ?? new SubmitterSignature();
        CheckBytes($"{at}.auth_signature.public_key", sig.PublicKey, e.AuthSignature.PublicKey);
        CheckBytes($"{at}.auth_signature.signature", sig.Signature, e.AuthSignature.Signature);

        Assert.That(a.PayloadEncryption, Is.Not.Null, $"{at}.payload_encryption is missing");
        var pe = a.PayloadEncryption ?? new PayloadEncryption();
        Check($"{at}.payload_encryption.scheme", pe.Scheme, e.PayloadEncryption.Scheme);
        CheckBytes($"{at}.payload_encryption.payload_nonce", pe.PayloadNonce, e.PayloadEncryption.PayloadNonce);
        Check($"{at}.payload_encryption.recipients.count", pe.Recipients.Count, e.PayloadEncryption.Recipients.Count);
        for (var i = 0; i < Math.Min(pe.Recipients.Count, e.PayloadEncryption.Recipients.Count); i++)
        {
            var ar = pe.Recipients[i];
            var er = e.PayloadEncryption.Recipients[i];
            Check($"{at}.payload_encryption.recipients[{i}].device_id", ar.DeviceId, er.DeviceId);
            CheckBytes($"{at}.payload_encryption.recipients[{i}].ephemeral_public_key", ar.EphemeralPublicKey, er.EphemeralPublicKey);
            CheckBytes($"{at}.payload_encryption.recipients[{i}].nonce", ar.Nonce, er.Nonce);
            CheckBytes($"{at}.payload_encryption.recipients[{i}].wrapped_content_key", ar.WrappedContentKey, er.WrappedContentKey);
        }

        CheckBytes($"{at}.payload_encryption.submitter_public_key", pe.SubmitterPublicKey, e.PayloadEncryption.SubmitterPublicKey);
        Check($"{at}.trace_id", a.TraceId, e.TraceId);
    }

    private static void AssertBlobs(string at, RepeatedField<Blob> actual, RepeatedField<Blob> expected)
    {
        Check($"{at}.count", actual.Count, expected.Count);
        for (var i = 0; i < Math.Min(actual.Count, expected.Count); i++)
        {
            var a = actual[i];
            var e = expected[i];
            Check($"{at}[{i}].name", a.Name, e.Name);
            Check($"{at}[{i}].content_type", a.ContentType, e.ContentType);
            Check($"{at}[{i}].source case", a.SourceCase, e.SourceCase);
            CheckBytes($"{at}[{i}].inline_data", a.InlineData, e.InlineData);
            Check($"{at}[{i}].ref_uri", a.RefUri, e.RefUri);
            Check($"{at}[{i}].sha256", a.Sha256, e.Sha256);
            Check($"{at}[{i}].size_bytes", a.SizeBytes, e.SizeBytes);
        }
    }

    private static void Check<T>(string field, T actual, T expected) =>
        Assert.That(actual, Is.EqualTo(expected), field);

    private static void CheckBytes(string field, ByteString actual, ByteString expected) =>
        Assert.That(Convert.ToHexStringLower(actual.Span), Is.EqualTo(Convert.ToHexStringLower(expected.Span)), $"{field} (hex)");

    private static byte[] ReadVector(string file)
    {
        var path = VectorFiles.PathOf(file);
        Assert.That(File.Exists(path), Is.True, $"{path} is missing; run with {VectorFiles.UpdateVariable}=1 to create it");
        return File.ReadAllBytes(path);
    }

    private static string? FirstDifference(byte[] committed, byte[] serialized)
    {
        var n = Math.Min(committed.Length, serialized.Length);
        for (var i = 0; i < n; i++)
        {
            if (committed[i] != serialized[i])
            {
                return $"first difference at offset {i}: committed 0x{committed[i]:x2}, fixture 0x{serialized[i]:x2}";
            }
        }

        return committed.Length == serialized.Length
            ? null
            : $"length differs: committed {committed.Length} bytes, fixture {serialized.Length} bytes";
    }

    /// <summary>Walks the descriptor and records every field (recursively) that holds its default value.</summary>
    private static void CollectUnsetFields(IMessage message, string at, List<string> unset)
    {
        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            var path = $"{at}.{field.Name}";
            var oneof = field.RealContainingOneof;
            if (oneof is not null)
            {
                // Only the selected member of a oneof can be set.
                if (oneof.Accessor.GetCaseFieldDescriptor(message) != field)
                {
                    continue;
                }
            }

            var value = field.Accessor.GetValue(message);
            if (field.IsMap)
            {
                if (((IDictionary)value).Count == 0)
                {
                    unset.Add(path);
                }
                else if (field.MessageType.FindFieldByNumber(2).FieldType == FieldType.Message)
                {
                    foreach (DictionaryEntry entry in (IDictionary)value)
                    {
                        CollectUnsetFields((IMessage)entry.Value!, $"{path}[{entry.Key}]", unset);
                    }
                }
            }
            else if (field.IsRepeated)
            {
                var list = (IList)value;
                if (list.Count == 0)
                {
                    unset.Add(path);
                }

                if (field.FieldType == FieldType.Message)
                {
                    for (var i = 0; i < list.Count; i++)
                    {
                        CollectUnsetFields((IMessage)list[i]!, $"{path}[{i}]", unset);
                    }
                }
            }
            else if (field.FieldType == FieldType.Message)
            {
                if (value is null)
                {
                    unset.Add(path);
                }
                else
                {
                    CollectUnsetFields((IMessage)value, path, unset);
                }
            }
            else if (IsDefaultScalar(value))
            {
                unset.Add(path);
            }
        }
    }

    private static bool IsDefaultScalar(object? value) => value switch
    {
        null => true,
        string s => s.Length == 0,
        ByteString b => b.IsEmpty,
        bool b => !b,
        Enum e => Convert.ToInt32(e, System.Globalization.CultureInfo.InvariantCulture) == 0,
        int i => i == 0,
        long l => l == 0,
        uint u => u == 0,
        ulong ul => ul == 0,
        float f => f == 0,
        double d => d == 0,
        _ => throw new NotSupportedException($"Unhandled field type {value.GetType()}"),
    };
}

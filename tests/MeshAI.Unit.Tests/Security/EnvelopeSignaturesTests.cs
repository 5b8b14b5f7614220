using Google.Protobuf;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Security;

[TestFixture]
[Category("Unit")]
public sealed class EnvelopeSignaturesTests
{
    private static readonly SigningKeyPair Submitter = SigningKeyPair.Generate();

    private static JobEnvelope Signed()
    {
        var envelope = new JobEnvelope
        {
            NetworkId = "net_a",
            WorkloadId = WorkloadClass.DiagnosticEcho,
            InputManifest = new InputManifest
            {
                Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("hello") } }.ToByteString(),
                Blobs = { new Blob { Name = "image", RefUri = "blob://a" } },
                PayloadSha256 = "abc",
                Labels = { ["region"] = "eu" },
            },
            DataSensitivityTag = DataSensitivityTag.Private,
            ResourceRequest = new ResourceRequest { MinTier = Tier._2, MinRamMb = 512 },
            RoutingMode = RoutingMode.Auto,
            MaxCostCredits = 1000,
            TimeoutMs = 5000,
            PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
        };
        EnvelopeSignatures.Sign(envelope, Submitter);
        return envelope;
    }

    // Every client-controlled field the signature covers, each changed the way a tamperer would.
    private static IEnumerable<TestCaseData> CoveredFields()
    {
        yield return Case("network_id", e => e.NetworkId = "net_b");
        yield return Case("workload_id", e => e.WorkloadId = WorkloadClass.SmallChat);
        yield return Case("input_manifest.payload", e => e.InputManifest.Payload = ByteString.CopyFromUtf8("other"));
        yield return Case("input_manifest.blobs", e => e.InputManifest.Blobs[0].RefUri = "blob://b");
        yield return Case("input_manifest.payload_sha256", e => e.InputManifest.PayloadSha256 = "def");
        yield return Case("input_manifest.labels", e => e.InputManifest.Labels["region"] = "us");
        yield return Case("data_sensitivity_tag", e => e.DataSensitivityTag = DataSensitivityTag.Public);
        yield return Case("resource_request", e => e.ResourceRequest.RequiresPinnedDeviceIdsOptional.Add("dev_evil"));
        yield return Case("routing_mode", e => e.RoutingMode = RoutingMode.PinnedDevice);
        yield return Case("max_cost_credits", e => e.MaxCostCredits = 999_999);
        yield return Case("timeout_ms", e => e.TimeoutMs = 6000);
        yield return Case("payload_encryption", e => e.PayloadEncryption.SubmitterPublicKey = ByteString.CopyFrom(new byte[32]));
        yield return Case("auth_signature.public_key", e => e.AuthSignature.PublicKey = ByteString.CopyFrom(SigningKeyPair.Generate().PublicKey));
    }

    private static TestCaseData Case(string field, Action<JobEnvelope> change) => new TestCaseData(change).SetArgDisplayNames(field);

    [Test]
    public void A_signed_envelope_verifies()
    {
        Assert.That(EnvelopeSignatures.Verify(Signed()), Is.True);
    }

    [TestCaseSource(nameof(CoveredFields))]
    public void Changing_a_covered_field_breaks_the_signature(Action<JobEnvelope> change)
    {
        var envelope = Signed();
        change(envelope);

        Assert.That(EnvelopeSignatures.Verify(envelope), Is.False);
    }

    [Test]
    public void Server_assigned_fields_may_change_after_signing()
    {
        var envelope = Signed();
        envelope.JobId = "job_1";
        envelope.SubmittedByUserId = "usr_1";
        envelope.TraceId = "0123456789abcdef";

        Assert.That(EnvelopeSignatures.Verify(JobEnvelope.Parser.ParseFrom(envelope.ToByteArray())), Is.True, "survives the wire too");
    }

    [Test]
    public void A_signed_default_timeout_may_be_filled_in_by_control_but_a_signed_timeout_may_not_be_changed()
    {
        var envelope = Signed();
        envelope.TimeoutMs = 0;
        EnvelopeSignatures.Sign(envelope, Submitter);
        envelope.TimeoutMs = 120_000;
        Assert.That(EnvelopeSignatures.Verify(envelope), Is.True, "0 = server default");

        var fixedTimeout = Signed();
        fixedTimeout.TimeoutMs = 0;
        Assert.That(EnvelopeSignatures.Verify(fixedTimeout), Is.False);
    }

    [Test]
    public void Missing_or_malformed_signatures_do_not_verify()
    {
        var unsigned = Signed();
        unsigned.AuthSignature = null;
        var truncated = Signed();
        truncated.AuthSignature.Signature = ByteString.CopyFrom(truncated.AuthSignature.Signature.Span[..10]);

        Assert.Multiple(() =>
        {
            Assert.That(EnvelopeSignatures.Verify(unsigned), Is.False);
            Assert.That(EnvelopeSignatures.Verify(truncated), Is.False);
            Assert.That(EnvelopeSignatures.Verify(new JobEnvelope { AuthSignature = new SubmitterSignature() }), Is.False);
        });
    }
}

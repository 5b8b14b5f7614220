using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Agent.Jobs;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

[TestFixture]
[Category("Unit")]
public sealed class OfferVerifierTests
{
    private const string DeviceId = "dev_me";
    private const string NetworkId = "net_mine";
    private readonly SigningKeyPair _control = SigningKeyPair.Generate();

    private OfferVerifier NewVerifier() =>
        new(_ => new Dictionary<string, byte[]> { [SigningKeyPair.KeyId(_control.PublicKey)] = _control.PublicKey }, DeviceId, NetworkId);

    private JobOffer Offer(string jobId = "job_1", int attempt = 1, string network = NetworkId, string device = DeviceId, TimeSpan? expiresIn = null, SigningKeyPair? signer = null)
    {
        var envelope = new JobEnvelope { JobId = jobId, NetworkId = network, InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput() }.ToByteString() } }.ToByteString();
        var details = new PlacementTicketDetails
        {
            JobId = jobId, Attempt = attempt, DeviceId = device, NetworkId = network,
            EnvelopeSha256 = Secrets.Sha256Hex(envelope.Span),
            ExpireTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow + (expiresIn ?? TimeSpan.FromMinutes(1))),
        };
        return new JobOffer { Ticket = PlacementTickets.Sign(details, signer ?? _control), Envelope = envelope };
    }

    [Test]
    public void A_signed_offer_for_this_device_is_accepted()
    {
        var check = NewVerifier().Check(Offer());

        Assert.That(check.Accepted, Is.True, check.Detail);
        Assert.That(check.Envelope!.JobId, Is.EqualTo("job_1"));
    }

    [Test]
    public void Unsigned_offer_is_refused()
    {
        var offer = Offer();
        offer.Ticket = null;

        var check = NewVerifier().Check(offer);

        Assert.That(check.Accepted, Is.False);
        Assert.That(check.Reason, Is.EqualTo(DeclineReason.BadTicket));
    }

    [Test]
    public void Offer_signed_by_an_untrusted_key_is_refused()
    {
        var check = NewVerifier().Check(Offer(signer: SigningKeyPair.Generate()));

        Assert.That(check.Accepted, Is.False);
        Assert.That(check.Detail, Does.Contain("signature"));
    }

    [Test]
    public void Tampered_envelope_is_refused()
    {
        var offer = Offer();
        var bytes = offer.Envelope.ToByteArray();
        bytes[^1] ^= 0x01;
        offer.Envelope = ByteString.CopyFrom(bytes);

        var check = NewVerifier().Check(offer);

        Assert.That(check.Accepted, Is.False);
        Assert.That(check.Detail, Does.Contain("envelope"));
    }

    [Test]
    public void Tampered_ticket_is_refused()
    {
        var offer = Offer();
        var details = PlacementTicketDetails.Parser.ParseFrom(offer.Ticket.Details);
        details.Attempt = 2;
        offer.Ticket.Details = details.ToByteString();

        Assert.That(NewVerifier().Check(offer).Accepted, Is.False);
    }

    [Test]
    public void Expired_ticket_is_refused()
    {
        var check = NewVerifier().Check(Offer(expiresIn: TimeSpan.FromSeconds(-1)));

        Assert.That(check.Accepted, Is.False);
        Assert.That(check.Detail, Does.Contain("expired"));
    }

    [Test]
    public void Ticket_for_a_foreign_network_is_refused()
    {
        var check = NewVerifier().Check(Offer(network: "net_other"));

        Assert.That(check.Accepted, Is.False);
        Assert.That(check.Detail, Does.Contain("network"));
    }

    [Test]
    public void Ticket_for_another_device_is_refused()
    {
        Assert.That(NewVerifier().Check(Offer(device: "dev_other")).Accepted, Is.False);
    }

    [Test]
    public void Replayed_job_and_attempt_is_refused_but_a_new_attempt_is_accepted()
    {
        var verifier = NewVerifier();
        Assert.That(verifier.Check(Offer()).Accepted, Is.True);

        var replay = verifier.Check(Offer());
        Assert.That(replay.Accepted, Is.False);
        Assert.That(replay.Reason, Is.EqualTo(DeclineReason.Replayed));

        Assert.That(verifier.Check(Offer(attempt: 2)).Accepted, Is.True);
    }

    // Control (or a relay holding its key) signs whatever envelope it is given: a valid ticket over a changed envelope.
    private JobOffer OfferFor(JobEnvelope envelope)
    {
        var bytes = envelope.ToByteString();
        var details = new PlacementTicketDetails
        {
            JobId = envelope.JobId, Attempt = 1, DeviceId = DeviceId, NetworkId = envelope.NetworkId,
            EnvelopeSha256 = Secrets.Sha256Hex(bytes.Span),
            ExpireTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow + TimeSpan.FromMinutes(1)),
        };
        return new JobOffer { Ticket = PlacementTickets.Sign(details, _control), Envelope = bytes };
    }

    private static JobEnvelope SubmitterSigned(SigningKeyPair submitter)
    {
        var envelope = new JobEnvelope
        {
            NetworkId = NetworkId,
            WorkloadId = MeshAI.Contracts.Common.V1.WorkloadClass.DiagnosticEcho,
            InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("mine") } }.ToByteString() },
        };
        EnvelopeSignatures.Sign(envelope, submitter);
        envelope.JobId = "job_signed"; // assigned by control after the client signed
        envelope.SubmittedByUserId = "usr_1";
        envelope.TraceId = "trace";
        return envelope;
    }

    [Test]
    public void Submitter_signed_envelope_left_untouched_is_accepted()
    {
        var check = NewVerifier().Check(OfferFor(SubmitterSigned(SigningKeyPair.Generate())));

        Assert.That(check.Accepted, Is.True, check.Detail);
    }

    [Test]
    public void Submitter_signed_envelope_with_a_changed_payload_is_declined_even_under_a_valid_ticket()
    {
        var envelope = SubmitterSigned(SigningKeyPair.Generate());
        envelope.InputManifest.Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("theirs") } }.ToByteString();

        var check = NewVerifier().Check(OfferFor(envelope));

        Assert.That(check.Accepted, Is.False);
        Assert.That(check.Reason, Is.EqualTo(DeclineReason.BadTicket));
        Assert.That(check.Detail, Is.EqualTo("submitter signature invalid"));
    }
}

using Google.Protobuf;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Agent.Jobs;

/// <summary>The outcome of checking an offer: the verified ticket and envelope, or why it is declined.</summary>
public sealed record OfferCheck(PlacementTicketDetails? Ticket, JobEnvelope? Envelope, DeclineReason Reason, string Detail)
{
    /// <summary>True when the offer may be accepted.</summary>
    public bool Accepted => Ticket is not null && Envelope is not null;
}

/// <summary>
/// Checks every offer before the agent accepts it: the placement ticket must be signed by a trusted control key of the
/// device's network, name this device and network, be unexpired and bind the offered envelope's hash; a submitter
/// signature on the envelope, when present, must verify; a job_id +
/// attempt + chunk seen before is refused as a replay.
/// </summary>
public sealed class OfferVerifier
{
    private readonly Func<DateTimeOffset, IReadOnlyDictionary<string, byte[]>> _controlKeys;
    private readonly string _deviceId;
    private readonly string _networkId;
    private readonly TimeProvider _time;
    private readonly int _memory;
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private readonly Queue<string> _order = new();
    private readonly Lock _lock = new();

    /// <summary>Creates a verifier for this device.</summary>
    public OfferVerifier(Func<DateTimeOffset, IReadOnlyDictionary<string, byte[]>> controlKeys, string deviceId, string networkId, TimeProvider? time = null, int replayMemory = 10_000)
    {
        _controlKeys = controlKeys;
        _deviceId = deviceId;
        _networkId = networkId;
        _time = time ?? TimeProvider.System;
        _memory = replayMemory;
    }

    /// <summary>Verifies <paramref name="offer"/>; a verified offer is remembered so a replay of it is refused.</summary>
    public OfferCheck Check(JobOffer offer)
    {
        ArgumentNullException.ThrowIfNull(offer);
        var now = _time.GetUtcNow();
        PlacementTicketDetails? details;
        string reason;
        try
        {
            details = PlacementTickets.Verify(offer.Ticket, _controlKeys(now), offer.Envelope.Span, _deviceId, _networkId, now, out reason);
        }
        catch (InvalidProtocolBufferException)
        {
            details = null;
            reason = "ticket malformed";
        }

        if (details is null)
        {
            return new OfferCheck(null, null, DeclineReason.BadTicket, reason);
        }

        JobEnvelope envelope;
        try
        {
            envelope = JobEnvelope.Parser.ParseFrom(offer.Envelope);
        }
        catch (InvalidProtocolBufferException)
        {
            return new OfferCheck(null, null, DeclineReason.BadTicket, "envelope malformed");
        }

        if (!string.Equals(envelope.JobId, details.JobId, StringComparison.Ordinal) || !string.Equals(envelope.NetworkId, _networkId, StringComparison.Ordinal))
        {
            return new OfferCheck(null, null, DeclineReason.BadTicket, "envelope does not belong to the ticket's job or network");
        }

        // A chunk's payload travels beside the envelope, so the ticket binds its hash too.
        var hasChunk = offer.Chunk is not null;
        if (hasChunk != !string.IsNullOrEmpty(details.ChunkSha256) ||
            (hasChunk && !string.Equals(Secrets.Sha256Hex(offer.Chunk!.ToByteArray()), details.ChunkSha256, StringComparison.Ordinal)))
        {
            return new OfferCheck(null, null, DeclineReason.BadTicket, "chunk payload does not match the ticket");
        }

        // So does the resumed stream of a retried chat (what earlier attempts already delivered).
        var hasResume = offer.Resume is not null;
        if (hasResume != !string.IsNullOrEmpty(details.ResumeSha256) ||
            (hasResume && !string.Equals(Secrets.Sha256Hex(offer.Resume!.ToByteArray()), details.ResumeSha256, StringComparison.Ordinal)))
        {
            return new OfferCheck(null, null, DeclineReason.BadTicket, "resumed tokens do not match the ticket");
        }

        // The optional submitter signature catches an envelope changed after the client signed it, even under a valid
        // ticket. Chunk envelopes carry no payload (control split it), so only whole-envelope offers can be checked.
        if (!hasChunk && envelope.AuthSignature is not null && !EnvelopeSignatures.Verify(envelope))
        {
            return new OfferCheck(null, null, DeclineReason.BadTicket, "submitter signature invalid");
        }

        var key = $"{details.JobId}/{details.Attempt}/{details.ChunkId}";
        lock (_lock)
        {
            if (!_seen.Add(key))
            {
                return new OfferCheck(null, null, DeclineReason.Replayed, $"job {details.JobId} attempt {details.Attempt} was offered before");
            }

            _order.Enqueue(key);
            while (_order.Count > _memory)
            {
                _seen.Remove(_order.Dequeue());
            }
        }

        return new OfferCheck(details, envelope, DeclineReason.Unspecified, "");
    }
}

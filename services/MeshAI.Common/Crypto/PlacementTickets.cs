using Google.Protobuf;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Common.Crypto;

/// <summary>Signs and verifies placement tickets (job id, attempt, device, envelope hash, expiry).</summary>
public static class PlacementTickets
{
    /// <summary>Signs ticket details with the network's control signing key.</summary>
    public static PlacementTicket Sign(PlacementTicketDetails details, SigningKeyPair controlKey)
    {
        var bytes = details.ToByteArray();
        return new PlacementTicket
        {
            Details = ByteString.CopyFrom(bytes),
            Signature = ByteString.CopyFrom(controlKey.Sign(bytes)),
            SigningKeyId = SigningKeyPair.KeyId(controlKey.PublicKey),
        };
    }

    /// <summary>Verifies a ticket against the trusted control keys and the offered envelope; null with a reason on failure.</summary>
    public static PlacementTicketDetails? Verify(
        PlacementTicket? ticket,
        IReadOnlyDictionary<string, byte[]> trustedControlKeys,
        ReadOnlySpan<byte> envelopeBytes,
        string expectedDeviceId,
        string expectedNetworkId,
        DateTimeOffset now,
        out string reason)
    {
        reason = "";
        if (ticket is null || ticket.Details.IsEmpty)
        {
            reason = "unsigned offer";
            return null;
        }

        if (!trustedControlKeys.TryGetValue(ticket.SigningKeyId, out var key) ||
            !SigningKeyPair.Verify(key, ticket.Details.Span, ticket.Signature.Span))
        {
            reason = "ticket signature invalid";
            return null;
        }

        var details = PlacementTicketDetails.Parser.ParseFrom(ticket.Details);
        if (details.DeviceId != expectedDeviceId)
        {
            reason = "ticket is for another device";
            return null;
        }

        if (details.NetworkId != expectedNetworkId)
        {
            reason = "ticket is for another network";
            return null;
        }

        if (details.ExpireTime is null || details.ExpireTime.ToDateTimeOffset() < now)
        {
            reason = "ticket expired";
            return null;
        }

        if (!string.Equals(details.EnvelopeSha256, Secrets.Sha256Hex(envelopeBytes), StringComparison.Ordinal))
        {
            reason = "envelope does not match the ticket";
            return null;
        }

        return details;
    }
}

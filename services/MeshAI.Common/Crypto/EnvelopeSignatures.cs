using System.Security.Cryptography;
using System.Text;
using Google.Protobuf;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Common.Crypto;

/// <summary>
/// The optional submitter signature of a <see cref="JobEnvelope"/> (docs/security.md, "Submitter signature"): ed25519
/// over <c>"meshai-envelope-v1\n" ‖ SHA-256(envelope with job_id, submitted_by_user_id, trace_id and auth_signature
/// cleared)</c>. Everything else the client sets is covered; the cleared fields are the ones control assigns.
/// </summary>
public static class EnvelopeSignatures
{
    private static readonly byte[] Context = Encoding.UTF8.GetBytes("meshai-envelope-v1\n");

    /// <summary>SHA-256 of the envelope with the server-assigned fields and the signature cleared.</summary>
    public static byte[] Digest(JobEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        var copy = envelope.Clone();
        copy.JobId = "";
        copy.SubmittedByUserId = "";
        copy.TraceId = "";
        copy.AuthSignature = null;
        return SHA256.HashData(copy.ToByteArray());
    }

    /// <summary>Signs <paramref name="envelope"/> in place with the submitter's key (replacing any earlier signature).</summary>
    public static void Sign(JobEnvelope envelope, SigningKeyPair submitterKey)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        ArgumentNullException.ThrowIfNull(submitterKey);
        envelope.AuthSignature = new SubmitterSignature
        {
            PublicKey = ByteString.CopyFrom(submitterKey.PublicKey),
            Signature = ByteString.CopyFrom(submitterKey.Sign(Message(envelope))),
        };
    }

    /// <summary>
    /// True when the envelope's auth_signature verifies against the public key it carries. A signed timeout_ms of 0
    /// ("server default") stays valid after control fills in the default.
    /// </summary>
    public static bool Verify(JobEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        var signature = envelope.AuthSignature;
        if (signature is null)
        {
            return false;
        }

        if (SigningKeyPair.Verify(signature.PublicKey.Span, Message(envelope), signature.Signature.Span))
        {
            return true;
        }

        if (envelope.TimeoutMs == 0)
        {
            return false;
        }

        var asSubmitted = envelope.Clone();
        asSubmitted.TimeoutMs = 0;
        return SigningKeyPair.Verify(signature.PublicKey.Span, Message(asSubmitted), signature.Signature.Span);
    }

    private static byte[] Message(JobEnvelope envelope) => [.. Context, .. Digest(envelope)];
}

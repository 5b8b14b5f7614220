using System.Text;
using Google.Protobuf;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Agent.Jobs;

/// <summary>
/// One job's token stream on this device (chat resume, docs/chat-resume.md): builds each <see cref="JobToken"/> — for the
/// submitter (sealed to the submitter's key for an encrypted job) and, for an encrypted job, a copy for a device that may continue the stream (sealed under the job's resume
/// key, which only the envelope's recipients can derive) — and opens a <see cref="StreamResume"/> that an
/// offer carries into the text to continue after.
/// </summary>
public sealed class JobTokenStream
{
    /// <summary>Most tokens a resume may carry (the chat handler's max_tokens limit).</summary>
    public const int MaxResumeTokens = 4096;

    /// <summary>Most UTF-8 bytes of resumed text.</summary>
    public const int MaxResumeTextBytes = 1 << 20;

    private readonly JobEnvelope _envelope;
    private readonly string _jobId;
    private readonly byte[]? _resumeKey;

    internal JobTokenStream(JobEnvelope envelope, string jobId, byte[]? resumeKey)
    {
        _envelope = envelope;
        _jobId = jobId;
        _resumeKey = resumeKey;
    }

    /// <summary>The frame for token <paramref name="index"/> of <paramref name="attempt"/>.</summary>
    public JobToken Frame(int attempt, string text, int index)
    {
        ArgumentNullException.ThrowIfNull(text);
        var frame = new JobToken { JobId = _jobId, Attempt = attempt, Index = index };
        if (!PayloadCrypto.IsEncrypted(_envelope))
        {
            frame.Token = ByteString.CopyFromUtf8(text);
        }
        else
        {
            // The submitter's copy is output like the result: sealed to the submitter (ephemeral key ‖ ciphertext, with its
            // nonce); clients open it (docs/gateway.md). The resume copy is sealed under the job's resume key.
            var (sealedToken, nonce) = PayloadCrypto.SealToSubmitter(Encoding.UTF8.GetBytes(text), _envelope.PayloadEncryption.SubmitterPublicKey.Span, _jobId);
            frame.Token = ByteString.CopyFrom(sealedToken);
            frame.Nonce = ByteString.CopyFrom(nonce);
        }

        if (_resumeKey is not null)
        {
            var (sealedText, resumeNonce) = PayloadCrypto.SealResumeText(_resumeKey, _jobId, index, Encoding.UTF8.GetBytes(text));
            frame.ResumeText = ByteString.CopyFrom(sealedText);
            frame.ResumeNonce = ByteString.CopyFrom(resumeNonce);
        }

        return frame;
    }

    /// <summary>
    /// The text earlier attempts delivered, to continue after: every token 0 … next_index − 1 exactly once and in order,
    /// opened with the resume key for an encrypted job. Throws <see cref="PayloadCryptoException"/> for a resume that is
    /// malformed, over its bounds or does not authenticate.
    /// </summary>
    public ChatResume Open(StreamResume resume)
    {
        ArgumentNullException.ThrowIfNull(resume);
        if (resume.NextIndex < 0 || resume.NextIndex > MaxResumeTokens || resume.Tokens.Count != resume.NextIndex)
        {
            throw new PayloadCryptoException($"resume carries {resume.Tokens.Count} tokens for next_index {resume.NextIndex} (at most {MaxResumeTokens})");
        }

        var text = new StringBuilder();
        var bytes = 0;
        for (var i = 0; i < resume.Tokens.Count; i++)
        {
            var token = resume.Tokens[i];
            if (token.Index != i)
            {
                throw new PayloadCryptoException($"resumed token {i} carries index {token.Index}");
            }

            byte[] plain;
            if (_resumeKey is null)
            {
                if (!token.Nonce.IsEmpty)
                {
                    throw new PayloadCryptoException("a plaintext job's resume carries a sealed token");
                }

                plain = token.Text.ToByteArray();
            }
            else
            {
                plain = PayloadCrypto.OpenResumeText(_resumeKey, _jobId, i, token.Text.Span, token.Nonce.Span);
            }

            bytes += plain.Length;
            if (bytes > MaxResumeTextBytes)
            {
                throw new PayloadCryptoException($"resumed text is over {MaxResumeTextBytes} bytes");
            }

            text.Append(Encoding.UTF8.GetString(plain));
        }

        return new ChatResume { AssistantText = text.ToString(), NextIndex = resume.NextIndex };
    }
}

using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;

namespace MeshAI.Common.Crypto;

/// <summary>
/// Per-chunk sealing of a chunked blob (docs/security.md item 9). A blob referenced by an end-to-end encrypted job is
/// sealed for that job: its key is <c>K_b = HKDF-SHA256(ikm = the job's content key, info = "meshai-blob-v1\n" +
/// network_id + "\n" + blob name)</c> for input blobs (or <c>"meshai-blob-result-v1\n" + job_id + "\n" + blob name</c> for
/// result blobs) — the submitting client draws the content key before it uploads, and the placed device unwraps it from
/// the envelope like the payload's, so control never holds a key. The sealed blob is a sequence of chunks of
/// <see cref="SealedChunkBytes"/> (the last one shorter), independent of the server's transfer chunk size: chunk <c>i</c>
/// of <c>n</c> sealed with XChaCha20-Poly1305 under <c>K_b</c>, nonce 16 zero bytes ‖ <c>i</c> (8 bytes big-endian),
/// associated data <c>"meshai-blob-chunk-v1\n" + i + "\n" + n</c>: a chunk cannot be reordered, dropped, duplicated,
/// truncated away or moved to another blob, job or network without its tag failing. The stored (and referenced) SHA-256
/// is the sealed bytes'. <see cref="BlobSealingStream"/> seals on the client's upload, <c>JobBlobFetcher</c> opens on the
/// agent, both streaming (docs/job-plane.md "Chunked blobs").
/// </summary>
public static class BlobSealing
{
    /// <summary>Bytes a sealed chunk adds (the Poly1305 tag).</summary>
    public const int TagBytes = 16;

    /// <summary>Bytes of every sealed chunk but the last (1 MiB: the server's default transfer chunk, so they line up).</summary>
    public const int SealedChunkBytes = 1024 * 1024;

    private static readonly AeadAlgorithm Aead = AeadAlgorithm.XChaCha20Poly1305;

    /// <summary>The key of input blob <paramref name="blobName"/> of a job in <paramref name="networkId"/>.</summary>
    public static byte[] InputBlobKey(ReadOnlySpan<byte> contentKey, string networkId, string blobName) =>
        Derive(contentKey, "meshai-blob-v1\n" + networkId + "\n" + blobName);

    /// <summary>The key of result blob <paramref name="blobName"/> of job <paramref name="jobId"/>.</summary>
    public static byte[] ResultBlobKey(ReadOnlySpan<byte> contentKey, string jobId, string blobName) =>
        Derive(contentKey, "meshai-blob-result-v1\n" + jobId + "\n" + blobName);

    /// <summary>Plaintext bytes per chunk for a server chunk size.</summary>
    public static int PlainChunkBytes(int chunkBytes) => chunkBytes > TagBytes ? chunkBytes - TagBytes : throw new ArgumentOutOfRangeException(nameof(chunkBytes), "a chunk must hold more than the tag");

    /// <summary>Chunks of a plaintext of <paramref name="plainBytes"/> (at least one: an empty blob is one sealed tag).</summary>
    public static long ChunkCount(long plainBytes, int chunkBytes)
    {
        var plain = PlainChunkBytes(chunkBytes);
        return Math.Max(1, (plainBytes + plain - 1) / plain);
    }

    /// <summary>The sealed size of a plaintext of <paramref name="plainBytes"/> (what is uploaded, hashed and stored).</summary>
    public static long SealedBytes(long plainBytes, int chunkBytes) => plainBytes + (ChunkCount(plainBytes, chunkBytes) * TagBytes);

    /// <summary>
    /// Chunks of a sealed blob of <paramref name="sealedBytes"/> in <see cref="SealedChunkBytes"/> chunks (the opener's side of
    /// <see cref="SealedBytes"/>); throws <see cref="PayloadCryptoException"/> for a size no sequence of sealed chunks has.
    /// </summary>
    public static long SealedChunkCount(long sealedBytes)
    {
        var count = (sealedBytes + SealedChunkBytes - 1) / SealedChunkBytes;
        if (count < 1 || sealedBytes - ((count - 1) * SealedChunkBytes) < TagBytes)
        {
            throw new PayloadCryptoException($"a sealed blob of {sealedBytes} bytes is not a sequence of sealed chunks");
        }

        return count;
    }

    /// <summary>Seals plaintext chunk <paramref name="index"/> of <paramref name="count"/> into <paramref name="sealedChunk"/> (plaintext length + 16 bytes).</summary>
    public static void SealChunk(ReadOnlySpan<byte> blobKey, long index, long count, ReadOnlySpan<byte> plaintext, Span<byte> sealedChunk)
    {
        using var key = new ChunkKey(blobKey);
        key.Seal(index, count, plaintext, sealedChunk);
    }

    /// <summary>Opens sealed chunk <paramref name="index"/> of <paramref name="count"/> into <paramref name="plaintext"/> (sealed length − 16); throws when it does not authenticate.</summary>
    public static void OpenChunk(ReadOnlySpan<byte> blobKey, long index, long count, ReadOnlySpan<byte> sealedChunk, Span<byte> plaintext)
    {
        using var key = new ChunkKey(blobKey);
        key.Open(index, count, sealedChunk, plaintext);
    }

    private static void RequireIndex(long index, long count)
    {
        if (count < 1 || index < 0 || index >= count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), $"chunk {index} of {count}");
        }
    }

    /// <summary>
    /// A blob key imported once (NSec's guarded key memory: one <c>sodium_malloc</c> and its page protection per blob, not
    /// per chunk) that seals and opens the blob's chunks with the nonce and associated data built on the stack. The same
    /// construction as <see cref="SealChunk"/>/<see cref="OpenChunk"/>, which are this type used once.
    /// </summary>
    public sealed class ChunkKey : IDisposable
    {
        private const int NonceBytes = 24;
        private const int MaxAssociatedDataBytes = 64; // "meshai-blob-chunk-v1\n" + two longs and a newline: at most 60
        private readonly Key _key;

        /// <summary>Imports <paramref name="blobKey"/> (32 bytes, from <see cref="InputBlobKey"/> or <see cref="ResultBlobKey"/>).</summary>
        public ChunkKey(ReadOnlySpan<byte> blobKey)
        {
            if (blobKey.Length != PayloadCrypto.KeySize)
            {
                throw new ArgumentException("blob key must be 32 bytes", nameof(blobKey));
            }

            _key = Key.Import(Aead, blobKey, KeyBlobFormat.RawSymmetricKey);
        }

        /// <summary>Seals plaintext chunk <paramref name="index"/> of <paramref name="count"/> into <paramref name="sealedChunk"/> (plaintext length + 16 bytes).</summary>
        public void Seal(long index, long count, ReadOnlySpan<byte> plaintext, Span<byte> sealedChunk)
        {
            RequireIndex(index, count);
            Span<byte> nonce = stackalloc byte[NonceBytes];
            Span<byte> ad = stackalloc byte[MaxAssociatedDataBytes];
            Aead.Encrypt(_key, Nonce(nonce, index), AssociatedData(ad, index, count), plaintext, sealedChunk);
        }

        /// <summary>Opens sealed chunk <paramref name="index"/> of <paramref name="count"/> into <paramref name="plaintext"/> (sealed length − 16); throws <see cref="PayloadCryptoException"/> when it does not authenticate.</summary>
        public void Open(long index, long count, ReadOnlySpan<byte> sealedChunk, Span<byte> plaintext)
        {
            RequireIndex(index, count);
            Span<byte> nonce = stackalloc byte[NonceBytes];
            Span<byte> ad = stackalloc byte[MaxAssociatedDataBytes];
            if (sealedChunk.Length < TagBytes || !Aead.Decrypt(_key, Nonce(nonce, index), AssociatedData(ad, index, count), sealedChunk, plaintext))
            {
                throw new PayloadCryptoException($"blob chunk {index} of {count} does not authenticate (tampered, reordered, truncated or another blob's)");
            }
        }

        /// <summary>Frees the imported key.</summary>
        public void Dispose() => _key.Dispose();

        // 16 zero bytes ‖ the chunk index, 8 bytes big-endian.
        private static ReadOnlySpan<byte> Nonce(Span<byte> nonce, long index)
        {
            nonce[..16].Clear();
            BinaryPrimitives.WriteInt64BigEndian(nonce[16..], index);
            return nonce;
        }

        // "meshai-blob-chunk-v1\n" + index + "\n" + count, UTF-8 (ASCII digits, invariant culture).
        private static ReadOnlySpan<byte> AssociatedData(Span<byte> buffer, long index, long count)
        {
            if (!System.Text.Unicode.Utf8.TryWrite(buffer, CultureInfo.InvariantCulture, $"meshai-blob-chunk-v1\n{index}\n{count}", out var written))
            {
                throw new InvalidOperationException("associated data does not fit its buffer"); // unreachable: two longs fit
            }

            return buffer[..written];
        }
    }

    private static byte[] Derive(ReadOnlySpan<byte> contentKey, string info)
    {
        if (contentKey.Length != PayloadCrypto.KeySize)
        {
            throw new ArgumentException("content key must be 32 bytes", nameof(contentKey));
        }

        var key = new byte[PayloadCrypto.KeySize];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, contentKey, key, [], Encoding.UTF8.GetBytes(info));
        return key;
    }
}

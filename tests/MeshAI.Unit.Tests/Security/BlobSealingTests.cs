using System.Security.Cryptography;
using MeshAI.Common.Crypto;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Security;

/// <summary>
/// Per-chunk blob sealing (docs/security.md item 9): a sealed blob opens chunk by chunk with the same key, every sealed chunk
/// but the last is exactly the server's chunk size, and a flipped byte, swapped chunks, a dropped last chunk, another blob's
/// key or another network's key all fail authentication.
/// </summary>
[TestFixture]
[Category("Unit")]
public sealed class BlobSealingTests
{
    private const int ChunkBytes = 64 * 1024;

    private static (byte[] Key, byte[] Plain, List<byte[]> Sealed) SealedBlob(int plainBytes)
    {
        var contentKey = RandomNumberGenerator.GetBytes(PayloadCrypto.KeySize);
        var key = BlobSealing.InputBlobKey(contentKey, "net_a", "input");
        var plain = RandomNumberGenerator.GetBytes(plainBytes);
        var count = BlobSealing.ChunkCount(plain.Length, ChunkBytes);
        var per = BlobSealing.PlainChunkBytes(ChunkBytes);
        var sealedChunks = new List<byte[]>();
        for (var i = 0L; i < count; i++)
        {
            var part = plain.AsSpan((int)(i * per), (int)Math.Min(per, plain.Length - (i * per)));
            var output = new byte[part.Length + BlobSealing.TagBytes];
            BlobSealing.SealChunk(key, i, count, part, output);
            sealedChunks.Add(output);
        }

        return (key, plain, sealedChunks);
    }

    private static byte[] Open(byte[] key, List<byte[]> chunks, long count)
    {
        using var plain = new MemoryStream();
        for (var i = 0; i < chunks.Count; i++)
        {
            var output = new byte[chunks[i].Length - BlobSealing.TagBytes];
            BlobSealing.OpenChunk(key, i, count, chunks[i], output);
            plain.Write(output);
        }

        return plain.ToArray();
    }

    [Test]
    public void A_sealed_blob_opens_chunk_by_chunk_and_its_chunks_fit_the_server_chunk_size()
    {
        var (key, plain, chunks) = SealedBlob((3 * ChunkBytes) + 1000);
        Assert.That(chunks.Take(chunks.Count - 1).Select(c => c.Length), Is.All.EqualTo(ChunkBytes), "every sealed chunk but the last is exactly chunk_bytes");
        Assert.That(chunks.Sum(c => (long)c.Length), Is.EqualTo(BlobSealing.SealedBytes(plain.Length, ChunkBytes)));
        Assert.That(Open(key, chunks, chunks.Count), Is.EqualTo(plain));
        Assert.That(chunks.Any(c => c.AsSpan().IndexOf(plain.AsSpan(0, 32)) >= 0), Is.False, "no plaintext in the sealed chunks");
    }

    [Test]
    public void Tampering_reordering_truncation_and_foreign_keys_fail_authentication()
    {
        var (key, _, chunks) = SealedBlob((3 * ChunkBytes) + 1000);
        var flipped = chunks.Select(c => (byte[])c.Clone()).ToList();
        flipped[1][100] ^= 0x01;
        Assert.Throws<PayloadCryptoException>(() => Open(key, flipped, chunks.Count), "a flipped byte");

        var swapped = new List<byte[]> { chunks[1], chunks[0], chunks[2], chunks[3] };
        Assert.Throws<PayloadCryptoException>(() => Open(key, swapped, chunks.Count), "swapped chunks");

        Assert.Throws<PayloadCryptoException>(() => Open(key, chunks.Take(3).ToList(), 3), "the last chunk dropped: n is bound into every chunk");

        var contentKey = RandomNumberGenerator.GetBytes(PayloadCrypto.KeySize);
        Assert.That(BlobSealing.InputBlobKey(contentKey, "net_a", "input"), Is.Not.EqualTo(BlobSealing.InputBlobKey(contentKey, "net_b", "input")), "per network");
        Assert.That(BlobSealing.InputBlobKey(contentKey, "net_a", "input"), Is.Not.EqualTo(BlobSealing.InputBlobKey(contentKey, "net_a", "other")), "per blob name");
        Assert.That(BlobSealing.ResultBlobKey(contentKey, "job_1", "input"), Is.Not.EqualTo(BlobSealing.InputBlobKey(contentKey, "job_1", "input")), "results and inputs never share a key");
        Assert.Throws<PayloadCryptoException>(() => Open(BlobSealing.InputBlobKey(contentKey, "net_a", "input"), chunks, chunks.Count), "another job's key");
    }

    [Test]
    public void The_sealing_stream_yields_the_sealed_chunks_of_1_MiB_deterministically_and_rewinds_for_the_second_pass()
    {
        var contentKey = RandomNumberGenerator.GetBytes(PayloadCrypto.KeySize);
        var key = BlobSealing.InputBlobKey(contentKey, "net_a", "input");
        var plain = RandomNumberGenerator.GetBytes((2 * BlobSealing.SealedChunkBytes) + 5);
        using var sealedStream = new BlobSealingStream(new MemoryStream(plain), key);
        Assert.That(sealedStream.Length, Is.EqualTo(BlobSealing.SealedBytes(plain.Length, BlobSealing.SealedChunkBytes)));
        var first = SHA256.HashData(sealedStream);
        sealedStream.Position = 0;
        using var copy = new MemoryStream();
        var buffer = new byte[300_001]; // odd reads across chunk boundaries
        int n;
        while ((n = sealedStream.Read(buffer)) > 0)
        {
            copy.Write(buffer, 0, n);
        }

        var bytes = copy.ToArray();
        Assert.That(SHA256.HashData(bytes), Is.EqualTo(first), "both passes see the same sealed bytes (the upload hashes, then sends)");
        var count = BlobSealing.ChunkCount(plain.Length, BlobSealing.SealedChunkBytes);
        Assert.That(count, Is.EqualTo(3));
        var chunks = Enumerable.Range(0, (int)count).Select(i => bytes.AsSpan(i * BlobSealing.SealedChunkBytes, Math.Min(BlobSealing.SealedChunkBytes, bytes.Length - (i * BlobSealing.SealedChunkBytes))).ToArray()).ToList();
        Assert.That(Open(key, chunks, count), Is.EqualTo(plain), "the stream's chunks are BlobSealing's chunks");
        Assert.That(bytes.AsSpan().IndexOf(plain.AsSpan(100, 32)), Is.EqualTo(-1), "no plaintext in the sealed stream");
        Assert.Throws<ArgumentOutOfRangeException>(() => sealedStream.Position = 17, "seeks to chunk boundaries only");
    }

    [Test]
    public void The_opener_counts_the_chunks_the_sealer_made_and_refuses_other_sizes()
    {
        foreach (var plain in new long[] { 0, 1, BlobSealing.SealedChunkBytes - BlobSealing.TagBytes, BlobSealing.SealedChunkBytes, 3L * BlobSealing.SealedChunkBytes + 5 })
        {
            var sealedBytes = BlobSealing.SealedBytes(plain, BlobSealing.SealedChunkBytes);
            Assert.That(BlobSealing.SealedChunkCount(sealedBytes), Is.EqualTo(BlobSealing.ChunkCount(plain, BlobSealing.SealedChunkBytes)), $"{plain} plaintext bytes");
        }

        Assert.Throws<PayloadCryptoException>(() => BlobSealing.SealedChunkCount(0), "not even one tag");
        Assert.Throws<PayloadCryptoException>(() => BlobSealing.SealedChunkCount(BlobSealing.TagBytes - 1), "shorter than a tag");
        Assert.Throws<PayloadCryptoException>(() => BlobSealing.SealedChunkCount(BlobSealing.SealedChunkBytes + 5), "a last chunk shorter than its tag");
    }
}

using System.Security.Cryptography;
using Google.Protobuf;
using MeshAI.Agent.Jobs;
using MeshAI.Agent.State;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
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

    [Test]
    public void A_chunk_key_imported_once_seals_the_same_bytes_as_the_one_shot_calls_and_opens_them()
    {
        var (key, plain, chunks) = SealedBlob((3 * ChunkBytes) + 1000);
        var per = BlobSealing.PlainChunkBytes(ChunkBytes);
        using var chunkKey = new BlobSealing.ChunkKey(key);
        for (var i = 0; i < chunks.Count; i++)
        {
            var part = plain.AsSpan(i * per, Math.Min(per, plain.Length - (i * per)));
            var output = new byte[part.Length + BlobSealing.TagBytes];
            chunkKey.Seal(i, chunks.Count, part, output);
            Assert.That(output, Is.EqualTo(chunks[i]), $"chunk {i}: the same nonce, associated data and key as SealChunk");
            var opened = new byte[part.Length];
            chunkKey.Open(i, chunks.Count, chunks[i], opened);
            Assert.That(opened, Is.EqualTo(part.ToArray()));
        }

        var flipped = (byte[])chunks[2].Clone();
        flipped[7] ^= 0x80;
        Assert.Throws<PayloadCryptoException>(() => chunkKey.Open(2, chunks.Count, flipped, new byte[flipped.Length - BlobSealing.TagBytes]), "a flipped byte");
        Assert.Throws<PayloadCryptoException>(() => chunkKey.Open(1, chunks.Count, chunks[2], new byte[chunks[2].Length - BlobSealing.TagBytes]), "a chunk at another index");
        Assert.Throws<PayloadCryptoException>(() => chunkKey.Open(2, chunks.Count + 1, chunks[2], new byte[chunks[2].Length - BlobSealing.TagBytes]), "another chunk count");
        Assert.Throws<ArgumentException>(() => _ = new BlobSealing.ChunkKey(new byte[16]), "a blob key is 32 bytes");
    }

    [Test]
    public void A_reader_with_room_for_a_chunk_gets_the_same_sealed_bytes_each_chunk_sealed_once_per_pass()
    {
        var contentKey = RandomNumberGenerator.GetBytes(PayloadCrypto.KeySize);
        var key = BlobSealing.InputBlobKey(contentKey, "net_a", "input");
        var plain = RandomNumberGenerator.GetBytes((3 * BlobSealing.SealedChunkBytes) + 12_345);
        var counted = new CountingStream(plain);
        using var sealedStream = new BlobSealingStream(counted, key);
        var whole = ReadAll(sealedStream, BlobSealing.SealedChunkBytes); // sealed straight into the reader's buffer
        Assert.That(counted.BytesRead, Is.EqualTo(plain.Length), "one pass reads (and seals) each chunk once");
        Assert.That(whole, Has.Length.EqualTo(sealedStream.Length));

        sealedStream.Position = 0;
        Assert.That(ReadAll(sealedStream, 70_001), Is.EqualTo(whole), "a reader with small buffers gets the same bytes (the hash pass)");
        Assert.That(counted.BytesRead, Is.EqualTo(2L * plain.Length));

        static byte[] ReadAll(Stream stream, int bufferBytes)
        {
            using var copy = new MemoryStream();
            var buffer = new byte[bufferBytes];
            int n;
            while ((n = stream.Read(buffer)) > 0)
            {
                copy.Write(buffer, 0, n);
            }

            return copy.ToArray();
        }
    }

    [Test]
    public async Task An_encrypted_job_unwraps_its_content_key_once_for_all_its_blobs_and_a_device_without_it_fails_with_BLOB_KEY_UNAVAILABLE()
    {
        var device = AgentKeys.Generate();
        var contentKey = RandomNumberGenerator.GetBytes(PayloadCrypto.KeySize);
        var envelope = new JobEnvelope
        {
            NetworkId = "net_a",
            WorkloadId = WorkloadClass.DiagnosticEcho,
            InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { HashBlob = "input" } }.ToByteString() },
        };
        PayloadCrypto.EncryptEnvelope(envelope, [new("dev_a", device.EncryptionPublicKey)], EncryptionKeyPair.Generate().PublicKey, contentKey);

        using (var keys = new EndToEndPayload(device, "dev_a").InputBlobKeys(envelope))
        {
            Assert.That(keys, Is.Not.Null);
            Assert.That(keys!.For("input"), Is.EqualTo(BlobSealing.InputBlobKey(contentKey, "net_a", "input")), "the key the submitter sealed under");
            Assert.That(keys.For("other"), Is.EqualTo(BlobSealing.InputBlobKey(contentKey, "net_a", "other")));
        }

        var unwraps = 0;
        byte[]? unwrapped = null;
        using (var counting = new InputBlobKeys(
            () =>
            {
                unwraps++;
                return unwrapped = (byte[])contentKey.Clone();
            },
            "net_a"))
        {
            _ = counting.For("a");
            _ = counting.For("b");
        }

        Assert.That(unwraps, Is.EqualTo(1));
        Assert.That(unwrapped, Is.All.EqualTo((byte)0), "the content key is zeroed when the job's blobs are fetched");

        Assert.That(new EndToEndPayload(device, "dev_a").InputBlobKeys(new JobEnvelope { NetworkId = "net_a" }), Is.Null, "an unencrypted job's blobs are stored as uploaded");

        // A device the content key was not wrapped for: refused before any read, with its own reason (retryable).
        var folder = Directory.CreateTempSubdirectory("meshai-blobkeys").FullName;
        try
        {
            var enrollment = new AgentEnrollment("https://127.0.0.1:9", "00", "https://127.0.0.1:9", "relay_1", "dev_b", "net_a", "b", [], []);
            using var fetcher = new JobBlobFetcher(enrollment, device, folder);
            var blob = new Blob { Name = "input", RefUri = BlobTransfer.RefPrefix + new string('a', 64) };
            var ex = await Assert.ThrowsAsync<PayloadCryptoException>(() => fetcher.FetchAsync(
                new PlacementTicketDetails { NetworkId = "net_a", JobId = "job_1", Attempt = 1 }, [blob], new EndToEndPayload(device, "dev_b").InputBlobKeys(envelope), CancellationToken.None));
            Assert.That(ex!.Message, Does.StartWith(ErrorReasons.BlobKeyUnavailable + ": input blob \"input\""));
            Assert.That(ex.Message, Does.Not.Contain(ErrorReasons.BlobChunkUnauthenticated), "nothing was read: no chunk failed");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    // A read-only memory stream that counts the bytes read from it.
    private sealed class CountingStream(byte[] bytes) : MemoryStream(bytes, writable: false)
    {
        public long BytesRead { get; private set; }

        // A derived MemoryStream's span and async reads go through this overload.

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = base.Read(buffer, offset, count);
            BytesRead += n;
            return n;
        }
    }
}

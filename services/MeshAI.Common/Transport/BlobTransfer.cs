using System.Buffers;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Common.Transport;

/// <summary>
/// The client side of chunked blobs (meshai.job.v1.BlobService, docs/job-plane.md "Chunked blobs"): uploads a blob as
/// chunks of the server's chunk size with at most the server's <c>max_chunks_in_flight</c> calls outstanding (memory:
/// that many chunk buffers, never the blob), and reads one back as a stream of ordered chunks into a destination stream,
/// checking the chunk order and the SHA-256 of the whole blob.
/// </summary>
public static class BlobTransfer
{
    /// <summary>The scheme of a stored blob's reference: <c>meshai-blob:&lt;sha256&gt;</c>.</summary>
    public const string RefPrefix = "meshai-blob:";

    /// <summary>The digest of a stored-blob reference (<c>ref_uri = "meshai-blob:&lt;sha256&gt;"</c>); null for inline blobs and other references.</summary>
    public static string? StoredDigest(Blob blob) =>
        blob is { SourceCase: Blob.SourceOneofCase.RefUri } && blob.RefUri.StartsWith(RefPrefix, StringComparison.Ordinal) ? blob.RefUri[RefPrefix.Length..] : null;

    /// <summary>Uploads <paramref name="content"/> (seekable: hashed first, then sent) and returns the stored blob.</summary>
    public static async Task<Blob> UploadAsync(BlobService.BlobServiceClient client, string networkId, Stream content, string contentType = "application/octet-stream", CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        var start = content.Position;
        var sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(content, ct));
        content.Position = start;
        return await UploadHashedAsync(client, networkId, content, sha256, contentType, ct);
    }

    /// <summary>
    /// Uploads <paramref name="content"/> reading it <b>once</b>: its bytes are hashed while they are copied into a
    /// temporary spool file (deleted when closed), then sent from the spool. For a stream whose every read costs work —
    /// a <see cref="Crypto.BlobSealingStream"/>, which would seal each chunk again on a second read — instead of
    /// <see cref="UploadAsync(BlobService.BlobServiceClient, string, Stream, string, CancellationToken)"/>, which reads it
    /// twice (the digest is announced before the first chunk is sent). The spool holds what the stream yields (a sealed
    /// blob's ciphertext), on disk, never in memory: one <see cref="SpoolChunkBytes"/> buffer at a time.
    /// </summary>
    public static async Task<Blob> UploadSpooledAsync(BlobService.BlobServiceClient client, string networkId, Stream content, string contentType = "application/octet-stream", CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        var path = Path.Combine(Path.GetTempPath(), "meshai-upload-" + Guid.NewGuid().ToString("N") + ".spool");
        await using var spool = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 0, FileOptions.DeleteOnClose);
        var sha256 = await CopyHashingAsync(content, spool, ct);
        spool.Position = 0;
        return await UploadHashedAsync(client, networkId, spool, sha256, contentType, ct);
    }

    /// <summary>Bytes read (and written to the spool) at a time by <see cref="UploadSpooledAsync"/>: one sealed chunk.</summary>
    public const int SpoolChunkBytes = Crypto.BlobSealing.SealedChunkBytes;

    /// <summary>Copies <paramref name="source"/> to its end into <paramref name="destination"/>; returns the SHA-256 (lower-case hex) of the bytes copied.</summary>
    public static async Task<string> CopyHashingAsync(Stream source, Stream destination, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(SpoolChunkBytes);
        try
        {
            int n;
            while ((n = await source.ReadAsync(buffer.AsMemory(0, SpoolChunkBytes), ct)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                await destination.WriteAsync(buffer.AsMemory(0, n), ct);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Uploads <paramref name="content"/> (from its position to its end) whose SHA-256 is <paramref name="sha256"/>, read once; returns the stored blob.</summary>
    public static async Task<Blob> UploadHashedAsync(BlobService.BlobServiceClient client, string networkId, Stream content, string sha256, string contentType, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(content);
        var size = content.Length - content.Position;
        var started = await client.StartBlobUploadAsync(new StartBlobUploadRequest { NetworkId = networkId, SizeBytes = size, Sha256 = sha256, ContentType = contentType }, cancellationToken: ct);
        if (started.Blob is { } existing)
        {
            return existing;
        }

        var inFlight = new List<Task>();
        var pool = ArrayPool<byte>.Shared;
        for (var index = 0; index < started.ChunkCount; index++)
        {
            var length = (int)Math.Min(started.ChunkBytes, size - ((long)index * started.ChunkBytes));
            var buffer = pool.Rent(length);
            await content.ReadExactlyAsync(buffer.AsMemory(0, length), ct);
            inFlight.Add(SendAsync(index, buffer, length));
            if (inFlight.Count >= Math.Max(1, started.MaxChunksInFlight))
            {
                var done = await Task.WhenAny(inFlight);
                inFlight.Remove(done);
                await done;
            }
        }

        await Task.WhenAll(inFlight);
        return (await client.FinishBlobUploadAsync(new FinishBlobUploadRequest { NetworkId = networkId, UploadId = started.UploadId }, cancellationToken: ct)).Blob;

        async Task SendAsync(int index, byte[] buffer, int length)
        {
            try
            {
                await client.UploadBlobChunkAsync(new UploadBlobChunkRequest { NetworkId = networkId, UploadId = started.UploadId, Index = index, Data = UnsafeByteOperations.UnsafeWrap(buffer.AsMemory(0, length)) }, cancellationToken: ct);
            }
            finally
            {
                pool.Return(buffer);
            }
        }
    }

    /// <summary>Reads the blob <paramref name="sha256"/> into <paramref name="destination"/>; throws <see cref="InvalidDataException"/> when a chunk is out of order or the bytes do not hash to <paramref name="sha256"/>. Returns the bytes written.</summary>
    public static async Task<long> DownloadAsync(BlobService.BlobServiceClient client, string networkId, string sha256, Stream destination, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(destination);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var call = client.ReadBlob(new ReadBlobRequest { NetworkId = networkId, Sha256 = sha256 }, cancellationToken: ct);
        long written = 0;
        long size = -1;
        var expected = 0;
        await foreach (var chunk in call.ResponseStream.ReadAllAsync(ct))
        {
            if (chunk.Index != expected)
            {
                throw new InvalidDataException($"blob {sha256}: chunk {chunk.Index} arrived where chunk {expected} was due");
            }

            if (expected == 0)
            {
                size = chunk.SizeBytes;
            }

            hash.AppendData(chunk.Data.Span);
            await destination.WriteAsync(chunk.Data.Memory, ct);
            written += chunk.Data.Length;
            expected++;
        }

        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (written != size || !string.Equals(actual, sha256, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"blob {sha256}: received {written} of {size} bytes hashing to {actual}");
        }

        return written;
    }
}

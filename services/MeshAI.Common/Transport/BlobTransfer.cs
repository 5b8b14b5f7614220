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
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(content);
        var start = content.Position;
        var size = content.Length - start;
        var sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(content, ct));
        var started = await client.StartBlobUploadAsync(new StartBlobUploadRequest { NetworkId = networkId, SizeBytes = size, Sha256 = sha256, ContentType = contentType }, cancellationToken: ct);
        if (started.Blob is { } existing)
        {
            return existing;
        }

        content.Position = start;
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

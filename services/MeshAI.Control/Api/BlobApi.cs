using Google.Protobuf;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Blobs;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Api;

/// <summary>meshai.job.v1.BlobService: chunked blob upload (start, chunks, finish), chunked read by members, and the placed device's read of its job's input blobs (docs/job-plane.md "Chunked blobs").</summary>
public sealed class BlobApi(BlobStore store, JobBlobAccess jobBlobs, NetworkAccess access, SessionAuthenticator auth, IOptions<ControlPlaneOptions> options) : BlobService.BlobServiceBase
{
    /// <inheritdoc />
    public override async Task<StartBlobUploadResponse> StartBlobUpload(StartBlobUploadRequest request, ServerCallContext context)
    {
        await access.RequireMemberCachedAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        var started = store.Start(request.NetworkId, request.SizeBytes, request.Sha256, request.ContentType);
        return new StartBlobUploadResponse
        {
            UploadId = started.UploadId,
            ChunkBytes = started.ChunkBytes,
            ChunkCount = started.ChunkCount,
            MaxChunksInFlight = options.Value.Blobs.MaxChunksInFlight,
            Blob = started.Existing,
        };
    }

    /// <inheritdoc />
    public override async Task<UploadBlobChunkResponse> UploadBlobChunk(UploadBlobChunkRequest request, ServerCallContext context)
    {
        await access.RequireMemberCachedAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        return new UploadBlobChunkResponse { ChunksReceived = await store.WriteChunkAsync(request.NetworkId, request.UploadId, request.Index, request.Data.Memory, context.CancellationToken) };
    }

    /// <inheritdoc />
    public override async Task<FinishBlobUploadResponse> FinishBlobUpload(FinishBlobUploadRequest request, ServerCallContext context)
    {
        await access.RequireMemberCachedAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        return new FinishBlobUploadResponse { Blob = await store.FinishAsync(request.NetworkId, request.UploadId, context.CancellationToken) };
    }

    /// <inheritdoc />
    public override async Task ReadBlob(ReadBlobRequest request, IServerStreamWriter<ReadBlobResponse> responseStream, ServerCallContext context)
    {
        await access.RequireMemberCachedAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken);
        await StreamAsync(request.NetworkId, request.Sha256, request.FirstIndex, frame => responseStream.WriteAsync(frame, context.CancellationToken), context.CancellationToken);
    }

    /// <inheritdoc />
    public override async Task ReadJobBlob(ReadJobBlobRequest request, IServerStreamWriter<ReadJobBlobResponse> responseStream, ServerCallContext context)
    {
        await jobBlobs.RequireAsync(request, context);
        await StreamAsync(request.NetworkId, request.Sha256, request.FirstIndex, frame => responseStream.WriteAsync(new ReadJobBlobResponse { Chunk = frame }, context.CancellationToken), context.CancellationToken);
    }

    private async Task StreamAsync(string networkId, string sha256, int firstIndex, Func<ReadBlobResponse, Task> write, CancellationToken ct)
    {
        await using var file = store.OpenRead(networkId, sha256);
        var chunkBytes = store.ChunkBytes;
        var size = file.Length;
        var count = BlobStore.ChunkCount(size, chunkBytes);
        if (firstIndex < 0 || firstIndex >= count)
        {
            throw RpcErrors.InvalidArgument("first_index", $"the blob has {count} chunks of {chunkBytes} bytes (0…{count - 1})", ErrorReasons.BlobChunkOutOfRange);
        }

        // One chunk buffer per call, wrapped without a copy: WriteAsync has serialized the frame when it completes, so the
        // buffer is reused only after the transport took its bytes (back-pressure: HTTP/2 flow control pauses the loop).
        var buffer = new byte[chunkBytes];
        file.Position = (long)firstIndex * chunkBytes;
        for (var index = firstIndex; index < count; index++)
        {
            var n = await file.ReadAtLeastAsync(buffer, (int)Math.Min(chunkBytes, size - file.Position), throwOnEndOfStream: true, ct);
            var frame = new ReadBlobResponse { Index = index, Data = UnsafeByteOperations.UnsafeWrap(buffer.AsMemory(0, n)) };
            if (index == firstIndex)
            {
                frame.SizeBytes = size;
                frame.ChunkBytes = chunkBytes;
            }

            await write(frame);
        }
    }
}

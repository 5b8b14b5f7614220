using System.ComponentModel.DataAnnotations;

namespace MeshAI.Control.Blobs;

/// <summary>Chunked blob bounds (configuration section <c>Control:Blobs</c>); docs/job-plane.md "Chunked blobs" explains each.</summary>
public sealed class BlobOptions
{
    /// <summary>Largest blob one upload may announce (default 256 MiB: a 64 MiB payload with room for its result).</summary>
    [Range(1, 16L * 1024 * 1024 * 1024)]
    public long MaxBlobBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Every chunk but the last is this long (default 1 MiB: well below the 16 MiB gRPC message limit).</summary>
    [Range(MinChunkBytes, MaxChunkBytes)]
    public int ChunkBytes { get; set; } = 1024 * 1024;

    /// <summary>UploadBlobChunk calls a client should keep in flight (told in StartBlobUploadResponse).</summary>
    [Range(1, 64)]
    public int MaxChunksInFlight { get; set; } = 4;

    /// <summary>Unfinished uploads one network may hold at once (each holds one partial file on disk, never memory).</summary>
    [Range(1, 1024)]
    public int MaxUploadsPerNetwork { get; set; } = 8;

    /// <summary>Bytes of stored blobs (plus announced, unfinished uploads) one network may hold (default 2 GiB).</summary>
    [Range(1, long.MaxValue)]
    public long MaxStoredBytesPerNetwork { get; set; } = 2L * 1024 * 1024 * 1024;

    /// <summary>An upload with no chunk for this long is discarded (its partial file deleted).</summary>
    [Range(10, 86_400)]
    public int UploadIdleSeconds { get; set; } = 600;

    /// <summary>A stored blob is deleted this long after it was stored.</summary>
    [Range(1, 24 * 365)]
    public int RetentionHours { get; set; } = 24;

    /// <summary>Smallest chunk size the option accepts (64 KiB).</summary>
    public const int MinChunkBytes = 64 * 1024;

    /// <summary>Largest chunk size the option accepts (8 MiB, half the message limit); the request bound of UploadBlobChunkRequest.data.</summary>
    public const int MaxChunkBytes = 8 * 1024 * 1024;
}

using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;

namespace MeshAI.Control.Blobs;

/// <summary>
/// The chunked blob store (docs/job-plane.md "Chunked blobs"): content-addressed files per network under
/// <c>{data dir}/blobs/{network}/{sha256}</c>. An upload is one partial file written chunk by chunk at its offset (chunks
/// may arrive in any order and a repeated chunk overwrites itself), so no blob is ever held in memory: one chunk per call
/// at most. Chunks that arrive in order are hashed (SHA-256) as they are written; finishing checks that every chunk
/// arrived, hashes the rest of the file (all of it if a chunk was sent twice) against the announced digest and moves it
/// into place. Unfinished uploads live in this process only (a restart discards them; blobs stay); uploads
/// idle for <see cref="BlobOptions.UploadIdleSeconds"/> and blobs not stored or announced again for
/// <see cref="BlobOptions.RetentionHours"/> are refused at once and deleted by the sweep that runs when an upload starts.
/// </summary>
public sealed partial class BlobStore(IOptions<ControlPlaneOptions> options, TimeProvider clock)
{
    /// <summary>The scheme of a stored blob's reference: <c>meshai-blob:&lt;sha256&gt;</c>.</summary>
    public const string RefPrefix = MeshAI.Common.Transport.BlobTransfer.RefPrefix;

    private readonly ConcurrentDictionary<string, Upload> _uploads = new(StringComparer.Ordinal);
    private readonly object _startGate = new();

    private BlobOptions Limits => options.Value.Blobs;

    private string Root => Path.Combine(options.Value.DataDir, "blobs");

    /// <summary>An upload started: its id and shape, or the blob when the network stores it already.</summary>
    public sealed record Started(string UploadId, int ChunkBytes, int ChunkCount, Blob? Existing);

    /// <summary>Announces a blob of <paramref name="size"/> bytes hashing to <paramref name="sha256"/>.</summary>
    public Started Start(string networkId, long size, string sha256, string contentType)
    {
        RequireDigest(sha256, "sha256");
        if (size <= 0)
        {
            throw RpcErrors.InvalidArgument("size_bytes", "must be positive");
        }

        var limits = Limits;
        if (size > limits.MaxBlobBytes)
        {
            throw RpcErrors.ResourceExhausted("size_bytes", $"a blob may hold at most {limits.MaxBlobBytes} bytes (Control:Blobs:MaxBlobBytes); this one announces {size}", ErrorReasons.BlobTooLarge);
        }

        var dir = NetworkDir(networkId);
        var path = Path.Combine(dir, sha256);
        var chunkCount = ChunkCount(size, limits.ChunkBytes);
        if (File.Exists(path) && new FileInfo(path).Length == size)
        {
            File.SetLastWriteTimeUtc(path, clock.GetUtcNow().UtcDateTime); // announced again: its retention starts over
            return new Started("", limits.ChunkBytes, chunkCount, Describe(sha256, size, contentType));
        }

        lock (_startGate)
        {
            Sweep(networkId, dir);
            var open = _uploads.Values.Where(u => u.NetworkId == networkId).ToList();
            if (open.Count >= limits.MaxUploadsPerNetwork)
            {
                throw RpcErrors.ResourceExhausted("network " + networkId, $"the network has {open.Count} unfinished blob uploads (Control:Blobs:MaxUploadsPerNetwork); finish them or wait {limits.UploadIdleSeconds} s for idle ones to expire", ErrorReasons.BlobUploadsInFlight);
            }

            var stored = Directory.Exists(dir) ? new DirectoryInfo(dir).EnumerateFiles().Sum(f => f.Length) : 0;
            var held = stored + open.Sum(u => u.Size) + size;
            if (held > limits.MaxStoredBytesPerNetwork)
            {
                throw RpcErrors.ResourceExhausted("network " + networkId, $"the network's blobs would hold {held} bytes, above Control:Blobs:MaxStoredBytesPerNetwork ({limits.MaxStoredBytesPerNetwork}); stored blobs expire after {limits.RetentionHours} h", ErrorReasons.BlobStoreFull);
            }

            var id = "upl_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            var partial = Path.Combine(dir, "uploads", id);
            Directory.CreateDirectory(Path.GetDirectoryName(partial)!);
            var handle = File.OpenHandle(partial, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.None, preallocationSize: size);
            _uploads[id] = new Upload(id, networkId, sha256, size, contentType, limits.ChunkBytes, chunkCount, partial, handle, clock.GetUtcNow());
            return new Started(id, limits.ChunkBytes, chunkCount, null);
        }
    }

    /// <summary>Writes chunk <paramref name="index"/> of an upload at its offset; returns the distinct chunks received so far.</summary>
    public async Task<int> WriteChunkAsync(string networkId, string uploadId, int index, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        var upload = Find(networkId, uploadId);
        if (index < 0 || index >= upload.ChunkCount)
        {
            throw RpcErrors.InvalidArgument("index", $"chunk {index} is outside the upload's {upload.ChunkCount} chunks (0…{upload.ChunkCount - 1})", ErrorReasons.BlobChunkOutOfRange);
        }

        var offset = (long)index * upload.ChunkBytes;
        var expected = (int)Math.Min(upload.ChunkBytes, upload.Size - offset);
        if (data.Length != expected)
        {
            throw RpcErrors.InvalidArgument("data", $"chunk {index} must hold {expected} bytes (chunk_bytes {upload.ChunkBytes}; the last chunk holds the rest), not {data.Length}", ErrorReasons.BlobChunkSizeMismatch);
        }

        upload.Touch(clock.GetUtcNow());
        await upload.WriteAsync(index, offset, data, ct);
        return upload.Received;
    }

    /// <summary>Ends an upload: all chunks present and the SHA-256 right, the blob is stored; otherwise a precondition failure.</summary>
    public async Task<Blob> FinishAsync(string networkId, string uploadId, CancellationToken ct)
    {
        var upload = Find(networkId, uploadId);
        if (upload.FirstMissing() is { } missing)
        {
            throw RpcErrors.FailedPrecondition(ErrorReasons.BlobChunkMissing, "upload " + uploadId, $"chunk {missing} of {upload.ChunkCount} never arrived ({upload.Received} received); send the missing chunks and finish again");
        }

        if (!_uploads.TryRemove(uploadId, out _))
        {
            throw RpcErrors.NotFound("blob upload", uploadId); // a concurrent FinishBlobUpload won
        }

        var actual = await upload.HashAndCloseAsync(ct);
        if (!string.Equals(actual, upload.Sha256, StringComparison.Ordinal))
        {
            File.Delete(upload.PartialPath);
            throw RpcErrors.FailedPrecondition(ErrorReasons.BlobHashMismatch, "upload " + uploadId, $"the uploaded bytes hash to {actual}, not the announced {upload.Sha256}; the upload is discarded");
        }

        File.Move(upload.PartialPath, Path.Combine(NetworkDir(networkId), upload.Sha256), overwrite: true);
        return Describe(upload.Sha256, upload.Size, upload.ContentType);
    }

    /// <summary>Opens a stored blob for reading (the caller disposes the stream).</summary>
    public FileStream OpenRead(string networkId, string sha256)
    {
        RequireDigest(sha256, "sha256");
        var path = Path.Combine(NetworkDir(networkId), sha256);
        if (File.Exists(path) && clock.GetUtcNow() - File.GetLastWriteTimeUtc(path) > TimeSpan.FromHours(Limits.RetentionHours))
        {
            throw RpcErrors.NotFound("blob", sha256); // expired; the next sweep deletes it
        }

        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, bufferSize: 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw RpcErrors.NotFound("blob", sha256);
        }
    }

    /// <summary>The digest of a stored-blob reference; null for inline blobs and other references (one definition: <see cref="MeshAI.Common.Transport.BlobTransfer.StoredDigest"/>).</summary>
    public static string? StoredDigest(Blob blob) => MeshAI.Common.Transport.BlobTransfer.StoredDigest(blob);

    /// <summary>
    /// Submit-time check of an envelope's blobs (docs/job-plane.md "Chunked blobs"): every <c>meshai-blob:</c> reference
    /// names a finished, unexpired blob of <paramref name="networkId"/> (else BLOB_NOT_FOUND), and its own <c>sha256</c> and
    /// <c>size_bytes</c>, when set, agree with it (else BLOB_REFERENCE_INVALID). Returns the referenced bytes (for the relay
    /// allowance). The number of blobs is bounded by the request bounds (InputLimits.ListItems).
    /// </summary>
    public long RequireReferenced(string networkId, IReadOnlyList<Blob> blobs, string field)
    {
        ArgumentNullException.ThrowIfNull(blobs);
        long total = 0;
        for (var i = 0; i < blobs.Count; i++)
        {
            if (StoredDigest(blobs[i]) is not { } sha256)
            {
                continue;
            }

            var at = $"{field}[{i}]";
            RequireDigest(sha256, at + ".ref_uri");
            if (blobs[i].Sha256.Length > 0 && !string.Equals(blobs[i].Sha256, sha256, StringComparison.Ordinal))
            {
                throw RpcErrors.InvalidArgument(at + ".sha256", $"names {blobs[i].Sha256} but ref_uri references {sha256}", ErrorReasons.BlobReferenceInvalid);
            }

            var path = Path.Combine(NetworkDir(networkId), sha256);
            var file = new FileInfo(path);
            if (!file.Exists || clock.GetUtcNow() - file.LastWriteTimeUtc > TimeSpan.FromHours(Limits.RetentionHours))
            {
                throw RpcErrors.NotFound("blob", sha256);
            }

            if (blobs[i].SizeBytes > 0 && blobs[i].SizeBytes != file.Length)
            {
                throw RpcErrors.InvalidArgument(at + ".size_bytes", $"says {blobs[i].SizeBytes} bytes but the stored blob holds {file.Length}", ErrorReasons.BlobReferenceInvalid);
            }

            total += file.Length;
        }

        return total;
    }

    /// <summary>
    /// Bytes of the stored blobs an envelope references (each distinct digest once): what the placed device fetches, charged
    /// to the network's relay allowance at settlement with the inline bytes. A blob gone since (expired) counts its
    /// announced <c>size_bytes</c>.
    /// </summary>
    public long ReferencedBytes(string networkId, IEnumerable<Blob> blobs)
    {
        ArgumentNullException.ThrowIfNull(blobs);
        long total = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var blob in blobs)
        {
            if (StoredDigest(blob) is not { } sha256 || !seen.Add(sha256) || !Digest().IsMatch(sha256) || !SafeId().IsMatch(networkId))
            {
                continue;
            }

            var file = new FileInfo(Path.Combine(NetworkDir(networkId), sha256));
            total += file.Exists ? file.Length : Math.Max(0, blob.SizeBytes);
        }

        return total;
    }

    /// <summary>The configured chunk size.</summary>
    public int ChunkBytes => Limits.ChunkBytes;

    /// <summary>Chunks of a blob of <paramref name="size"/> bytes.</summary>
    public static int ChunkCount(long size, int chunkBytes) => (int)((size + chunkBytes - 1) / chunkBytes);

    private static Blob Describe(string sha256, long size, string contentType) =>
        new() { RefUri = RefPrefix + sha256, Sha256 = sha256, SizeBytes = size, ContentType = contentType };

    private Upload Find(string networkId, string uploadId)
    {
        if (string.IsNullOrEmpty(uploadId))
        {
            throw RpcErrors.Required("upload_id");
        }

        if (!_uploads.TryGetValue(uploadId, out var upload) || upload.NetworkId != networkId || upload.IdleSince(clock.GetUtcNow()) > TimeSpan.FromSeconds(Limits.UploadIdleSeconds))
        {
            throw RpcErrors.NotFound("blob upload", uploadId);
        }

        return upload;
    }

    /// <summary>Discards the network's idle uploads and expired blobs (runs under the start gate).</summary>
    private void Sweep(string networkId, string dir)
    {
        var now = clock.GetUtcNow();
        foreach (var idle in _uploads.Values.Where(u => u.NetworkId == networkId && u.IdleSince(now) > TimeSpan.FromSeconds(Limits.UploadIdleSeconds)).ToList())
        {
            if (_uploads.TryRemove(idle.Id, out _))
            {
                idle.Discard();
            }
        }

        if (!Directory.Exists(dir))
        {
            return;
        }

        foreach (var file in new DirectoryInfo(dir).EnumerateFiles())
        {
            if (now - file.LastWriteTimeUtc > TimeSpan.FromHours(Limits.RetentionHours))
            {
                file.Delete();
            }
        }

        // Partial files of uploads this process does not hold (an earlier process's, discarded by its restart).
        var uploads = new DirectoryInfo(Path.Combine(dir, "uploads"));
        if (uploads.Exists)
        {
            foreach (var orphan in uploads.EnumerateFiles().Where(f => !_uploads.ContainsKey(f.Name)))
            {
                orphan.Delete();
            }
        }
    }

    private string NetworkDir(string networkId)
    {
        if (!SafeId().IsMatch(networkId))
        {
            throw RpcErrors.NotFound("network", networkId);
        }

        return Path.Combine(Root, networkId);
    }

    private static void RequireDigest(string sha256, string field)
    {
        if (string.IsNullOrEmpty(sha256))
        {
            throw RpcErrors.Required(field);
        }

        if (!Digest().IsMatch(sha256))
        {
            throw RpcErrors.InvalidArgument(field, "must be 64 lower-case hex digits (SHA-256)");
        }
    }

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Digest();

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex SafeId();

    /// <summary>One unfinished upload: a partial file written at chunk offsets and the set of chunks it holds.</summary>
    private sealed class Upload(string id, string networkId, string sha256, long size, string contentType, int chunkBytes, int chunkCount, string partialPath, SafeFileHandle handle, DateTimeOffset now)
    {
        private readonly bool[] _have = new bool[chunkCount]; // also the lock of the fields below
        private readonly bool[] _begun = new bool[chunkCount];
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _hashed; // bytes hashed in order as chunks were written
        private bool _stale; // a chunk was sent twice: hash the whole file at the finish
        private bool _finishing;
        private int _writing;
        private int _received;
        private long _lastTouchTicks = now.UtcTicks;

        public string Id => id;

        public string NetworkId => networkId;

        public string Sha256 => sha256;

        public long Size => size;

        public string ContentType => contentType;

        public int ChunkBytes => chunkBytes;

        public int ChunkCount => chunkCount;

        public string PartialPath => partialPath;

        public int Received => Volatile.Read(ref _received);

        public void Touch(DateTimeOffset at) => Interlocked.Exchange(ref _lastTouchTicks, at.UtcTicks);

        public TimeSpan IdleSince(DateTimeOffset at) => TimeSpan.FromTicks(at.UtcTicks - Interlocked.Read(ref _lastTouchTicks));

        public async Task WriteAsync(int index, long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            lock (_have)
            {
                if (_finishing)
                {
                    throw RpcErrors.NotFound("blob upload", id); // finished while this chunk was on its way
                }

                _stale |= _begun[index]; // a chunk sent twice may differ from the bytes hashed: the finish re-reads the file
                _begun[index] = true;
                _writing++;
            }

            try
            {
                await RandomAccess.WriteAsync(handle, data, offset, ct);
                lock (_have)
                {
                    if (!_have[index])
                    {
                        _have[index] = true;
                        _received++;
                    }

                    if (!_stale && offset == _hashed)
                    {
                        // In order: hashed from the chunk in hand, so the finish need not read it back from the file.
                        _hash.AppendData(data.Span);
                        _hashed += data.Length;
                    }
                }
            }
            catch (ObjectDisposedException)
            {
                throw RpcErrors.NotFound("blob upload", id); // finished or discarded while this chunk was on its way
            }
            finally
            {
                lock (_have)
                {
                    _writing--;
                }
            }
        }

        public int? FirstMissing()
        {
            lock (_have)
            {
                var i = Array.IndexOf(_have, false);
                return i < 0 ? null : i;
            }
        }

        /// <summary>
        /// The SHA-256 of the file as it is now, then closes it. Chunks that arrived in order were hashed as they were
        /// written; the rest is read back from the file. No chunk write starts after this begins, and those in flight are
        /// awaited; if any chunk was sent twice, the whole file is read back (its bytes may differ from those hashed).
        /// </summary>
        public async Task<string> HashAndCloseAsync(CancellationToken ct)
        {
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1024 * 1024);
            try
            {
                long offset;
                while (true)
                {
                    lock (_have)
                    {
                        _finishing = true;
                        if (_writing == 0)
                        {
                            if (_stale)
                            {
                                _hash.GetHashAndReset();
                                _hashed = 0;
                            }

                            offset = _hashed;
                            break;
                        }
                    }

                    await Task.Delay(1, ct); // a repeated chunk still being written: its bytes are part of the file hashed
                }

                while (offset < size)
                {
                    var n = await RandomAccess.ReadAsync(handle, buffer.AsMemory(0, (int)Math.Min(buffer.Length, size - offset)), offset, ct);
                    if (n == 0)
                    {
                        break;
                    }

                    _hash.AppendData(buffer, 0, n);
                    offset += n;
                }

                return Convert.ToHexStringLower(_hash.GetHashAndReset());
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                handle.Dispose();
                _hash.Dispose();
            }
        }

        public void Discard()
        {
            handle.Dispose();
            lock (_have)
            {
                _finishing = true;
                _hash.Dispose();
            }

            try
            {
                File.Delete(partialPath);
            }
            catch (IOException)
            {
                // best effort: the next sweep of a fresh process leaves the uploads folder alone; the file is garbage only
            }
        }
    }
}

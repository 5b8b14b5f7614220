using System.Buffers;
using System.Security.Cryptography;
using Grpc.Core;
using Grpc.Net.Client;
using MeshAI.Agent.Models;
using MeshAI.Agent.State;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Agent.Jobs;

/// <summary>
/// Fetches a job's stored input blobs (<c>ref_uri = "meshai-blob:&lt;sha256&gt;"</c>) before its handler runs
/// (docs/job-plane.md "Chunked blobs"): one <c>BlobService.ReadJobBlob</c> server stream per blob from control, as this
/// device (certificate + proof, like the model fetch), authorised by control's record of the open attempt, over one
/// channel kept between jobs. Chunks go straight from the received frame to their offset in a file under the agent's state
/// directory — the write of one chunk overlaps the receipt of the next, and the stream window keeps
/// <see cref="ChunksInFlight"/> chunks in flight — while an incremental
/// SHA-256 checks the whole blob as control sent it. An encrypted job's blob is sealed (docs/security.md item 9): each
/// sealed chunk is opened as it arrives and only plaintext reaches the file; a chunk that does not authenticate fails the
/// job with <c>BLOB_CHUNK_UNAUTHENTICATED</c> (not retryable). The handler (and the sandbox worker) gets the file path, never a 64 MiB frame. A broken
/// stream resumes at the next chunk (<c>first_index</c>) up to <see cref="MaxResumes"/> times.
/// </summary>
public sealed class JobBlobFetcher(Func<AgentEnrollment> enrollment, AgentKeys keys, string directory) : IDisposable
{
    /// <summary>
    /// Chunks (of the default 1 MiB) the server may send ahead of this device's reads: the HTTP/2 stream receive window of
    /// the fetch channel. SocketsHttpHandler starts at 64 KiB and grows only with the measured bandwidth-delay product,
    /// which on a LAN or loopback keeps it below one chunk; a fixed window keeps several chunks in flight.
    /// </summary>
    public const int ChunksInFlight = 4;

    private readonly Lock _gate = new();
    private (string Url, string? Fingerprint, GrpcChannel Channel)? _channel;

    /// <summary>A fetcher for one enrollment (tests, tools); the agent passes its live enrollment instead.</summary>
    public JobBlobFetcher(AgentEnrollment enrollment, AgentKeys keys, string directory)
        : this(() => enrollment, keys, directory)
    {
    }

    /// <summary>Stored blobs one job may reference (more: the job fails as invalid input).</summary>
    public const int MaxBlobsPerJob = 64;

    /// <summary>Resumptions of one blob's stream after a transient failure.</summary>
    public const int MaxResumes = 3;

    /// <summary>Deadline of one blob's whole read.</summary>
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromMinutes(10);

    /// <summary>Where the job's blobs are written: one folder per attempt, deleted by <see cref="Release"/>.</summary>
    public string AttemptDirectory(PlacementTicketDetails details)
    {
        ArgumentNullException.ThrowIfNull(details);
        return Path.Combine(directory, details.JobId + "-" + details.Attempt);
    }

    /// <summary>
    /// Fetches every stored blob the manifest references; returns the local file path of each, by blob name (empty when
    /// none). <paramref name="blobKeys"/> gives the keys an encrypted job's blobs are sealed under (derived from its content
    /// key, unwrapped once per job) or is null (an unencrypted job's blobs, stored as uploaded); a sealed blob is opened
    /// chunk by chunk as it is written. Takes ownership of <paramref name="blobKeys"/>: disposed (zeroed) before returning.
    /// A content key that cannot be unwrapped here fails with <see cref="PayloadCryptoException"/> naming
    /// <c>BLOB_KEY_UNAVAILABLE</c> (retryable: another device may hold it); a sealed chunk that does not open, with
    /// <see cref="Workloads.InvalidWorkloadInputException"/> naming <c>BLOB_CHUNK_UNAUTHENTICATED</c> (not retryable).
    /// </summary>
    public async Task<IReadOnlyDictionary<string, string>> FetchAsync(PlacementTicketDetails details, IReadOnlyList<Blob> blobs, InputBlobKeys? blobKeys, CancellationToken ct)
    {
        using var keys = blobKeys;
        ArgumentNullException.ThrowIfNull(details);
        ArgumentNullException.ThrowIfNull(blobs);
        var stored = blobs.Select(b => (Blob: b, Sha256: BlobTransfer.StoredDigest(b))).Where(b => b.Sha256 is not null).ToList();
        if (stored.Count == 0)
        {
            return new Dictionary<string, string>();
        }

        if (stored.Count > MaxBlobsPerJob)
        {
            throw new Workloads.InvalidWorkloadInputException($"the job references {stored.Count} stored blobs; a device fetches at most {MaxBlobsPerJob}");
        }

        var folder = AttemptDirectory(details);
        Directory.CreateDirectory(folder);
        var client = new BlobService.BlobServiceClient(Channel());
        var paths = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < stored.Count; i++)
        {
            var (blob, sha256) = stored[i];
            byte[]? key;
            try
            {
                key = keys?.For(blob.Name);
            }
            catch (PayloadCryptoException ex)
            {
                throw new PayloadCryptoException($"{ErrorReasons.BlobKeyUnavailable}: input blob \"{blob.Name}\" ({sha256}): the job's content key cannot be unwrapped on this device: {ex.Message}");
            }

            try
            {
                // A sealed blob opens under its own name's key: one file per reference (a plaintext blob's file is shared).
                var path = Path.Combine(folder, key is null ? sha256! : i.ToString(System.Globalization.CultureInfo.InvariantCulture) + "-" + sha256);
                if (key is not null || !File.Exists(path))
                {
                    await ReadToFileAsync(client, details, sha256!, path, key, ct);
                }

                paths[blob.Name] = path;
            }
            catch (PayloadCryptoException ex)
            {
                throw new Workloads.InvalidWorkloadInputException($"{ErrorReasons.BlobChunkUnauthenticated}: input blob \"{blob.Name}\" ({sha256}): {ex.Message}");
            }
            finally
            {
                if (key is not null)
                {
                    CryptographicOperations.ZeroMemory(key);
                }
            }
        }

        return paths;
    }

    /// <summary>Closes the fetch channel.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _channel?.Channel.Dispose();
            _channel = null;
        }
    }

    /// <summary>
    /// The channel to control, kept between fetches (one TLS handshake, not one per job) and replaced when the enrollment's
    /// server or pinned certificate changes.
    /// </summary>
    public GrpcChannel Channel()
    {
        var current = enrollment();
        lock (_gate)
        {
            if (_channel is { } held && held.Url == current.ServerUrl && held.Fingerprint == current.Fingerprint)
            {
                return held.Channel;
            }

            _channel?.Channel.Dispose();
            var handler = GrpcChannels.PinnedHandler(current.Fingerprint);
            handler.InitialHttp2StreamWindowSize = ChunksInFlight * 1024 * 1024;
            var channel = GrpcChannel.ForAddress(current.ServerUrl, new GrpcChannelOptions
            {
                HttpHandler = handler,
                MaxReceiveMessageSize = 16 * 1024 * 1024,
                DisposeHttpClient = true,
            });
            _channel = (current.ServerUrl, current.Fingerprint, channel);
            return channel;
        }
    }

    /// <summary>Deletes the attempt's fetched blobs (the job ended).</summary>
    public void Release(PlacementTicketDetails details)
    {
        var folder = AttemptDirectory(details);
        try
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
        catch (IOException)
        {
            // best effort: a file still open by a worker that is being killed; the next release of this folder retries
        }
    }

    /// <summary>
    /// Reads one blob into <paramref name="path"/> (written as <c>path.part</c>, moved into place once its SHA-256 checks
    /// out): as stored when <paramref name="blobKey"/> is null, else opened chunk by chunk (<see cref="BlobSealing"/>) — a
    /// chunk that does not authenticate throws <see cref="PayloadCryptoException"/> and nothing is kept. Returns the bytes
    /// written.
    /// </summary>
    public async Task<long> ReadToFileAsync(BlobService.BlobServiceClient client, PlacementTicketDetails details, string sha256, string path, byte[]? blobKey, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(details);
        var partial = path + ".part";
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var opener = blobKey is null ? null : new ChunkOpener(blobKey);
        long size = -1;
        long received = 0;
        long written = 0;
        var chunkBytes = 0;
        var next = 0;
        var resumes = 0;
        try
        {
            using var handle = File.OpenHandle(partial, FileMode.Create, FileAccess.Write, FileShare.None, FileOptions.Asynchronous);
            while (true)
            {
                try
                {
                    using var call = client.ReadJobBlob(new ReadJobBlobRequest { NetworkId = details.NetworkId, JobId = details.JobId, Attempt = details.Attempt, Sha256 = sha256, FirstIndex = next },
                        NetworkModels.DeviceHeaders(enrollment(), keys), DateTime.UtcNow.Add(ReadTimeout), ct);
                    var pending = Task.CompletedTask;
                    while (await call.ResponseStream.MoveNext(ct))
                    {
                        var frame = call.ResponseStream.Current.Chunk ?? throw new InvalidDataException($"blob {sha256}: empty frame");
                        if (frame.Index != next)
                        {
                            throw new InvalidDataException($"blob {sha256}: chunk {frame.Index} arrived where chunk {next} was due");
                        }

                        if (frame.Index == 0 || size < 0)
                        {
                            size = frame.SizeBytes;
                            chunkBytes = frame.ChunkBytes;
                            opener?.Start(size);
                        }

                        var data = frame.Data.Memory;
                        var offset = (long)frame.Index * chunkBytes;
                        if (chunkBytes <= 0 || data.Length > chunkBytes || offset + data.Length > size)
                        {
                            throw new InvalidDataException($"blob {sha256}: chunk {frame.Index} ({data.Length} bytes) does not fit the announced shape ({size} bytes in chunks of {chunkBytes})");
                        }

                        hash.AppendData(data.Span);
                        if (opener is null)
                        {
                            await pending; // the previous chunk's write overlapped this chunk's receipt and hashing
                            pending = RandomAccess.WriteAsync(handle, data, offset, ct).AsTask();
                            written = offset + data.Length;
                        }
                        else
                        {
                            // Sealed chunks (1 MiB) need not line up with the server's: each completed one is opened into
                            // one of two plaintext buffers and written while the next is received and opened.
                            for (var used = 0; used < data.Length;)
                            {
                                used += opener.Take(data.Span[used..]);
                                if (opener.Opened is { } plain)
                                {
                                    await pending;
                                    pending = RandomAccess.WriteAsync(handle, plain.Data, plain.Offset, ct).AsTask();
                                    written = plain.Offset + plain.Data.Length;
                                }
                            }
                        }

                        received = offset + data.Length;
                        next++;
                    }

                    await pending;
                    break;
                }
                catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.Internal && next > 0 && resumes++ < MaxResumes && !ct.IsCancellationRequested)
                {
                    // resume after the last chunk hashed and written
                }
            }
        }
        catch
        {
            File.Delete(partial);
            throw;
        }

        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (received != size || !string.Equals(actual, sha256, StringComparison.Ordinal) || opener is { Done: false })
        {
            File.Delete(partial);
            throw new InvalidDataException($"blob {sha256}: received {received} of {size} bytes hashing to {actual}");
        }

        File.Move(partial, path, overwrite: true);
        return written;
    }

    /// <summary>
    /// Opens a sealed blob as its bytes arrive in transfer chunks of any size: gathers each sealed chunk (copied only when it
    /// straddles two transfer chunks), opens it into one of two pooled plaintext buffers (one may still be being written).
    /// </summary>
    private sealed class ChunkOpener(byte[] key) : IDisposable
    {
        private readonly BlobSealing.ChunkKey _key = new(key); // imported once per blob, not per chunk
        private static readonly int Plain = BlobSealing.PlainChunkBytes(BlobSealing.SealedChunkBytes);
        private readonly byte[] _gather = ArrayPool<byte>.Shared.Rent(BlobSealing.SealedChunkBytes);
        private readonly byte[][] _plain = [ArrayPool<byte>.Shared.Rent(Plain), ArrayPool<byte>.Shared.Rent(Plain)];
        private long _size = -1;
        private long _count;
        private long _index;
        private int _gathered;

        /// <summary>The chunk the last <see cref="Take"/> completed and opened (its plaintext and file offset), else null.</summary>
        public (ReadOnlyMemory<byte> Data, long Offset)? Opened { get; private set; }

        /// <summary>True once every sealed chunk was opened.</summary>
        public bool Done => _size >= 0 && _index == _count;

        /// <summary>Takes the sealed size from the first frame; refuses a size no sequence of sealed chunks has.</summary>
        public void Start(long sealedSize)
        {
            if (_size >= 0)
            {
                return;
            }

            _count = BlobSealing.SealedChunkCount(sealedSize);
            _size = sealedSize;
        }

        /// <summary>Consumes sealed bytes up to the end of the current chunk; returns how many; sets <see cref="Opened"/> when it completed one.</summary>
        public int Take(ReadOnlySpan<byte> sealedBytes)
        {
            Opened = null;
            if (_index >= _count)
            {
                throw new PayloadCryptoException($"bytes after the last sealed chunk ({_count})");
            }

            var length = (int)Math.Min(BlobSealing.SealedChunkBytes, _size - (_index * BlobSealing.SealedChunkBytes));
            if (_gathered == 0 && sealedBytes.Length >= length)
            {
                Open(sealedBytes[..length]); // the common case: the transfer chunk holds the whole sealed chunk
                return length;
            }

            var n = Math.Min(length - _gathered, sealedBytes.Length);
            sealedBytes[..n].CopyTo(_gather.AsSpan(_gathered));
            _gathered += n;
            if (_gathered == length)
            {
                _gathered = 0;
                Open(_gather.AsSpan(0, length));
            }

            return n;
        }

        public void Dispose()
        {
            _key.Dispose();
            ArrayPool<byte>.Shared.Return(_gather);
            foreach (var buffer in _plain)
            {
                CryptographicOperations.ZeroMemory(buffer);
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private void Open(ReadOnlySpan<byte> sealedChunk)
        {
            var plain = _plain[_index % 2].AsMemory(0, sealedChunk.Length - BlobSealing.TagBytes);
            _key.Open(_index, _count, sealedChunk, plain.Span);
            Opened = (plain, _index * Plain);
            _index++;
        }
    }
}

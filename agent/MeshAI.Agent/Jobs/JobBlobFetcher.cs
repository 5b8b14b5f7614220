using System.Security.Cryptography;
using Grpc.Core;
using Grpc.Net.Client;
using MeshAI.Agent.Models;
using MeshAI.Agent.State;
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
/// SHA-256 checks the whole blob. The handler (and the sandbox worker) gets the file path, never a 64 MiB frame. A broken
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

    /// <summary>Fetches every stored blob the manifest references; returns the local file path of each, by blob name (empty when none).</summary>
    public async Task<IReadOnlyDictionary<string, string>> FetchAsync(PlacementTicketDetails details, IReadOnlyList<Blob> blobs, CancellationToken ct)
    {
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
        foreach (var (blob, sha256) in stored)
        {
            var path = Path.Combine(folder, sha256!);
            if (!File.Exists(path))
            {
                await ReadToFileAsync(client, details, sha256!, path, ct);
            }

            paths[blob.Name] = path;
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

    /// <summary>Reads one blob into <paramref name="path"/> (written as <c>path.part</c>, moved into place once its SHA-256 checks out).</summary>
    public async Task<long> ReadToFileAsync(BlobService.BlobServiceClient client, PlacementTicketDetails details, string sha256, string path, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(details);
        var partial = path + ".part";
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long size = -1;
        long written = 0;
        var chunkBytes = 0;
        var next = 0;
        var resumes = 0;
        using (var handle = File.OpenHandle(partial, FileMode.Create, FileAccess.Write, FileShare.None, FileOptions.Asynchronous))
        {
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
                        }

                        var data = frame.Data.Memory;
                        var offset = (long)frame.Index * chunkBytes;
                        if (chunkBytes <= 0 || data.Length > chunkBytes || offset + data.Length > size)
                        {
                            throw new InvalidDataException($"blob {sha256}: chunk {frame.Index} ({data.Length} bytes) does not fit the announced shape ({size} bytes in chunks of {chunkBytes})");
                        }

                        hash.AppendData(data.Span);
                        await pending; // the previous chunk's write overlapped this chunk's receipt and hashing
                        pending = RandomAccess.WriteAsync(handle, data, offset, ct).AsTask();
                        written = offset + data.Length;
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

        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (written != size || !string.Equals(actual, sha256, StringComparison.Ordinal))
        {
            File.Delete(partial);
            throw new InvalidDataException($"blob {sha256}: received {written} of {size} bytes hashing to {actual}");
        }

        File.Move(partial, path, overwrite: true);
        return size;
    }
}

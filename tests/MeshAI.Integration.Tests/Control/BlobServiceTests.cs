using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>
/// BlobService over real gRPC (Kestrel, TLS, HTTP/2): a multi-MiB blob uploaded in chunks with several calls in flight and
/// read back as ordered chunks with its SHA-256 checked, and every bad input's status and ErrorInfo reason (oversize, chunk
/// out of range, wrong chunk size, missing chunk, hash mismatch, unknown upload or blob, too many uploads, store full).
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class BlobServiceTests
{
    private const int Chunk = 1024 * 1024;
    private static readonly int[] LastTwoChunks = [4, 5];
    private static readonly int[] LastTwoSizes = [Chunk, 12345];
    private ControlTestServer _server = null!;
    private string _token = "";

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _server = await ControlTestServer.StartAsync("sqlite",
            "--Control:Blobs:MaxBlobBytes", (12 * Chunk).ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--Control:Blobs:MaxStoredBytesPerNetwork", (20 * Chunk).ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--Control:Blobs:MaxUploadsPerNetwork", "3");
        _token = await _server.SignInAsync("blobs@example.com");
    }

    [OneTimeTearDown]
    public async Task StopServer() => await _server.DisposeAsync();

    private BlobService.BlobServiceClient Blobs(string? token = null) => new(_server.Channel(token ?? _token));

    private async Task<string> NetworkAsync(string name, string? token = null) =>
        (await new NetworkService.NetworkServiceClient(_server.Channel(token ?? _token)).CreateNetworkAsync(new CreateNetworkRequest { Name = name })).Network.NetworkId;

    private static byte[] Random(int size)
    {
        var bytes = new byte[size];
        System.Random.Shared.NextBytes(bytes);
        return bytes;
    }

    private static string Sha(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static void Reason(RpcException e, string reason) => Assert.That(RpcErrors.ReasonOf(e), Is.EqualTo(reason), e.Status.Detail);

    [Test]
    public async Task A_multi_mib_blob_goes_up_in_chunks_and_comes_back_in_order_with_its_hash_checked()
    {
        var network = await NetworkAsync("blobs-roundtrip");
        var content = Random((5 * Chunk) + 12345); // six chunks, the last one partial
        using var client = new MeshAI.Client.MeshClient(_server.Url, _server.Fingerprint, _token); // the SDK's door to BlobTransfer
        var blob = await client.UploadBlobAsync(network, new MemoryStream(content), "application/octet-stream");
        Assert.That(blob.Sha256, Is.EqualTo(Sha(content)));
        Assert.That(blob.SizeBytes, Is.EqualTo(content.Length));
        Assert.That(blob.RefUri, Is.EqualTo("meshai-blob:" + Sha(content)));

        using var back = new MemoryStream();
        Assert.That(await client.DownloadBlobAsync(network, blob.Sha256, back), Is.EqualTo(content.Length));
        Assert.That(back.ToArray(), Is.EqualTo(content));

        // The frames themselves: ordered, each below the chunk size, the first one carrying the shape.
        using var call = Blobs().ReadBlob(new ReadBlobRequest { NetworkId = network, Sha256 = blob.Sha256, FirstIndex = 4 });
        var frames = new List<ReadBlobResponse>();
        await foreach (var frame in call.ResponseStream.ReadAllAsync())
        {
            frames.Add(frame);
        }

        Assert.That(frames.Select(f => f.Index), Is.EqualTo(LastTwoChunks));
        Assert.That(frames[0].SizeBytes, Is.EqualTo(content.Length));
        Assert.That(frames[0].ChunkBytes, Is.EqualTo(Chunk));
        Assert.That(frames.Select(f => f.Data.Length), Is.EqualTo(LastTwoSizes));

        // Announcing it again: the network has it, nothing to upload.
        var again = await Blobs().StartBlobUploadAsync(new StartBlobUploadRequest { NetworkId = network, SizeBytes = content.Length, Sha256 = blob.Sha256 });
        Assert.That(again.UploadId, Is.Empty);
        Assert.That(again.Blob.Sha256, Is.EqualTo(blob.Sha256));

        // Another user's network cannot read it (nor learn that the network exists).
        var outsider = await _server.SignInAsync("outsider@example.com");
        var hidden = await Rpc.ThrowsAsync(StatusCode.NotFound, () => BlobTransfer.DownloadAsync(Blobs(outsider), network, blob.Sha256, Stream.Null));
        Reason(hidden, "NETWORK_NOT_FOUND");
    }

    [Test]
    public async Task A_browser_uses_the_same_path_over_grpc_web_on_http1()
    {
        // What a browser can speak: gRPC-Web over HTTP/1.1 (unary chunk calls up, a server stream down), no client streaming.
        var network = await NetworkAsync("blobs-web");
        using var channel = MeshAI.Integration.Tests.Relay.WebDeviceClient.WebChannel(_server.Url, _server.Fingerprint);
        var web = new BlobService.BlobServiceClient(Grpc.Core.Interceptors.CallInvokerExtensions.Intercept(channel.CreateCallInvoker(), metadata =>
        {
            metadata.Add("authorization", "Bearer " + _token);
            return metadata;
        }));
        var content = Random((3 * Chunk) + 1);
        var blob = await BlobTransfer.UploadAsync(web, network, new MemoryStream(content));
        using var back = new MemoryStream();
        await BlobTransfer.DownloadAsync(web, network, blob.Sha256, back);
        Assert.That(back.ToArray(), Is.EqualTo(content));
    }

    [Test]
    public async Task Each_bad_chunk_gets_its_own_reason_and_the_upload_stays_usable()
    {
        var network = await NetworkAsync("blobs-bad-chunks");
        var content = Random((2 * Chunk) + 7);
        var started = await Blobs().StartBlobUploadAsync(new StartBlobUploadRequest { NetworkId = network, SizeBytes = content.Length, Sha256 = Sha(content) });
        Assert.That(started.ChunkCount, Is.EqualTo(3));
        Assert.That(started.ChunkBytes, Is.EqualTo(Chunk));
        Assert.That(started.MaxChunksInFlight, Is.GreaterThan(0));
        Task Send(int index, int offset, int length) => Blobs().UploadBlobChunkAsync(new UploadBlobChunkRequest
        {
            NetworkId = network, UploadId = started.UploadId, Index = index, Data = ByteString.CopyFrom(content, offset, length),
        }).ResponseAsync;

        Reason(await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Send(3, 0, 7)), ErrorReasons.BlobChunkOutOfRange);
        Reason(await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Send(-1, 0, 7)), ErrorReasons.ValueOutOfRange); // the bounds layer, before BlobStore
        Reason(await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Send(0, 0, Chunk - 1)), ErrorReasons.BlobChunkSizeMismatch);
        Reason(await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Send(2, 2 * Chunk, 6)), ErrorReasons.BlobChunkSizeMismatch);

        // Out of order is fine; a chunk sent twice replaces itself; finishing with one missing names it.
        await Send(2, 2 * Chunk, 7);
        await Send(0, 0, Chunk);
        await Send(0, 0, Chunk);
        var missing = await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, () => Blobs().FinishBlobUploadAsync(new FinishBlobUploadRequest { NetworkId = network, UploadId = started.UploadId }).ResponseAsync);
        Reason(missing, ErrorReasons.BlobChunkMissing);
        Assert.That(missing.Status.Detail, Does.Contain("chunk 1 of 3"));

        await Send(1, Chunk, Chunk);
        var blob = (await Blobs().FinishBlobUploadAsync(new FinishBlobUploadRequest { NetworkId = network, UploadId = started.UploadId })).Blob;
        Assert.That(blob.Sha256, Is.EqualTo(Sha(content)));

        // Finished: the upload id is gone.
        Reason(await Rpc.ThrowsAsync(StatusCode.NotFound, () => Send(0, 0, Chunk)), "BLOB_UPLOAD_NOT_FOUND");
    }

    [Test]
    public async Task A_chunk_sent_again_with_other_bytes_after_its_in_order_hash_is_checked_as_the_file_holds_it()
    {
        // Chunks arriving in order are hashed as they are written; a chunk sent twice makes the finish hash the file again.
        var network = await NetworkAsync("blobs-resend");
        var content = Random((2 * Chunk) + 3);
        var tampered = (byte[])content.Clone();
        tampered[5] ^= 0x01;
        async Task<string> UploadAsync(params (int Index, byte[] From)[] sends)
        {
            var started = await Blobs().StartBlobUploadAsync(new StartBlobUploadRequest { NetworkId = network, SizeBytes = content.Length, Sha256 = Sha(content) });
            foreach (var (index, from) in sends)
            {
                var offset = index * Chunk;
                await Blobs().UploadBlobChunkAsync(new UploadBlobChunkRequest { NetworkId = network, UploadId = started.UploadId, Index = index, Data = ByteString.CopyFrom(from, offset, Math.Min(Chunk, from.Length - offset)) });
            }

            return started.UploadId;
        }

        // In order, then chunk 0 replaced by other bytes: the file no longer hashes to the announcement.
        var replaced = await UploadAsync((0, content), (1, content), (2, content), (0, tampered));
        var mismatch = await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, () => Blobs().FinishBlobUploadAsync(new FinishBlobUploadRequest { NetworkId = network, UploadId = replaced }).ResponseAsync);
        Reason(mismatch, ErrorReasons.BlobHashMismatch);
        Assert.That(mismatch.Status.Detail, Does.Contain(Sha(tampered)), "the digest of the bytes the file holds, not of those first hashed");

        // Wrong bytes first, right ones again: the file holds the announced bytes and is stored.
        var repaired = await UploadAsync((0, tampered), (1, content), (2, content), (0, content));
        Assert.That((await Blobs().FinishBlobUploadAsync(new FinishBlobUploadRequest { NetworkId = network, UploadId = repaired })).Blob.Sha256, Is.EqualTo(Sha(content)));
    }

    [Test]
    public async Task Bytes_that_do_not_hash_to_the_announced_digest_are_refused_and_discarded()
    {
        var network = await NetworkAsync("blobs-hash");
        var content = Random(Chunk + 1);
        var started = await Blobs().StartBlobUploadAsync(new StartBlobUploadRequest { NetworkId = network, SizeBytes = content.Length, Sha256 = Sha(content) });
        var tampered = (byte[])content.Clone();
        tampered[^1] ^= 0xff;
        await Blobs().UploadBlobChunkAsync(new UploadBlobChunkRequest { NetworkId = network, UploadId = started.UploadId, Index = 0, Data = ByteString.CopyFrom(tampered, 0, Chunk) });
        await Blobs().UploadBlobChunkAsync(new UploadBlobChunkRequest { NetworkId = network, UploadId = started.UploadId, Index = 1, Data = ByteString.CopyFrom(tampered, Chunk, 1) });
        var mismatch = await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, () => Blobs().FinishBlobUploadAsync(new FinishBlobUploadRequest { NetworkId = network, UploadId = started.UploadId }).ResponseAsync);
        Reason(mismatch, ErrorReasons.BlobHashMismatch);
        Assert.That(mismatch.Status.Detail, Does.Contain(Sha(tampered)));

        Reason(await Rpc.ThrowsAsync(StatusCode.NotFound, () => Blobs().FinishBlobUploadAsync(new FinishBlobUploadRequest { NetworkId = network, UploadId = started.UploadId }).ResponseAsync), "BLOB_UPLOAD_NOT_FOUND");
        Reason(await Rpc.ThrowsAsync(StatusCode.NotFound, () => BlobTransfer.DownloadAsync(Blobs(), network, Sha(content), Stream.Null)), "BLOB_NOT_FOUND");
        Assert.That(Directory.GetFiles(Path.Combine(_server.DataDir, "blobs", network), "*", SearchOption.AllDirectories), Is.Empty, "the tampered upload's partial file is deleted");
    }

    [Test]
    public async Task Announcements_outside_the_bounds_are_refused_before_any_byte_moves()
    {
        var network = await NetworkAsync("blobs-bounds");
        Task Start(long size, string sha) => Blobs().StartBlobUploadAsync(new StartBlobUploadRequest { NetworkId = network, SizeBytes = size, Sha256 = sha }).ResponseAsync;
        var digest = Sha([1, 2, 3]);

        Reason(await Rpc.ThrowsAsync(StatusCode.ResourceExhausted, () => Start((12L * Chunk) + 1, digest)), ErrorReasons.BlobTooLarge);
        Reason(await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Start(0, digest)), ErrorReasons.FieldInvalid);
        Reason(await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Start(3, digest.ToUpperInvariant())), ErrorReasons.FieldInvalid);
        Reason(await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Start(3, "")), ErrorReasons.FieldRequired);
        var readPastEnd = Rpc.ThrowsAsync(StatusCode.InvalidArgument, async () =>
        {
            var blob = await BlobTransfer.UploadAsync(Blobs(), network, new MemoryStream([1, 2, 3]));
            using var call = Blobs().ReadBlob(new ReadBlobRequest { NetworkId = network, Sha256 = blob.Sha256, FirstIndex = 1 });
            await call.ResponseStream.MoveNext();
        });
        Reason(await readPastEnd, ErrorReasons.BlobChunkOutOfRange);

        // The store bound counts stored blobs and announced uploads: two 10 MiB uploads fill the network's 20 MiB.
        await Start(10L * Chunk, Sha([4]));
        await Start((10L * Chunk) - 3, Sha([5])); // the 3-byte blob above is stored
        Reason(await Rpc.ThrowsAsync(StatusCode.ResourceExhausted, () => Start(1, Sha([6]))), ErrorReasons.BlobStoreFull);

        // At most three unfinished uploads per network.
        var busy = await NetworkAsync("blobs-in-flight");
        for (var i = 0; i < 3; i++)
        {
            await Blobs().StartBlobUploadAsync(new StartBlobUploadRequest { NetworkId = busy, SizeBytes = 10, Sha256 = Sha([(byte)i]) });
        }

        Reason(await Rpc.ThrowsAsync(StatusCode.ResourceExhausted, () => Blobs().StartBlobUploadAsync(new StartBlobUploadRequest { NetworkId = busy, SizeBytes = 10, Sha256 = Sha([9]) }).ResponseAsync), ErrorReasons.BlobUploadsInFlight);
    }
}

using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using MeshAI.Agent.Jobs;
using MeshAI.Agent.State;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// A job over a stored blob through real processes (issue 11, docs/job-plane.md "Chunked blobs"): the submitter's client
/// seals a multi-chunk blob for the job (docs/security.md item 9), uploads it and submits an encrypted echo job that
/// references it (<c>meshai-blob:&lt;sha256 of the sealed bytes&gt;</c>) and names it in <c>hash_blob</c>; control stores
/// ciphertext only; the placed agent fetches it chunk by chunk with BlobService.ReadJobBlob, opens each chunk into a file,
/// the worker hashes the file and the result carries the plaintext's exact SHA-256 and size. A device that was not placed,
/// the placed device asking for a blob its job does not reference, a user session, and the placed device after the job
/// finished are all refused with BLOB_ACCESS_DENIED / DEVICE_CERTIFICATE_REFUSED; submits over unknown or inconsistent
/// references are refused up front; a byte flipped in control's stored copy fails the attempt with
/// BLOB_CHUNK_UNAUTHENTICATED, once, billed once.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class JobBlobEndToEndTests
{
    private LocalMesh _mesh = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;
    private string _token = "";

    [OneTimeSetUp]
    public async Task StartMeshAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions());
        _token = await _mesh.SignInAsync("blobjobs@example.com");
        _channel = _mesh.Channel(_token);
    }

    [OneTimeTearDown]
    public async Task StopMeshAsync()
    {
        _channel?.Dispose();
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task The_placed_agent_fetches_a_sealed_blob_into_a_file_the_worker_hashes_it_and_no_other_device_may_read_it()
    {
        var (networkId, agents) = await MeshJobs.NetworkWithAgentsAsync(_mesh, _channel, "blobjob", count: 2);
        var content = new byte[(3 * 1024 * 1024) + 12345]; // four sealed chunks of 1 MiB, the last partial
        Random.Shared.NextBytes(content);
        var sha = Convert.ToHexStringLower(SHA256.HashData(content));
        using var client = new MeshAI.Client.MeshClient(_mesh.Url, _mesh.Fingerprint, _token);
        var other = await client.UploadBlobAsync(networkId, new MemoryStream("not referenced by the job"u8.ToArray()));
        var jobs = new JobService.JobServiceClient(_channel);

        // Submit-time checks: an unknown digest, and a reference whose own fields disagree with the stored blob.
        var unknown = await Assert.ThrowsAsync<RpcException>(async () => await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(networkId, agents[0].DeviceId, new string('a', 64), 0) }));
        Assert.That(unknown!.StatusCode, Is.EqualTo(StatusCode.NotFound));
        Assert.That(RpcErrors.ReasonOf(unknown), Is.EqualTo("BLOB_NOT_FOUND"), unknown.Status.Detail);
        var wrongSize = await Assert.ThrowsAsync<RpcException>(async () => await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(networkId, agents[0].DeviceId, other.Sha256, 0, sizeBytes: 7) }));
        Assert.That(wrongSize!.StatusCode, Is.EqualTo(StatusCode.InvalidArgument));
        Assert.That(RpcErrors.ReasonOf(wrongSize), Is.EqualTo(ErrorReasons.BlobReferenceInvalid), wrongSize.Status.Detail);

        // The job (sealed, encrypted): the handler waits first, so the attempt is open on agents[0] while the others try to read.
        var storedBefore = StoredBlobs(networkId);
        var job = await client.SubmitJobAsync(networkId, EchoOverBlob(delayMs: 6_000), new Dictionary<string, Stream> { ["input"] = new MemoryStream(content) }, Pinned(agents[0].DeviceId));
        var stored = StoredBlobs(networkId).Except(storedBefore).Single();
        var sealedSha = Path.GetFileName(stored);
        Assert.That(sealedSha, Is.Not.EqualTo(sha), "the reference names the sealed bytes, not the plaintext");
        var atControl = await File.ReadAllBytesAsync(stored);
        Assert.That(atControl.LongLength, Is.EqualTo(BlobSealing.SealedBytes(content.Length, BlobSealing.SealedChunkBytes)), "control stores the sealed chunks: plaintext + 16 bytes per chunk");
        Assert.That(Convert.ToHexStringLower(SHA256.HashData(atControl)), Is.EqualTo(sealedSha));
        Assert.That(atControl.AsSpan().IndexOf(content.AsSpan(1000, 32)), Is.EqualTo(-1), "control's stored bytes are not the plaintext");
        Assert.That(atControl.AsSpan().IndexOf(content.AsSpan((2 * 1024 * 1024) + 77, 32)), Is.EqualTo(-1));
        var running = await MeshJobs.WaitForJobAsync(jobs, networkId, job.JobId, j => j.State == JobState.Running, TimeSpan.FromSeconds(60));
        var attempt = running.Attempts.Single().Attempt;

        var notPlaced = await Assert.ThrowsAsync<RpcException>(async () => await ReadAsDeviceAsync(agents[1], networkId, job.JobId, attempt, sealedSha));
        Assert.That(notPlaced!.StatusCode, Is.EqualTo(StatusCode.PermissionDenied));
        Assert.That(RpcErrors.ReasonOf(notPlaced), Is.EqualTo(ErrorReasons.BlobAccessDenied), notPlaced.Status.Detail);
        Assert.That(notPlaced.Status.Detail, Does.Contain("not running on device " + agents[1].DeviceId));

        var unreferenced = await Assert.ThrowsAsync<RpcException>(async () => await ReadAsDeviceAsync(agents[0], networkId, job.JobId, attempt, other.Sha256));
        Assert.That(RpcErrors.ReasonOf(unreferenced!), Is.EqualTo(ErrorReasons.BlobAccessDenied), unreferenced!.Status.Detail);
        Assert.That(unreferenced.Status.Detail, Does.Contain("does not reference"));

        // The placed device itself, while its attempt runs, reads exactly what control stores (the same call the agent makes).
        Assert.That(await ReadAsDeviceAsync(agents[0], networkId, job.JobId, attempt, sealedSha), Is.EqualTo(atControl));

        // A user session (no device certificate) is not a device.
        var asUser = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = new BlobService.BlobServiceClient(_channel).ReadJobBlob(new ReadJobBlobRequest { NetworkId = networkId, JobId = job.JobId, Attempt = attempt, Sha256 = sealedSha });
            await call.ResponseStream.MoveNext();
        });
        Assert.That(asUser!.StatusCode, Is.EqualTo(StatusCode.Unauthenticated));
        Assert.That(RpcErrors.ReasonOf(asUser), Is.EqualTo(ErrorReasons.DeviceCertificateRefused), asUser.Status.Detail);

        var run = await client.WaitForResultAsync(networkId, job);
        Assert.That(run.Job.State, Is.EqualTo(JobState.Completed), run.Job.ErrorMessage);
        Assert.That(run.Job.RelayBytes, Is.GreaterThanOrEqualTo(content.Length), "the fetched blob is charged like relayed bytes");
        var echo = run.Output.Echo;
        Assert.That(echo.BlobSha256, Is.EqualTo(sha), "the worker read exactly the plaintext the submitter sealed");
        Assert.That(echo.BlobSizeBytes, Is.EqualTo(content.Length));
        Assert.That(echo.Data.ToStringUtf8(), Is.EqualTo("over a blob"));

        // The job's lifetime is over: its own device is refused now, and the agent deleted the fetched file.
        var afterwards = await Assert.ThrowsAsync<RpcException>(async () => await ReadAsDeviceAsync(agents[0], networkId, job.JobId, attempt, sealedSha));
        Assert.That(RpcErrors.ReasonOf(afterwards!), Is.EqualTo(ErrorReasons.BlobAccessDenied), afterwards!.Status.Detail);
        var fetched = Path.Combine(agents[0].StateDirectory, "job-blobs");
        Assert.That(Directory.Exists(fetched) ? Directory.GetFiles(fetched, "*", SearchOption.AllDirectories) : [], Is.Empty, "fetched blobs go with the attempt");
    }

    [Test]
    public async Task A_byte_flipped_in_the_stored_sealed_blob_fails_the_attempt_with_BLOB_CHUNK_UNAUTHENTICATED_once_and_billed_once()
    {
        var (networkId, agents) = await MeshJobs.NetworkWithAgentsAsync(_mesh, _channel, "blobtamper", count: 1);
        var content = new byte[(2 * 1024 * 1024) + 999];
        Random.Shared.NextBytes(content);
        // Control (or whoever holds its disk) changes one byte of the second sealed chunk after the upload, before the job.
        var storedBefore = StoredBlobs(networkId);
        using var client = new MeshAI.Client.MeshClient(_mesh.Channel(_token).Intercept(new BeforeUnaryCall("SubmitJob", () =>
        {
            var stored = StoredBlobs(networkId).Except(storedBefore).Single();
            using var file = File.Open(stored, FileMode.Open, FileAccess.ReadWrite);
            file.Position = BlobSealing.SealedChunkBytes + 4321;
            var b = file.ReadByte();
            file.Position--;
            file.WriteByte((byte)(b ^ 0x01));
        })));
        var job = await client.SubmitJobAsync(networkId, EchoOverBlob(delayMs: 0), new Dictionary<string, Stream> { ["input"] = new MemoryStream(content) }, Pinned(agents[0].DeviceId));

        var jobs = new JobService.JobServiceClient(_channel);
        var done = await MeshJobs.WaitForJobAsync(jobs, networkId, job.JobId, j => j.State is JobState.Completed or JobState.Failed or JobState.Cancelled, TimeSpan.FromSeconds(90));
        Assert.That(done.State, Is.EqualTo(JobState.Failed));
        Assert.That(done.ErrorMessage, Does.Contain(ErrorReasons.BlobChunkUnauthenticated + ": input blob \"input\""), done.ErrorMessage);
        Assert.That(done.ErrorMessage, Does.Contain("chunk 1 of 3"), "the tampered chunk is named");
        Assert.That(done.Attempts, Has.Count.EqualTo(1), "not retried: every device would read the same bytes");
        var events = await MeshJobs.LedgerEventsAsync(_channel, networkId, job.JobId);
        Assert.That(events.Select(e => e.IdempotencyKey), Is.Unique, "nothing recorded twice");
        Assert.That(events.Count(e => e.EventType == LedgerEventType.JobFailed), Is.EqualTo(1));
        Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.LessThanOrEqualTo(1), "billed at most once");
        var fetched = Path.Combine(agents[0].StateDirectory, "job-blobs");
        Assert.That(Directory.Exists(fetched) ? Directory.GetFiles(fetched, "*", SearchOption.AllDirectories) : [], Is.Empty, "nothing of the refused blob is kept");
    }

    /// <summary>Reads a job blob with <paramref name="agent"/>'s own certificate and key (the agent's JobBlobFetcher code path).</summary>
    private async Task<byte[]> ReadAsDeviceAsync(MeshAgent agent, string networkId, string jobId, int attempt, string sha256)
    {
        var store = new AgentStateStore(agent.StateDirectory);
        var enrollment = store.LoadEnrollment()!;
        var keys = store.LoadKeys()!;
        var folder = Path.Combine(_mesh.DataDirectory, "test-reads", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        using var fetcher = new JobBlobFetcher(enrollment, keys, folder);
        var path = Path.Combine(folder, sha256);
        await fetcher.ReadToFileAsync(new BlobService.BlobServiceClient(fetcher.Channel()), new PlacementTicketDetails { NetworkId = networkId, JobId = jobId, Attempt = attempt }, sha256, path, null, CancellationToken.None);
        return await File.ReadAllBytesAsync(path);
    }

    /// <summary>The blob files control stores for <paramref name="networkId"/> (named by their SHA-256).</summary>
    private string[] StoredBlobs(string networkId)
    {
        var folder = Path.Combine(_mesh.DataDirectory, "blobs", networkId);
        return Directory.Exists(folder) ? Directory.GetFiles(folder).Where(f => Path.GetFileName(f).Length == 64).ToArray() : [];
    }

    private static WorkloadInput EchoOverBlob(int delayMs) => new() { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("over a blob"), DelayMs = delayMs, HashBlob = "input" } };

    private static MeshAI.Client.JobRouting Pinned(string deviceId) => new() { Mode = RoutingMode.PinnedDevice, PinnedDeviceIds = [deviceId], TimeoutMs = 120_000 };

    private static JobEnvelope Envelope(string networkId, string deviceId, string sha256, int delayMs, long sizeBytes = 0) => new()
    {
        NetworkId = networkId,
        WorkloadId = WorkloadClass.DiagnosticEcho,
        RoutingMode = RoutingMode.PinnedDevice,
        ResourceRequest = new ResourceRequest { RequiresPinnedDeviceIdsOptional = { deviceId } },
        TimeoutMs = 120_000,
        InputManifest = new InputManifest
        {
            Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("over a blob"), DelayMs = delayMs, HashBlob = "input" } }.ToByteString(),
            Blobs = { new Blob { Name = "input", RefUri = "meshai-blob:" + sha256, Sha256 = sha256, SizeBytes = sizeBytes } },
        },
        PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
    };
}

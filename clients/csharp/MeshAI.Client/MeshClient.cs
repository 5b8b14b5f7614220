using System.Runtime.CompilerServices;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using MeshAI.Common.Crypto;
using MeshAI.Common.Observability;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Audit.V1;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Model.V1;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Client;

/// <summary>
/// The C# SDK: every MeshAI service client over one pinned channel, plus the spec's core calls
/// (create network, invite, submit, stream, run embeddings, ledger).
/// </summary>
public sealed class MeshClient : IDisposable
{
    private readonly GrpcChannel? ownedChannel;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string KeyId, byte[] PublicKey)> controlKeys = new(StringComparer.Ordinal);

    /// <summary>
    /// Connects to <paramref name="serverUrl"/>, pinning the TLS certificate to <paramref name="fingerprint"/> (SHA-256 hex;
    /// null or empty = normal CA validation), and sends <paramref name="credential"/> (session token or API key) as a bearer token.
    /// </summary>
    public MeshClient(string serverUrl, string? fingerprint, string? credential)
        : this(serverUrl, fingerprint, () => credential)
    {
    }

    /// <summary>Like the string overload, but asks <paramref name="credential"/> for the token on every call.</summary>
    public MeshClient(string serverUrl, string? fingerprint, Func<string?> credential)
    {
        ArgumentException.ThrowIfNullOrEmpty(serverUrl);
        ServerUrl = serverUrl;
        ownedChannel = GrpcChannels.Create(serverUrl, fingerprint, credential);
        CallInvoker = ownedChannel.CreateCallInvoker();
        (Identity, Networks, Devices, Jobs, Ledger, Policies, Models, Audit) = CreateClients(CallInvoker);
    }

    /// <summary>
    /// Uses an existing call invoker (in-process servers, tests, custom transports); <paramref name="credential"/> is added
    /// as "authorization: Bearer …" metadata when set. The invoker is not disposed.
    /// </summary>
    public MeshClient(CallInvoker callInvoker, string? credential = null, string serverUrl = "")
    {
        ArgumentNullException.ThrowIfNull(callInvoker);
        ServerUrl = serverUrl;
        CallInvoker = string.IsNullOrEmpty(credential)
            ? callInvoker
            : callInvoker.Intercept(metadata =>
            {
                metadata.Add("authorization", "Bearer " + credential);
                return metadata;
            });
        (Identity, Networks, Devices, Jobs, Ledger, Policies, Models, Audit) = CreateClients(CallInvoker);
    }

    /// <summary>The server this client talks to (empty when built from a call invoker without one).</summary>
    public string ServerUrl { get; }

    /// <summary>The invoker every typed client shares.</summary>
    public CallInvoker CallInvoker { get; }

    /// <summary>Deadline applied to the unary calls of the convenience methods.</summary>
    public TimeSpan DefaultTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Encrypt payloads end to end (default): submissions plan first (PlanJob), encrypt the input once and wrap its key for
    /// every candidate device, and results come back sealed to <see cref="SubmitterKey"/>.
    /// </summary>
    public bool EncryptPayloads { get; set; } = true;

    /// <summary>The X25519 key results are encrypted back to (fresh per client; set one to decrypt results of earlier sessions).</summary>
    public EncryptionKeyPair SubmitterKey { get; set; } = EncryptionKeyPair.Generate();

    /// <summary>
    /// When set, every envelope <see cref="SubmitJobAsync"/> sends is signed with this ed25519 key (JobEnvelope.auth_signature,
    /// after encryption), so control and the device can detect changes made after submission. Off (null) by default.
    /// </summary>
    public SigningKeyPair? SubmitterSigningKey { get; set; }

    /// <summary>Accounts, sessions, API keys, logins.</summary>
    public IdentityService.IdentityServiceClient Identity { get; }

    /// <summary>Networks, members, invites, key rotation.</summary>
    public NetworkService.NetworkServiceClient Networks { get; }

    /// <summary>Device enrolment, presence, revocation.</summary>
    public DeviceService.DeviceServiceClient Devices { get; }

    /// <summary>Job plane: plan, estimate, submit, watch, inspect, cancel, explain.</summary>
    public JobService.JobServiceClient Jobs { get; }

    /// <summary>Credits: events, balances, export, reconcile, rates.</summary>
    public LedgerService.LedgerServiceClient Ledger { get; }

    /// <summary>Network policies.</summary>
    public PolicyService.PolicyServiceClient Policies { get; }

    /// <summary>Model manifests.</summary>
    public ModelService.ModelServiceClient Models { get; }

    /// <summary>Security audit log.</summary>
    public AuditService.AuditServiceClient Audit { get; }

    /// <summary>Chunked blobs: payloads larger than one message, uploaded and read in chunks (docs/job-plane.md "Chunked blobs").</summary>
    public BlobService.BlobServiceClient Blobs => new(CallInvoker);

    /// <summary>
    /// Uploads <paramref name="content"/> (seekable) as a chunked blob of the network, as is; returns its <c>meshai-blob:</c>
    /// reference. Control can read such a blob, and only a job sent without end-to-end encryption can reference it (the
    /// device opens an encrypted job's input blobs as sealed, so a plain one fails that job with BLOB_CHUNK_UNAUTHENTICATED):
    /// an encrypted job's input blobs are sealed for it by
    /// <see cref="SubmitJobAsync(string, WorkloadInput, IReadOnlyDictionary{string, Stream}, JobRouting?, CancellationToken)"/>.
    /// </summary>
    public Task<Blob> UploadBlobAsync(string networkId, Stream content, string contentType = "application/octet-stream", CancellationToken cancellationToken = default) =>
        BlobTransfer.UploadAsync(Blobs, networkId, content, contentType, cancellationToken);

    /// <summary>Reads a stored blob into <paramref name="destination"/>, checking chunk order and its SHA-256; returns the bytes written.</summary>
    public Task<long> DownloadBlobAsync(string networkId, string sha256, Stream destination, CancellationToken cancellationToken = default) =>
        BlobTransfer.DownloadAsync(Blobs, networkId, sha256, destination, cancellationToken);

    /// <summary>Creates a private, credits-internal network with the caller as admin.</summary>
    public async Task<Network> CreateNetworkAsync(string name, NetworkSettings? settings = null, CancellationToken cancellationToken = default)
    {
        var request = new CreateNetworkRequest
        {
            Name = name,
            Visibility = NetworkVisibility.Private,
            BillingMode = BillingMode.CreditsInternal,
            Settings = settings,
        };
        var response = await Networks.CreateNetworkAsync(request, deadline: Deadline(), cancellationToken: cancellationToken);
        return response.Network ?? throw new InvalidOperationException("CreateNetwork returned no network.");
    }

    /// <summary>
    /// Invites by email (invitee contains "@"), by username, or as a share link (empty invitee) unless
    /// <paramref name="inviteType"/> says otherwise.
    /// </summary>
    public Task<InviteMemberResponse> InviteMemberAsync(
        string networkId, string invitee, Role role = Role.Member, InviteType inviteType = InviteType.Unspecified, CancellationToken cancellationToken = default)
    {
        if (inviteType == InviteType.Unspecified)
        {
            inviteType = string.IsNullOrEmpty(invitee) ? InviteType.ShareLinkWithApproval
                : invitee.Contains('@', StringComparison.Ordinal) ? InviteType.Email
                : InviteType.Username;
        }

        var request = new InviteMemberRequest { NetworkId = networkId, Invitee = invitee ?? "", Role = role, InviteType = inviteType };
        return Networks.InviteMemberAsync(request, deadline: Deadline(), cancellationToken: cancellationToken).ResponseAsync;
    }

    /// <summary>Agent-side registration; the caller supplies the proof-of-possession signature.</summary>
    public Task<RegisterDeviceResponse> RegisterDeviceAsync(RegisterDeviceRequest request, CancellationToken cancellationToken = default) =>
        Devices.RegisterDeviceAsync(request, deadline: Deadline(), cancellationToken: cancellationToken).ResponseAsync;

    /// <summary>Submits <paramref name="input"/> (end-to-end encrypted unless <see cref="EncryptPayloads"/> is off) and returns the job as accepted.</summary>
    public async Task<Job> SubmitJobAsync(string networkId, WorkloadInput input, JobRouting? routing = null, CancellationToken cancellationToken = default)
    {
        var (request, headers) = await PrepareSubmitAsync(networkId, input, routing, null, cancellationToken);
        var response = await Jobs.SubmitJobAsync(request, headers, deadline: Deadline(), cancellationToken: cancellationToken);
        return response.Job ?? throw new InvalidOperationException("SubmitJob returned no job.");
    }

    /// <summary>
    /// Submits <paramref name="input"/> over input blobs uploaded first from <paramref name="blobs"/> (blob name → seekable
    /// plaintext, read twice, never held whole): with <see cref="EncryptPayloads"/> each blob is sealed chunk by chunk for this
    /// job (docs/security.md item 9: a key derived from the job's content key, which only the planned devices can unwrap), so
    /// control stores and forwards ciphertext; the envelope references each as <c>meshai-blob:&lt;sha256 of the sealed
    /// bytes&gt;</c>. A sealed blob belongs to its job: another job over the same content uploads its own copy.
    /// </summary>
    public async Task<Job> SubmitJobAsync(string networkId, WorkloadInput input, IReadOnlyDictionary<string, Stream> blobs, JobRouting? routing = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blobs);
        var (request, headers) = await PrepareSubmitAsync(networkId, input, routing, blobs, cancellationToken);
        var response = await Jobs.SubmitJobAsync(request, headers, deadline: Deadline(), cancellationToken: cancellationToken);
        return response.Job ?? throw new InvalidOperationException("SubmitJob returned no job.");
    }

    // The envelope (encrypted, signed), its idempotency key and the call's trace metadata: SubmitJob and RunJob send the same.
    private async Task<(SubmitJobRequest Request, Metadata? Headers)> PrepareSubmitAsync(string networkId, WorkloadInput input, JobRouting? routing, IReadOnlyDictionary<string, Stream>? blobs, CancellationToken cancellationToken)
    {
        var envelope = JobEnvelopes.Build(networkId, input, routing);
        if (EncryptPayloads && blobs is { Count: > 0 })
        {
            // The content key is drawn before the upload: the blobs are sealed under keys derived from it.
            CheckBeforeEncrypting(envelope);
            var recipients = await PlanRecipientsAsync(envelope, 0, cancellationToken);
            var contentKey = System.Security.Cryptography.RandomNumberGenerator.GetBytes(PayloadCrypto.KeySize);
            try
            {
                await UploadInputBlobsAsync(envelope, blobs, contentKey, cancellationToken);
                PayloadCrypto.EncryptEnvelope(envelope, recipients, SubmitterKey.PublicKey, contentKey);
            }
            finally
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(contentKey);
            }
        }
        else if (EncryptPayloads)
        {
            await EncryptAsync(envelope, cancellationToken);
        }
        else if (blobs is { Count: > 0 })
        {
            await UploadInputBlobsAsync(envelope, blobs, null, cancellationToken); // a plaintext job: its blobs are plaintext too
        }

        if (SubmitterSigningKey is { } signingKey)
        {
            EnvelopeSignatures.Sign(envelope, signingKey);
        }

        var request = new SubmitJobRequest
        {
            Envelope = envelope,
            IdempotencyKey = string.IsNullOrEmpty(routing?.IdempotencyKey) ? Guid.NewGuid().ToString("N") : routing.IdempotencyKey,
        };
        // W3C trace context in the call's metadata: the server's spans join the envelope's trace. With a current span
        // HttpClient propagates that one itself (and the envelope took its trace id).
        var headers = System.Diagnostics.Activity.Current is null && MeshTelemetry.IsTraceId(envelope.TraceId)
            ? new Metadata { { "traceparent", $"00-{envelope.TraceId}-{System.Diagnostics.ActivitySpanId.CreateRandom().ToHexString()}-01" } }
            : null;
        return (request, headers);
    }

    /// <summary>
    /// Encrypts <paramref name="envelope"/>'s payload in place: plans the job (candidate devices' X25519 keys), checks
    /// control's signature over them against the network's control key, then seals the payload for all of them.
    /// </summary>
    public async Task EncryptAsync(JobEnvelope envelope, int maxCandidates = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        CheckBeforeEncrypting(envelope);
        PayloadCrypto.EncryptEnvelope(envelope, await PlanRecipientsAsync(envelope, maxCandidates, cancellationToken), SubmitterKey.PublicKey);
    }

    // PlanJob's candidate devices (device id → X25519 key), checked against control's signature over them.
    private async Task<List<KeyValuePair<string, byte[]>>> PlanRecipientsAsync(JobEnvelope envelope, int maxCandidates, CancellationToken cancellationToken)
    {
        var probe = envelope.Clone();
        probe.InputManifest = new InputManifest();
        var plan = await Jobs.PlanJobAsync(new PlanJobRequest { Envelope = probe, MaxCandidates = maxCandidates }, deadline: Deadline(), cancellationToken: cancellationToken);
        var controlKey = await ControlKeyAsync(envelope.NetworkId, plan.SigningKeyId, cancellationToken);
        if (!SigningKeyPair.Verify(controlKey, PayloadCrypto.PlanSignatureMessage(envelope.NetworkId, plan.Recipients), plan.Signature.Span))
        {
            throw new InvalidOperationException($"PlanJob's recipient list for {envelope.NetworkId} is not signed by the network's control key; refusing to encrypt to it.");
        }

        return plan.Recipients.Select(r => KeyValuePair.Create(r.DeviceId, r.EncryptionPublicKey.ToByteArray())).ToList();
    }

    // Uploads the job's input blobs (sealed under keys derived from contentKey when set) and references them in the envelope.
    private async Task UploadInputBlobsAsync(JobEnvelope envelope, IReadOnlyDictionary<string, Stream> blobs, byte[]? contentKey, CancellationToken cancellationToken)
    {
        var manifest = envelope.InputManifest ??= new InputManifest();
        foreach (var (name, content) in blobs)
        {
            if (manifest.Blobs.Any(b => string.Equals(b.Name, name, StringComparison.Ordinal)))
            {
                throw new ArgumentException($"the envelope already has a blob named \"{name}\"", nameof(blobs));
            }

            var key = contentKey is null ? null : BlobSealing.InputBlobKey(contentKey, envelope.NetworkId, name);
            try
            {
                // Sealed twice (hash pass, send pass): measured cheaper here than sealing once and spooling or holding the
                // sealed bytes (docs/benchmarks.md, branch sealonce); the send pass seals straight into the chunk buffer.
                using var sealedContent = key is null ? null : new BlobSealingStream(content, key);
                var stored = await BlobTransfer.UploadAsync(Blobs, envelope.NetworkId, sealedContent ?? content, ct: cancellationToken);
                manifest.Blobs.Add(new Blob { Name = name, RefUri = stored.RefUri, Sha256 = stored.Sha256, SizeBytes = stored.SizeBytes });
            }
            finally
            {
                if (key is not null)
                {
                    System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
                }
            }
        }
    }

    private Task EncryptAsync(JobEnvelope envelope, CancellationToken cancellationToken) => EncryptAsync(envelope, 0, cancellationToken);

    // Control cannot look inside an encrypted payload, so the contract's input limits are checked here, before sealing.
    private static void CheckBeforeEncrypting(JobEnvelope envelope)
    {
        var payload = envelope.InputManifest?.Payload ?? Google.Protobuf.ByteString.Empty;
        WorkloadInput input;
        try
        {
            input = WorkloadInput.Parser.ParseFrom(payload);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            throw InvalidPayload("not a serialized meshai.job.v1.WorkloadInput");
        }

        if (MeshAI.Common.Domain.WorkloadInputRules.Check(input, JobEnvelopes.MaxEmbeddingTexts) is { } violation)
        {
            throw InvalidPayload(violation.Description, violation.Field);
        }
    }

    private static RpcException InvalidPayload(string description, string field = MeshAI.Common.Domain.WorkloadInputRules.PayloadField)
    {
        var status = new Google.Rpc.Status
        {
            Code = (int)StatusCode.InvalidArgument,
            Message = $"{field}: {description} (checked by the client: the payload is end-to-end encrypted)",
            Details = { Google.Protobuf.WellKnownTypes.Any.Pack(new Google.Rpc.BadRequest { FieldViolations = { new Google.Rpc.BadRequest.Types.FieldViolation { Field = field, Description = description } } }) },
        };
        return status.ToRpcException();
    }

    private async Task<byte[]> ControlKeyAsync(string networkId, string keyId, CancellationToken cancellationToken)
    {
        if (controlKeys.TryGetValue(networkId, out var cached) && cached.KeyId == keyId)
        {
            return cached.PublicKey;
        }

        var network = (await Networks.GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId }, deadline: Deadline(), cancellationToken: cancellationToken)).Network;
        if (network is null || network.ControlKeyId != keyId)
        {
            throw new InvalidOperationException($"PlanJob was signed with key {keyId}, which is not the current control key of {networkId}.");
        }

        controlKeys[networkId] = (network.ControlKeyId, network.ControlPublicKey.ToByteArray());
        return network.ControlPublicKey.ToByteArray();
    }

    /// <summary>Status, progress, tokens, logs and the result of a job as they happen (the current state first).</summary>
    public async IAsyncEnumerable<WatchJobResponse> StreamJobAsync(
        string networkId, string jobId, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var call = Jobs.WatchJob(new WatchJobRequest { NetworkId = networkId, JobId = jobId }, cancellationToken: cancellationToken);
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            yield return call.ResponseStream.Current;
        }
    }

    /// <summary>
    /// Submits <paramref name="input"/> and watches it until its result; <paramref name="onFrame"/> sees every frame.
    /// Throws <see cref="MeshJobException"/> when the job fails, is cancelled, or ends without a result.
    /// </summary>
    /// <remarks>One call (RunJob): the server subscribes to the job's frames before it starts it and streams the submitted
    /// job first, so there is no window between submit and watch and no second RPC.</remarks>
    public async Task<JobRun> RunAsync(
        string networkId, WorkloadInput input, JobRouting? routing = null, Action<WatchJobResponse>? onFrame = null, CancellationToken cancellationToken = default)
    {
        var (request, headers) = await PrepareSubmitAsync(networkId, input, routing, null, cancellationToken);
        using var call = Jobs.RunJob(new RunJobRequest { Envelope = request.Envelope, IdempotencyKey = request.IdempotencyKey }, headers, cancellationToken: cancellationToken);
        if (!await call.ResponseStream.MoveNext(cancellationToken) || call.ResponseStream.Current.Frame?.Status?.Job is not { } submitted)
        {
            throw new InvalidOperationException("RunJob did not start with the submitted job.");
        }

        onFrame?.Invoke(call.ResponseStream.Current.Frame);
        if (submitted.State is JobState.Failed or JobState.Cancelled)
        {
            throw MeshJobException.ForTerminal(submitted);
        }

        return await FollowAsync(networkId, submitted, Frames(call, cancellationToken), onFrame, cancellationToken);

        static async IAsyncEnumerable<WatchJobResponse> Frames(AsyncServerStreamingCall<RunJobResponse> call, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                if (call.ResponseStream.Current.Frame is { } frame)
                {
                    yield return frame;
                }
            }
        }
    }

    /// <summary>Watches an already submitted job until its result (see <see cref="RunAsync"/>).</summary>
    public Task<JobRun> WaitForResultAsync(string networkId, Job job, Action<WatchJobResponse>? onFrame = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(job);
        return FollowAsync(networkId, job, StreamJobAsync(networkId, job.JobId, cancellationToken), onFrame, cancellationToken);
    }

    // The frames of one job (WatchJob's, or RunJob's after the first) until its result; RunAsync and WaitForResultAsync share it.
    private async Task<JobRun> FollowAsync(string networkId, Job job, IAsyncEnumerable<WatchJobResponse> frames, Action<WatchJobResponse>? onFrame, CancellationToken cancellationToken)
    {
        var last = job;
        await foreach (var frame in frames.WithCancellation(cancellationToken))
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Token && !frame.Token.Nonce.IsEmpty)
            {
                // Tokens of an encrypted job are sealed to this client; onFrame sees them opened.
                frame.Token.Token = Google.Protobuf.ByteString.CopyFromUtf8(OpenToken(frame.Token, job.JobId));
                frame.Token.Nonce = Google.Protobuf.ByteString.Empty;
            }

            onFrame?.Invoke(frame);
            switch (frame.FrameCase)
            {
                case WatchJobResponse.FrameOneofCase.Status when frame.Status.Job is not null:
                    last = frame.Status.Job;
                    if (last.State is JobState.Failed or JobState.Cancelled)
                    {
                        throw MeshJobException.ForTerminal(last);
                    }

                    break;
                case WatchJobResponse.FrameOneofCase.Result:
                    return new JobRun(frame.Result.Job ?? last, Decode(frame.Result, frame.Result.Job ?? last));
            }
        }

        // The stream may end right after a COMPLETED status; the stored result is one call away.
        var final = await Jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = job.JobId }, deadline: Deadline(), cancellationToken: cancellationToken);
        var finalJob = final.Job ?? last;
        if (finalJob.State is JobState.Failed or JobState.Cancelled)
        {
            throw MeshJobException.ForTerminal(finalJob);
        }

        if (finalJob.State == JobState.Completed && final.Result is not null)
        {
            return new JobRun(finalJob, Decode(final.Result, finalJob));
        }

        throw new MeshJobException($"The watch stream of job {job.JobId} ended while it was {finalJob.State}, without a result.", finalJob);
    }

    /// <summary>Embeds <paramref name="texts"/> on the network and returns the vectors.</summary>
    public async Task<EmbeddingsOutput> RunEmbeddingsAsync(
        string networkId, IEnumerable<string> texts, JobRouting? routing = null, string? model = null, CancellationToken cancellationToken = default)
    {
        var input = new WorkloadInput { Embeddings = new EmbeddingsInput { Model = model ?? "" } };
        input.Embeddings.Texts.Add(texts);
        var run = await RunAsync(networkId, input, routing, null, cancellationToken);
        return run.Output.OutputCase == WorkloadOutput.OutputOneofCase.Embeddings
            ? run.Output.Embeddings
            : throw new MeshJobException($"Job {run.Job.JobId} returned {run.Output.OutputCase} output instead of embeddings.", run.Job);
    }

    /// <summary>Balances and the first page of ledger events of a network.</summary>
    public Task<LedgerView> GetLedgerAsync(string networkId, int pageSize = 0, string? pageToken = null, CancellationToken cancellationToken = default) =>
        GetLedgerAsync(networkId, pageSize, pageToken, newestFirst: false, cancellationToken);

    /// <summary>Balances plus one page of events, newest first when <paramref name="newestFirst"/>.</summary>
    public async Task<LedgerView> GetLedgerAsync(string networkId, int pageSize, string? pageToken, bool newestFirst, CancellationToken cancellationToken = default)
    {
        var balances = Ledger.GetBalancesAsync(new GetBalancesRequest { NetworkId = networkId }, deadline: Deadline(), cancellationToken: cancellationToken);
        var events = Ledger.ListLedgerEventsAsync(
            new ListLedgerEventsRequest { NetworkId = networkId, PageSize = pageSize, PageToken = pageToken ?? "", NewestFirst = newestFirst },
            deadline: Deadline(), cancellationToken: cancellationToken);
        var balancesResponse = await balances;
        var eventsResponse = await events;
        return new LedgerView(balancesResponse.Balances ?? new Balances { NetworkId = networkId }, eventsResponse.Events, eventsResponse.NextPageToken);
    }

    /// <summary>Decodes a result frame's output, decrypting it with <see cref="SubmitterKey"/> when it was sealed to the submitter.</summary>
    public WorkloadOutput Decode(JobResultFrame result, Job? job = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (!result.Encrypted)
        {
            return DecodeOutput(result, job);
        }

        var jobId = job?.JobId ?? result.Job?.JobId ?? "";
        byte[] plaintext;
        try
        {
            plaintext = PayloadCrypto.OpenFromDevice(result.Output.Span, result.Nonce.Span, SubmitterKey, jobId);
        }
        catch (PayloadCryptoException ex)
        {
            throw new MeshJobException($"The result of job {jobId} cannot be decrypted with this client's submitter key: {ex.Message}", ex);
        }

        return DecodeOutput(new JobResultFrame { Output = Google.Protobuf.ByteString.CopyFrom(plaintext) }, job);
    }

    /// <summary>The text of a streamed token: opened with <see cref="SubmitterKey"/> when the device sealed it (non-empty nonce).</summary>
    public string OpenToken(JobTokenFrame token, string jobId)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (token.Nonce.IsEmpty)
        {
            return token.Token.ToStringUtf8();
        }

        try
        {
            return System.Text.Encoding.UTF8.GetString(PayloadCrypto.OpenFromDevice(token.Token.Span, token.Nonce.Span, SubmitterKey, jobId));
        }
        catch (PayloadCryptoException ex)
        {
            throw new MeshJobException($"A streamed token of job {jobId} cannot be decrypted with this client's submitter key: {ex.Message}", ex);
        }
    }

    /// <summary>Decodes an unencrypted result frame's output (see <see cref="Decode"/> for encrypted ones).</summary>
    public static WorkloadOutput DecodeOutput(JobResultFrame result, Job? job = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Encrypted)
        {
            throw new MeshJobException($"The result of job {job?.JobId} is encrypted to the submitter; this client cannot decrypt it.", job);
        }

        try
        {
            return WorkloadOutput.Parser.ParseFrom(result.Output);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException ex)
        {
            throw new MeshJobException($"The result of job {job?.JobId} is not a valid WorkloadOutput: {ex.Message}", ex);
        }
    }

    /// <inheritdoc />
    public void Dispose() => ownedChannel?.Dispose();

    private DateTime? Deadline() => DefaultTimeout > TimeSpan.Zero ? DateTime.UtcNow + DefaultTimeout : null;

    private static (IdentityService.IdentityServiceClient, NetworkService.NetworkServiceClient, DeviceService.DeviceServiceClient,
        JobService.JobServiceClient, LedgerService.LedgerServiceClient, PolicyService.PolicyServiceClient, ModelService.ModelServiceClient,
        AuditService.AuditServiceClient) CreateClients(CallInvoker invoker) =>
        (new(invoker), new(invoker), new(invoker), new(invoker), new(invoker), new(invoker), new(invoker), new(invoker));
}

using Google.Protobuf;
using Google.Rpc;
using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Common.Seams;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>The control plane over real Kestrel + gRPC, run once per store dialect.</summary>
[TestFixtureSource(nameof(Stores))]
[Category("Integration")]
[NonParallelizable]
public sealed class ControlPlaneTests(string store)
{
    public static readonly string[] Stores = ["sqlite", "postgres"];
    private static readonly int[] SpecBackoff = [250, 750, 2000];

    private ControlTestServer _server = null!;
    private string _token = "";

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _server = await ControlTestServer.StartAsync(store);
        _token = await _server.SignInAsync("alice@example.com");
    }

    [OneTimeTearDown]
    public async Task StopServer() => await _server.DisposeAsync();

    private NetworkService.NetworkServiceClient Networks(string? token = null) => new(_server.Channel(token ?? _token));

    private DeviceService.DeviceServiceClient Devices(string? token = null) => new(_server.Channel(token ?? _token));

    private JobService.JobServiceClient Jobs(string? token = null) => new(_server.Channel(token ?? _token));

    private LedgerService.LedgerServiceClient Ledger(string? token = null) => new(_server.Channel(token ?? _token));

    [Test]
    public async Task Migrations_apply_twice_idempotently()
    {
        var migrator = _server.Services.GetRequiredService<Migrator>();
        Assert.That(await migrator.MigrateAsync(CancellationToken.None), Is.EqualTo(0), "already applied at start");
        Assert.That(await migrator.MigrateAsync(CancellationToken.None), Is.EqualTo(0));
        var database = _server.Services.GetRequiredService<Database>();
        var versions = await database.RunAsync(c => Dapper.SqlMapper.ExecuteScalarAsync<long>(c, "SELECT COUNT(*) FROM schema_migrations"), CancellationToken.None);
        Assert.That(versions, Is.EqualTo(migrator.Migrations().Count));
    }

    [Test]
    public async Task Created_network_has_the_spec_defaults_and_is_listed()
    {
        var created = (await Networks().CreateNetworkAsync(new CreateNetworkRequest { Name = "home lab" })).Network;
        var s = created.Settings;
        Assert.Multiple(() =>
        {
            Assert.That(created.NetworkId, Does.StartWith("net_"));
            Assert.That(created.Visibility, Is.EqualTo(NetworkVisibility.Private));
            Assert.That(created.BillingMode, Is.EqualTo(BillingMode.CreditsInternal));
            Assert.That(created.CallerRole, Is.EqualTo(Role.Admin));
            Assert.That(created.CaPublicKey.Length, Is.EqualTo(32));
            Assert.That(s.Credits.TierRates, Has.Count.EqualTo(5));
            Assert.That(s.Credits.MultiplierBps, Is.EqualTo(10_000));
            Assert.That(s.Credits.BillingGranularityMs, Is.EqualTo(1000));
            Assert.That(s.Credits.SharedPoolEnabled, Is.True);
            Assert.That(s.ScoringWeights.RttMs, Is.EqualTo(-0.3));
            Assert.That(s.ScoringWeights.CreditRateEfficiency, Is.EqualTo(0.15));
            Assert.That(s.MobileSafety.MobileContributionPolicy, Is.EqualTo(MobileContributionPolicy.ChargingAndWifiOnly));
            Assert.That(s.RetryPolicy.MaxAttempts, Is.EqualTo(3));
            Assert.That(s.RetryPolicy.BackoffMs, Is.EqualTo(SpecBackoff));
            Assert.That(s.Privacy, Is.EqualTo(Privacy.PrivateNetworkOnly));
            Assert.That(s.WorkloadVisibility, Is.EqualTo(WorkloadVisibility.MembersOnly));
            Assert.That(s.DeviceDiscovery, Is.EqualTo(DeviceDiscovery.ViaControlPlane));
            Assert.That(s.MemberApprovalMode, Is.EqualTo(MemberApprovalMode.AdminApprovesNewMembers));
            Assert.That(created.CreditBalanceSummary.PoolBalanceMicro, Is.EqualTo(1000 * 1_000_000L));
        });

        var listed = await Networks().ListNetworksAsync(new ListNetworksRequest());
        Assert.That(listed.Networks.Select(n => n.NetworkId), Does.Contain(created.NetworkId));
    }

    [Test]
    public async Task Empty_or_long_network_name_is_invalid_argument_with_a_field_violation()
    {
        var e = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Networks().CreateNetworkAsync(new CreateNetworkRequest { Name = "" }).ResponseAsync);
        Assert.That(e.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations[0].Field, Is.EqualTo("name"));
        await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Networks().CreateNetworkAsync(new CreateNetworkRequest { Name = new string('x', 65) }).ResponseAsync);
    }

    [Test]
    public async Task Calls_without_a_session_are_unauthenticated() =>
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => new NetworkService.NetworkServiceClient(_server.Channel()).ListNetworksAsync(new ListNetworksRequest()).ResponseAsync);

    [Test]
    public async Task Unknown_and_foreign_networks_are_not_found()
    {
        await Rpc.ThrowsAsync(StatusCode.NotFound, () => Networks().GetNetworkAsync(new GetNetworkRequest { NetworkId = "net_doesnotexist" }).ResponseAsync);
        var bob = await _server.SignInAsync("bob@example.com");
        var bobs = (await Networks(bob).CreateNetworkAsync(new CreateNetworkRequest { Name = "bob's" })).Network;
        await Rpc.ThrowsAsync(StatusCode.NotFound, () => Networks().GetNetworkAsync(new GetNetworkRequest { NetworkId = bobs.NetworkId }).ResponseAsync);
        await Rpc.ThrowsAsync(StatusCode.NotFound, () => Devices().ListDevicesAsync(new ListDevicesRequest { NetworkId = bobs.NetworkId }).ResponseAsync);
    }

    [Test]
    public async Task Join_token_registers_a_device_whose_certificate_verifies_with_the_network_ca()
    {
        var network = await CreateNetworkAsync();
        var join = await Devices().CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId });
        Assert.That(JoinLink.TryParse(join.JoinLink, out var link), Is.True);
        Assert.That(link!.Fingerprint, Is.EqualTo(_server.Fingerprint));
        Assert.That(join.QrText, Does.Contain("██"));

        var (registered, _) = await RegisterAsync(link.Token);
        var trusted = new Dictionary<string, byte[]> { [network.CaKeyId] = network.CaPublicKey.ToByteArray() };
        var details = DeviceCertificates.Verify(registered.Certificate, trusted, DateTimeOffset.UtcNow, out var reason);
        Assert.That(details, Is.Not.Null, reason);
        Assert.Multiple(() =>
        {
            Assert.That(details!.DeviceId, Is.EqualTo(registered.Device.DeviceId));
            Assert.That(details.NetworkId, Is.EqualTo(network.NetworkId));
            Assert.That(registered.RelayUrl, Is.EqualTo(_server.Url));
            Assert.That(registered.NetworkKeys.Select(k => k.Purpose), Is.EquivalentTo(new[] { NetworkKeyPurpose.CertificateAuthority, NetworkKeyPurpose.ControlSigning }));
        });

        var authority = _server.Services.GetRequiredService<IDeviceAuthority>();
        var (identity, why) = await authority.AuthenticateAsync(registered.Certificate, CancellationToken.None);
        Assert.That(identity?.DeviceId, Is.EqualTo(registered.Device.DeviceId), why);

        await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, () => RegisterAsync(link.Token));
    }

    [Test]
    public async Task Expired_join_token_is_failed_precondition()
    {
        var network = await CreateNetworkAsync();
        var secret = Secrets.NewToken("jt");
        await _server.Services.GetRequiredService<DeviceRepository>().InsertJoinTokenAsync(new JoinTokenRow
        {
            JoinTokenId = "jti_expired" + Guid.NewGuid().ToString("N")[..8],
            NetworkId = network.NetworkId,
            TokenHash = Secrets.Hash(secret),
            CreatedByUserId = network.CreatedByUserId,
            CreateTimeMs = DateTimeOffset.UtcNow.AddHours(-2).ToUnixTimeMilliseconds(),
            ExpireTimeMs = DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeMilliseconds(),
            MaxUses = 1,
        }, CancellationToken.None);
        var e = await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, () => RegisterAsync(secret));
        Assert.That(e.Status.Detail, Does.Contain("join token expired"));
    }

    [Test]
    public async Task Registration_with_a_bad_proof_is_refused()
    {
        var network = await CreateNetworkAsync();
        var join = await Devices().CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId });
        Assert.That(JoinLink.TryParse(join.JoinLink, out var link), Is.True);
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => RegisterAsync(link!.Token, tamperProof: true));
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => RegisterAsync("jt_unknown"));
    }

    [Test]
    public async Task Certificate_signed_for_another_network_is_refused_by_the_device_authority()
    {
        var a = await CreateNetworkAsync();
        var b = await CreateNetworkAsync();
        var (registered, _) = await RegisterInAsync(a.NetworkId);

        // A CA of network A signs a certificate that claims network B.
        var vault = _server.Services.GetRequiredService<NetworkKeyVault>();
        var caA = (await vault.GetKeysAsync(a.NetworkId, CancellationToken.None)).Ca;
        var details = DeviceCertificateDetails.Parser.ParseFrom(registered.Certificate.Details);
        details.NetworkId = b.NetworkId;
        var forged = DeviceCertificates.Issue(details, caA);

        var authority = _server.Services.GetRequiredService<IDeviceAuthority>();
        var (identity, reason) = await authority.AuthenticateAsync(forged, CancellationToken.None);
        Assert.That(identity, Is.Null);
        Assert.That(reason, Is.EqualTo(MeshAI.Control.Devices.DeviceAuthority.NotTrusted), "the same reason as for an unknown network (no probing)");
    }

    [Test]
    public async Task Revoked_device_is_cut_and_refused()
    {
        var network = await CreateNetworkAsync();
        var (registered, _) = await RegisterInAsync(network.NetworkId);
        var revoked = await Devices().RevokeDeviceAsync(new RevokeDeviceRequest { NetworkId = network.NetworkId, DeviceId = registered.Device.DeviceId, Reason = "lost" });
        Assert.That(revoked.Device.OnlineStatus, Is.EqualTo(OnlineStatus.Revoked));
        Assert.That(_server.Dispatcher.Cuts, Does.Contain((registered.Device.DeviceId, CutReason.Revoked)));
        var (identity, reason) = await _server.Services.GetRequiredService<IDeviceAuthority>().AuthenticateAsync(registered.Certificate, CancellationToken.None);
        Assert.That(identity, Is.Null);
        Assert.That(reason, Does.Contain("revoked"));
    }

    [Test]
    public async Task Listed_devices_show_live_presence()
    {
        var network = await CreateNetworkAsync();
        var (registered, _) = await RegisterInAsync(network.NetworkId);
        var before = await Devices().GetDeviceAsync(new GetDeviceRequest { NetworkId = network.NetworkId, DeviceId = registered.Device.DeviceId });
        Assert.That(before.Device.OnlineStatus, Is.EqualTo(OnlineStatus.Offline));
        GoOnline(registered.Device, rttMs: 7);
        var list = await Devices().ListDevicesAsync(new ListDevicesRequest { NetworkId = network.NetworkId });
        var card = list.Devices.Single();
        Assert.Multiple(() =>
        {
            Assert.That(card.OnlineStatus, Is.EqualTo(OnlineStatus.Online));
            Assert.That(card.LatencyEstimate, Is.EqualTo(7));
            Assert.That(card.CapabilityTier, Is.EqualTo(Tier._2));
        });
        Assert.That((await Networks().GetNetworkAsync(new GetNetworkRequest { NetworkId = network.NetworkId })).Network.OnlineDevicesCount, Is.EqualTo(1));
    }

    [Test]
    public async Task Oversized_payload_is_invalid_argument_with_a_bad_request_detail()
    {
        var network = await CreateNetworkAsync();
        var envelope = EmbeddingsEnvelope(network.NetworkId);
        envelope.InputManifest.Payload = ByteString.CopyFrom(new byte[(4 * 1024 * 1024) + 1]);
        var e = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Jobs().SubmitJobAsync(new SubmitJobRequest { Envelope = envelope }).ResponseAsync);
        var bad = e.GetRpcStatus()!.GetDetail<BadRequest>();
        Assert.That(bad.FieldViolations[0].Field, Is.EqualTo("envelope.input_manifest.payload"));
    }

    [Test]
    public async Task Unspecified_workload_is_invalid_argument()
    {
        var network = await CreateNetworkAsync();
        var envelope = EmbeddingsEnvelope(network.NetworkId);
        envelope.WorkloadId = WorkloadClass.Unspecified;
        var e = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Jobs().SubmitJobAsync(new SubmitJobRequest { Envelope = envelope }).ResponseAsync);
        Assert.That(e.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations[0].Field, Is.EqualTo("envelope.workload_id"));
    }

    [Test]
    public async Task Submitter_signature_that_does_not_verify_is_invalid_argument_on_auth_signature()
    {
        var network = await CreateNetworkAsync();
        var envelope = EmbeddingsEnvelope(network.NetworkId);
        EnvelopeSignatures.Sign(envelope, SigningKeyPair.Generate());
        envelope.MaxCostCredits = 123; // changed after signing
        var e = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Jobs().SubmitJobAsync(new SubmitJobRequest { Envelope = envelope }).ResponseAsync);
        Assert.That(e.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations[0].Field, Is.EqualTo("envelope.auth_signature"));
    }

    [Test]
    public async Task Submitter_signed_envelope_is_accepted_and_still_verifies_in_the_offer()
    {
        var network = await CreateNetworkAsync();
        var (registered, _) = await RegisterInAsync(network.NetworkId);
        GoOnline(registered.Device);
        var envelope = EmbeddingsEnvelope(network.NetworkId);
        envelope.TimeoutMs = 0; // control fills in its default after the client signed
        EnvelopeSignatures.Sign(envelope, SigningKeyPair.Generate());

        var job = (await Jobs().SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;

        var offered = _server.Dispatcher.Offers.Select(o => JobEnvelope.Parser.ParseFrom(o.Offer.Envelope)).Last(o => o.JobId == job.JobId);
        Assert.Multiple(() =>
        {
            Assert.That(offered.SubmittedByUserId, Is.Not.Empty);
            Assert.That(offered.TimeoutMs, Is.GreaterThan(0));
            Assert.That(EnvelopeSignatures.Verify(offered), Is.True);
        });
    }

    [Test]
    public async Task Submitting_to_an_unknown_network_is_not_found() =>
        await Rpc.ThrowsAsync(StatusCode.NotFound, () => Jobs().SubmitJobAsync(new SubmitJobRequest { Envelope = EmbeddingsEnvelope("net_unknown0000000000") }).ResponseAsync);

    [Test]
    public async Task Cost_cap_below_the_estimate_is_failed_precondition()
    {
        var network = await CreateNetworkAsync();
        var (registered, _) = await RegisterInAsync(network.NetworkId);
        GoOnline(registered.Device);
        var envelope = EmbeddingsEnvelope(network.NetworkId);
        envelope.MaxCostCredits = 1;
        var e = await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, () => Jobs().SubmitJobAsync(new SubmitJobRequest { Envelope = envelope }).ResponseAsync);
        Assert.That(e.GetRpcStatus()!.GetDetail<PreconditionFailure>().Violations[0].Type, Is.EqualTo("COST_CAP"));
        Assert.That(MeshAI.Common.Errors.RpcErrors.ReasonOf(e), Is.EqualTo("JOB_COST_CAP_EXCEEDED"));
    }

    [Test]
    public async Task Insufficient_credits_is_failed_precondition_of_type_credits()
    {
        var network = (await Networks().CreateNetworkAsync(new CreateNetworkRequest
        {
            Name = "broke",
            Settings = new NetworkSettings { Credits = new CreditSettings { StartingGrantMicro = 1 } },
        })).Network;
        var (registered, _) = await RegisterInAsync(network.NetworkId);
        GoOnline(registered.Device);
        var e = await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, () => Jobs().SubmitJobAsync(new SubmitJobRequest { Envelope = EmbeddingsEnvelope(network.NetworkId) }).ResponseAsync);
        Assert.That(e.GetRpcStatus()!.GetDetail<PreconditionFailure>().Violations[0].Type, Is.EqualTo("CREDITS"));
        Assert.That(MeshAI.Common.Errors.RpcErrors.ReasonOf(e), Is.EqualTo("INSUFFICIENT_CREDITS"));
    }

    [Test]
    public async Task Completed_job_is_billed_once_even_when_the_result_arrives_twice()
    {
        var network = await CreateNetworkAsync();
        var (registered, _) = await RegisterInAsync(network.NetworkId);
        GoOnline(registered.Device);

        var job = (await Jobs().SubmitJobAsync(new SubmitJobRequest { Envelope = EmbeddingsEnvelope(network.NetworkId) })).Job;
        Assert.That(job.State, Is.EqualTo(JobState.Placed));
        var offer = _server.Dispatcher.Offers.Last(o => o.Offer.Envelope.Length > 0 && JobEnvelope.Parser.ParseFrom(o.Offer.Envelope).JobId == job.JobId);
        Assert.That(offer.DeviceId, Is.EqualTo(registered.Device.DeviceId));

        var controlKey = registered.NetworkKeys.Single(k => k.Purpose == NetworkKeyPurpose.ControlSigning);
        var ticket = PlacementTickets.Verify(offer.Offer.Ticket, new Dictionary<string, byte[]> { [controlKey.KeyId] = controlKey.PublicKey.ToByteArray() },
            offer.Offer.Envelope.Span, registered.Device.DeviceId, network.NetworkId, DateTimeOffset.UtcNow, out var why);
        Assert.That(ticket, Is.Not.Null, why);

        using var watch = Jobs().WatchJob(new WatchJobRequest { NetworkId = network.NetworkId, JobId = job.JobId });
        Assert.That(await watch.ResponseStream.MoveNext(CancellationToken.None), Is.True);
        Assert.That(watch.ResponseStream.Current.FrameCase, Is.EqualTo(WatchJobResponse.FrameOneofCase.Status));

        var sink = _server.Services.GetRequiredService<IJobEventSink>();
        var device = Identity(registered);
        await sink.OnAcceptedAsync(device, new JobAccept { JobId = job.JobId, Attempt = 1 }, CancellationToken.None);
        await sink.OnProgressAsync(device, new JobProgress { JobId = job.JobId, Attempt = 1, Fraction = 0.5 }, CancellationToken.None);
        var output = new WorkloadOutput { Embeddings = new EmbeddingsOutput { Dimension = 2, Embeddings = { new Embedding { Values = { 0.5f, 0.25f } } } } };
        var result = new JobResult { JobId = job.JobId, Attempt = 1, Output = output.ToByteString(), Metering = new Metering { RuntimeMs = 1500, Tier = Tier._2 } };
        await sink.OnResultAsync(device, result, 1234, CancellationToken.None);
        await sink.OnResultAsync(device, result, 1234, CancellationToken.None);

        var frames = new List<WatchJobResponse>();
        while (await watch.ResponseStream.MoveNext(CancellationToken.None))
        {
            frames.Add(watch.ResponseStream.Current);
        }

        Assert.That(frames.Select(f => f.FrameCase), Does.Contain(WatchJobResponse.FrameOneofCase.Progress));
        Assert.That(frames[^1].FrameCase, Is.EqualTo(WatchJobResponse.FrameOneofCase.Result));

        var got = await Jobs().GetJobAsync(new GetJobRequest { NetworkId = network.NetworkId, JobId = job.JobId });
        Assert.Multiple(() =>
        {
            Assert.That(got.Job.State, Is.EqualTo(JobState.Completed));
            Assert.That(got.Job.BilledRuntimeMs, Is.EqualTo(2000));
            Assert.That(got.Job.CostMicro, Is.EqualTo(200_000)); // 2 s at 6 credits/min
            Assert.That(WorkloadOutput.Parser.ParseFrom(got.Result.Output).Embeddings.Dimension, Is.EqualTo(2));
        });

        var events = (await Ledger().ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = network.NetworkId, JobId = job.JobId })).Events;
        Assert.That(events.Select(e => e.EventType), Is.EquivalentTo(new[]
        {
            LedgerEventType.JobStarted, LedgerEventType.JobCompleted, LedgerEventType.CreditsBurned, LedgerEventType.CreditsMinted,
        }));
        var balances = (await Ledger().GetBalancesAsync(new GetBalancesRequest { NetworkId = network.NetworkId })).Balances;
        Assert.Multiple(() =>
        {
            Assert.That(balances.PoolBalanceMicro, Is.EqualTo((1000 * 1_000_000L) - 200_000));
            Assert.That(balances.BurnedTotalMicro, Is.EqualTo(200_000));
            Assert.That(balances.MintedTotalMicro, Is.EqualTo(133_333)); // 2 s at 4 credits/min, floored
            Assert.That(balances.Devices.Single().DeviceId, Is.EqualTo(registered.Device.DeviceId));
        });

        var explain = await Jobs().ExplainJobAsync(new ExplainJobRequest { NetworkId = network.NetworkId, JobId = job.JobId });
        Assert.That(explain.DebugView.SelectedDeviceId, Is.EqualTo(registered.Device.DeviceId));
        Assert.That(explain.DebugView.Retries.Single().Cause, Is.EqualTo(AttemptCause.Succeeded));
    }

    [Test]
    public async Task RunJob_streams_the_submitted_job_first_then_the_frames_to_the_result()
    {
        var network = await CreateNetworkAsync();
        var (registered, _) = await RegisterInAsync(network.NetworkId);
        GoOnline(registered.Device);

        // One call: the first frame is the job as SubmitJob returns it; no WatchJob, so no window to miss frames in.
        using var run = Jobs().RunJob(new RunJobRequest { Envelope = EmbeddingsEnvelope(network.NetworkId), IdempotencyKey = "run-once" });
        Assert.That(await run.ResponseStream.MoveNext(CancellationToken.None), Is.True);
        var job = run.ResponseStream.Current.Frame.Status.Job;
        Assert.That(job.State, Is.EqualTo(JobState.Placed));
        Assert.That(job.Attempts.Single().DeviceId, Is.EqualTo(registered.Device.DeviceId));

        // The job's frames published right away (before anyone could have called WatchJob) still reach the stream.
        var sink = _server.Services.GetRequiredService<IJobEventSink>();
        var device = Identity(registered);
        await sink.OnAcceptedAsync(device, new JobAccept { JobId = job.JobId, Attempt = 1 }, CancellationToken.None);
        await sink.OnProgressAsync(device, new JobProgress { JobId = job.JobId, Attempt = 1, Fraction = 0.5 }, CancellationToken.None);
        var output = new WorkloadOutput { Embeddings = new EmbeddingsOutput { Dimension = 2, Embeddings = { new Embedding { Values = { 0.5f, 0.25f } } } } };
        await sink.OnResultAsync(device, new JobResult { JobId = job.JobId, Attempt = 1, Output = output.ToByteString(), Metering = new Metering { RuntimeMs = 1500, Tier = Tier._2 } }, 1234, CancellationToken.None);
        var frames = new List<WatchJobResponse>();
        while (await run.ResponseStream.MoveNext(CancellationToken.None))
        {
            frames.Add(run.ResponseStream.Current.Frame);
        }

        Assert.That(frames.Select(f => f.FrameCase), Does.Contain(WatchJobResponse.FrameOneofCase.Progress));
        Assert.That(frames[^1].FrameCase, Is.EqualTo(WatchJobResponse.FrameOneofCase.Result));
        Assert.That(frames[^1].Result.Job.State, Is.EqualTo(JobState.Completed));
        Assert.That(WorkloadOutput.Parser.ParseFrom(frames[^1].Result.Output).Embeddings.Dimension, Is.EqualTo(2));

        // The same idempotency key again: the same job, streamed as WatchJob does (its current state, then its result).
        using var again = Jobs().RunJob(new RunJobRequest { Envelope = EmbeddingsEnvelope(network.NetworkId), IdempotencyKey = "run-once" });
        var replay = new List<WatchJobResponse>();
        while (await again.ResponseStream.MoveNext(CancellationToken.None))
        {
            replay.Add(again.ResponseStream.Current.Frame);
        }

        Assert.That(replay[0].Status.Job.JobId, Is.EqualTo(job.JobId));
        Assert.That(replay[^1].Result.Job.JobId, Is.EqualTo(job.JobId));
        var events = (await Ledger().ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = network.NetworkId, JobId = job.JobId })).Events;
        Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");

        // Errors come as SubmitJob's, before any frame: no eligible device in a network without one.
        var empty = await CreateNetworkAsync();
        using var refused = Jobs().RunJob(new RunJobRequest { Envelope = EmbeddingsEnvelope(empty.NetworkId) });
        var e = await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, () => refused.ResponseStream.MoveNext(CancellationToken.None));
        Assert.That(MeshAI.Common.Errors.RpcErrors.ReasonOf(e), Is.EqualTo("NO_ELIGIBLE_DEVICE"));
    }

    [Test]
    public async Task Declined_job_retries_on_the_next_device_then_fails_without_burning()
    {
        var network = await CreateNetworkAsync();
        var (first, _) = await RegisterInAsync(network.NetworkId);
        var (second, _) = await RegisterInAsync(network.NetworkId);
        GoOnline(first.Device, rttMs: 5);
        GoOnline(second.Device, rttMs: 50);
        var job = (await Jobs().SubmitJobAsync(new SubmitJobRequest { Envelope = EmbeddingsEnvelope(network.NetworkId) })).Job;
        Assert.That(job.DeviceId, Is.EqualTo(first.Device.DeviceId), "lowest rtt wins");

        var sink = _server.Services.GetRequiredService<IJobEventSink>();
        await sink.OnDeclinedAsync(Identity(first), new JobDecline { JobId = job.JobId, Attempt = 1, Reason = DeclineReason.Busy }, CancellationToken.None);
        var retried = await WaitForAsync(network.NetworkId, job.JobId, j => j.Attempts.Count == 2 && j.DeviceId == second.Device.DeviceId);
        Assert.That(retried.DeviceId, Is.EqualTo(second.Device.DeviceId));

        await sink.OnDeclinedAsync(Identity(second), new JobDecline { JobId = job.JobId, Attempt = 2, Reason = DeclineReason.Busy }, CancellationToken.None);
        var failed = await WaitForAsync(network.NetworkId, job.JobId, j => j.State == JobState.Failed);
        Assert.That(failed.Attempts.Select(a => a.Cause), Is.EqualTo(new[] { AttemptCause.NodeDecline, AttemptCause.NodeDecline }));
        var events = (await Ledger().ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = network.NetworkId, JobId = job.JobId })).Events;
        Assert.That(events.Select(e => e.EventType), Is.EqualTo(new[] { LedgerEventType.JobFailed }));
    }

    [Test]
    public async Task Device_code_login_hands_out_a_session_once_after_the_magic_link_is_opened()
    {
        var identity = new MeshAI.Contracts.Identity.V1.IdentityService.IdentityServiceClient(_server.Channel());
        var started = await identity.StartDeviceLoginAsync(new MeshAI.Contracts.Identity.V1.StartDeviceLoginRequest { Email = "carol@example.com", ClientName = "cli" });
        var pending = await identity.PollDeviceLoginAsync(new MeshAI.Contracts.Identity.V1.PollDeviceLoginRequest { DeviceCode = started.DeviceCode });
        Assert.That(pending.State, Is.EqualTo(MeshAI.Contracts.Identity.V1.DeviceLoginState.Pending));

        using var http = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true });
        var page = await http.GetStringAsync(_server.Url + "/auth/magic?token=" + Uri.EscapeDataString(_server.ReadMagicToken("carol@example.com")));
        Assert.That(page, Does.Contain("approved"));

        var approved = await identity.PollDeviceLoginAsync(new MeshAI.Contracts.Identity.V1.PollDeviceLoginRequest { DeviceCode = started.DeviceCode });
        Assert.That(approved.SessionToken, Does.StartWith("mss_"));
        var again = await identity.PollDeviceLoginAsync(new MeshAI.Contracts.Identity.V1.PollDeviceLoginRequest { DeviceCode = started.DeviceCode });
        Assert.That(again.SessionToken, Is.Empty);
        var me = await new MeshAI.Contracts.Identity.V1.IdentityService.IdentityServiceClient(_server.Channel(approved.SessionToken)).GetCurrentUserAsync(new());
        Assert.That(me.User.Email, Is.EqualTo("carol@example.com"));
    }

    private async Task<Network> CreateNetworkAsync() =>
        (await Networks().CreateNetworkAsync(new CreateNetworkRequest { Name = "net " + Guid.NewGuid().ToString("N")[..6] })).Network;

    private async Task<(RegisterDeviceResponse Response, SigningKeyPair Key)> RegisterInAsync(string networkId)
    {
        var join = await Devices().CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = networkId });
        Assert.That(JoinLink.TryParse(join.JoinLink, out var link), Is.True);
        return await RegisterAsync(link!.Token);
    }

    private async Task<(RegisterDeviceResponse Response, SigningKeyPair Key)> RegisterAsync(string joinToken, bool tamperProof = false)
    {
        var signing = SigningKeyPair.Generate();
        var encryption = EncryptionKeyPair.Generate();
        var installation = Guid.NewGuid().ToString("N");
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var proof = signing.Sign(ProofMessages.Register(joinToken, installation, tamperProof ? now + 1 : now, signing.PublicKey, encryption.PublicKey));
        var response = await new DeviceService.DeviceServiceClient(_server.Channel()).RegisterDeviceAsync(new RegisterDeviceRequest
        {
            JoinToken = joinToken,
            DeviceName = "laptop",
            InstallationId = installation,
            SigningPublicKey = ByteString.CopyFrom(signing.PublicKey),
            EncryptionPublicKey = ByteString.CopyFrom(encryption.PublicKey),
            Capabilities = Laptop(),
            TimestampUnixMs = now,
            ProofSignature = ByteString.CopyFrom(proof),
        });
        return (response, signing);
    }

    private static CapabilityReport Laptop() => new()
    {
        CpuCores = 8,
        CpuArch = "x64",
        RamMb = 16_000,
        Os = "linux",
        Platform = Platform.Linux,
        NetworkRttMs = 10,
        Workloads = { WorkloadClass.Embeddings, WorkloadClass.DiagnosticEcho },
    };

    private void GoOnline(Device device, int rttMs = 10) =>
        _server.Services.GetRequiredService<IPresenceDirectory>().Upsert(
            new PresenceRecord(device.DeviceId, device.NetworkId, "relay-test", Laptop(), true, DateTimeOffset.UtcNow, rttMs));

    private static DeviceIdentity Identity(RegisterDeviceResponse registered)
    {
        var details = DeviceCertificateDetails.Parser.ParseFrom(registered.Certificate.Details);
        return new DeviceIdentity(details.DeviceId, details.NetworkId, details.OwnerUserId, details.SigningPublicKey.ToByteArray(), details.Serial);
    }

    private static JobEnvelope EmbeddingsEnvelope(string networkId) => new()
    {
        NetworkId = networkId,
        WorkloadId = WorkloadClass.Embeddings,
        RoutingMode = RoutingMode.Auto,
        InputManifest = new InputManifest { Payload = new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { "hello", "world" } } }.ToByteString() },
        PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
    };

    private async Task<Job> WaitForAsync(string networkId, string jobId, Func<Job, bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var job = (await Jobs().GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = jobId })).Job;
            if (condition(job) || DateTime.UtcNow > deadline)
            {
                return job;
            }

            await Task.Delay(50);
        }
    }
}

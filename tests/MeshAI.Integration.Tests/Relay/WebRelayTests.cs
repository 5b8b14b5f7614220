using Google.Protobuf;
using Grpc.Core;
using MeshAI.Agent.Jobs;
using MeshAI.Agent.State;
using MeshAI.Client;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control;
using MeshAI.Control.Storage;
using MeshAI.Integration.Tests.Control;
using MeshAI.Integration.Tests.Security;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Relay;

/// <summary>
/// The relay for browser devices (WebRelayService over real gRPC-Web, the real server in-process): a phone's browser is a
/// device like any agent. Its jobs go through the same scheduler (placement, policy filters, signed tickets), the same relay
/// core (presence, byte counting, cuts) and the same job runner and ledger (retries, settlement, mint rules) as a native
/// agent's — shown by running the same job on both and comparing what control records (#13).
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class WebRelayTests
{
    private static CapabilityReport Phone(bool charging = true, NetworkType network = NetworkType.Wifi, int battery = 90) => new()
    {
        CpuCores = 8,
        RamMb = 8192,
        Os = "Android 14",
        Platform = Platform.Web,
        IsMobile = true,
        BatteryStateOptional = new BatteryState { Percent = battery, Charging = charging, PluggedIn = charging },
        NetworkType = network,
        ThermalStateOptional = ThermalState.Nominal,
        IdleScore = 1,
        Workloads = { WorkloadClass.DiagnosticEcho },
    };

    /// <summary>The spec's scoring weights with credit cost weighed heavily: the cheapest tier goes first (tuned per network).</summary>
    private static ScoringWeights CheapestFirst => new() { RttMs = -0.30, IsPluggedIn = 0.20, ThermalHeadroom = 0.20, IdleScore = 0.15, CreditRateEfficiency = 1 };

    [Test]
    public async Task A_job_on_a_phone_browser_runs_through_the_same_scheduler_relay_and_ledger_as_on_an_agent()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var alice = await host.SignInAsync("web-alice@example.com");
        using var client = new MeshClient(host.Url, host.Fingerprint, alice);
        var network = (await client.CreateNetworkAsync("phones")).NetworkId;
        var (agent, agentKeys) = await host.JoinAsync(alice, network, "laptop");
        await host.GoOnlineAsync(agent, agentKeys);
        var (phone, phoneKeys) = await host.JoinAsync(alice, network, "pixel-browser", Phone());
        await using var web = await WebDeviceClient.ConnectAsync(host.Url, host.Fingerprint, phone, phoneKeys, Phone());
        await web.HeartbeatAsync(1, Phone());

        var card = (await client.Devices.GetDeviceAsync(new GetDeviceRequest { NetworkId = network, DeviceId = phone.DeviceId })).Device;
        Assert.Multiple(() =>
        {
            Assert.That(web.Welcome.DeviceId, Is.EqualTo(phone.DeviceId));
            Assert.That(card.OnlineStatus, Is.EqualTo(OnlineStatus.Online), "presence comes from the same relay core");
            Assert.That(card.Platform, Is.EqualTo(Platform.Web));
            Assert.That(card.CapabilityTier, Is.EqualTo(Tier._0), "a browser is tier0 whatever its hardware");
        });

        // The phone's job: the offer carries a ticket the agent's own verifier accepts, and an encrypted payload for this device.
        var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("from the phone " + Guid.NewGuid()) } };
        var job = await client.SubmitJobAsync(network, input, new JobRouting { Mode = RoutingMode.PinnedDevice, PinnedDeviceIds = [phone.DeviceId] });
        var offerFrame = await web.NextAsync(ConnectResponse.FrameOneofCase.JobOffer);
        var check = new OfferVerifier(phone.ControlKeys, phone.DeviceId, phone.NetworkId).Check(offerFrame.JobOffer);
        Assert.That(check.Accepted, Is.True, check.Detail);
        var plaintext = new EndToEndPayload(phoneKeys, phone.DeviceId).OpenInput(check.Envelope!, check.Envelope!.InputManifest.Payload);
        Assert.That(WorkloadInput.Parser.ParseFrom(plaintext), Is.EqualTo(input), "the payload was sealed to the phone's X25519 key");

        var ticket = check.Ticket!;
        var accept = new JobAccept { JobId = ticket.JobId, Attempt = ticket.Attempt };
        var progress = new JobProgress { JobId = ticket.JobId, Attempt = ticket.Attempt, Fraction = 0.5, Message = "half" };
        var result = EndToEndPayload.SealResult(check.Envelope, new JobResult
        {
            JobId = ticket.JobId,
            Attempt = ticket.Attempt,
            Output = new WorkloadOutput { Echo = new EchoOutput { Data = input.Echo.Data } }.ToByteString(),
            Metering = new Metering { RuntimeMs = 1500, Tier = Tier._0, HeartbeatsDuringRun = 1 },
        });
        await web.Relay.AcceptJobAsync(new AcceptJobRequest { SessionId = web.SessionId, Accept = accept });
        await web.Relay.ReportProgressAsync(new ReportProgressRequest { SessionId = web.SessionId, Progress = progress });
        await web.Relay.ReportResultAsync(new ReportResultRequest { SessionId = web.SessionId, Result = result });
        var phoneRun = await client.WaitForResultAsync(network, job);
        Assert.That(phoneRun.Output.Echo.Data, Is.EqualTo(input.Echo.Data), "the submitter opens the phone's sealed result");

        // The same job on the native agent, for comparison.
        var agentRun = await client.RunAsync(network, input, new JobRouting { Mode = RoutingMode.PinnedDevice, PinnedDeviceIds = [agent.DeviceId] });

        var jobs = new JobService.JobServiceClient(host.Channel(alice));
        var phoneJob = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = network, JobId = job.JobId })).Job;
        var explain = (await jobs.ExplainJobAsync(new ExplainJobRequest { NetworkId = network, JobId = job.JobId })).DebugView;
        var events = (await client.GetLedgerAsync(network, pageSize: 500)).Events;
        var meterings = (await host.Services.GetRequiredService<LedgerRepository>().ListMeteringsAsync(network, CancellationToken.None)).ToList();
        var phoneMetering = meterings.Single(m => m.JobId == job.JobId);
        var relayCounted = offerFrame.CalculateSize() + new ConnectRequest { JobAccept = accept }.CalculateSize() +
                           new ConnectRequest { JobProgress = progress }.CalculateSize() + new ConnectRequest { JobResult = result }.CalculateSize();
        static string[] Kinds(IEnumerable<LedgerEvent> all, string jobId) =>
            [.. all.Where(e => e.JobId == jobId).Select(e => e.EventType + "/" + e.AccountKind).Order(StringComparer.Ordinal)];
        var reconcile = await new LedgerService.LedgerServiceClient(host.Channel(alice)).ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = network });

        Assert.Multiple(() =>
        {
            Assert.That(phoneJob.State, Is.EqualTo(JobState.Completed));
            Assert.That(phoneJob.DeviceId, Is.EqualTo(phone.DeviceId));
            Assert.That(phoneJob.Tier, Is.EqualTo(Tier._0), "billed at the phone's tier");
            Assert.That(explain.SelectedDeviceId, Is.EqualTo(phone.DeviceId), "placed by the scheduler, explained like any placement");
            Assert.That(Kinds(events, job.JobId), Is.EqualTo(Kinds(events, agentRun.Job.JobId)), "the same ledger events as the agent's job");
            Assert.That(events.Single(e => e.JobId == job.JobId && e.EventType == LedgerEventType.CreditsMinted).DeviceId, Is.EqualTo(phone.DeviceId));
            Assert.That(phoneMetering.RelayBytes, Is.EqualTo(relayCounted), "the relay core counted exactly the frames of the web session");
            Assert.That(phoneMetering.MintCapBps, Is.EqualTo(10_000), "plugged in: full mint");
            Assert.That(reconcile.Balanced, Is.True, "the ledger reconciles with the execution records");
        });
    }

    [Test]
    public async Task A_job_a_phone_browser_hands_back_is_retried_on_the_agent_and_billed_once()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var alice = await host.SignInAsync("web-retry@example.com");
        using var client = new MeshClient(host.Url, host.Fingerprint, alice);
        // A network that places on its cheapest device first: the phone (tier0) before the laptop (tier2), both planned
        // recipients of the encrypted payload, so the retry needs nothing from the submitter.
        var network = (await client.CreateNetworkAsync("retry", new NetworkSettings { ScoringWeights = CheapestFirst })).NetworkId;
        var (phone, phoneKeys) = await host.JoinAsync(alice, network, "pixel-browser", Phone());
        var (agent, agentKeys) = await host.JoinAsync(alice, network, "laptop");
        await host.GoOnlineAsync(agent, agentKeys);
        await using var web = await WebDeviceClient.ConnectAsync(host.Url, host.Fingerprint, phone, phoneKeys, Phone());
        await web.HeartbeatAsync(1, Phone());

        var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("hand me back") } };
        var job = await client.SubmitJobAsync(network, input, new JobRouting { Mode = RoutingMode.PinnedDevice, PinnedDeviceIds = [phone.DeviceId, agent.DeviceId] });
        var offer = await web.NextAsync(ConnectResponse.FrameOneofCase.JobOffer);
        var ticket = PlacementTicketDetails.Parser.ParseFrom(offer.JobOffer.Ticket.Details);
        await web.Relay.AcceptJobAsync(new AcceptJobRequest { SessionId = web.SessionId, Accept = new JobAccept { JobId = ticket.JobId, Attempt = ticket.Attempt } });
        // The phone is unplugged mid-job and hands it back.
        await web.Relay.ReportFailureAsync(new ReportFailureRequest
        {
            SessionId = web.SessionId,
            Failure = new JobFailure
            {
                JobId = ticket.JobId, Attempt = ticket.Attempt, Retryable = true, Error = "handed back: device stopped contributing (not charging)",
                Metering = new Metering { RuntimeMs = 400, Tier = Tier._0 },
            },
        });
        var run = await client.WaitForResultAsync(network, job);

        var done = (await new JobService.JobServiceClient(host.Channel(alice)).GetJobAsync(new GetJobRequest { NetworkId = network, JobId = job.JobId })).Job;
        var events = (await client.GetLedgerAsync(network, pageSize: 500)).Events.Where(e => e.JobId == job.JobId).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(run.Output.Echo.Data, Is.EqualTo(input.Echo.Data));
            Assert.That(done.DeviceId, Is.EqualTo(agent.DeviceId), "retried on the agent");
            Assert.That(done.Attempts.Select(a => a.DeviceId), Is.EqualTo(new[] { phone.DeviceId, agent.DeviceId }));
            Assert.That(done.Attempts[0].Detail, Does.Contain("not charging"), "the hand-back reason is kept with the attempt");
            Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
            Assert.That(events.Where(e => e.EventType == LedgerEventType.CreditsMinted).Select(e => e.DeviceId), Is.EqualTo(new[] { agent.DeviceId }),
                "only the device that finished the job earns");
        });
    }

    [Test]
    public async Task A_result_a_phone_browser_could_not_deliver_before_its_session_dropped_arrives_on_the_next_session_and_is_acknowledged()
    {
        // A reconnect grace no busy test machine outlasts: this test is about the frames, not the grace's length.
        await using var host = await SecureMeshHost.StartAsync(configure: services => services.PostConfigure<ControlPlaneOptions>(o => o.Jobs.ReconnectGraceMs = 120_000));
        var alice = await host.SignInAsync("web-resume@example.com");
        using var client = new MeshClient(host.Url, host.Fingerprint, alice);
        var network = (await client.CreateNetworkAsync("resume")).NetworkId;
        var (phone, phoneKeys) = await host.JoinAsync(alice, network, "pixel-browser", Phone());
        var first = await WebDeviceClient.ConnectAsync(host.Url, host.Fingerprint, phone, phoneKeys, Phone(), protocol: 2);
        await first.HeartbeatAsync(1, Phone());

        var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("through a tunnel " + Guid.NewGuid()) } };
        var job = await client.SubmitJobAsync(network, input, new JobRouting { Mode = RoutingMode.PinnedDevice, PinnedDeviceIds = [phone.DeviceId] });
        var offer = await first.NextAsync(ConnectResponse.FrameOneofCase.JobOffer);
        var ticket = PlacementTicketDetails.Parser.ParseFrom(offer.JobOffer.Ticket.Details);
        await first.Relay.AcceptJobAsync(new AcceptJobRequest
        {
            SessionId = first.SessionId, Sequence = 41, Accept = new JobAccept { JobId = ticket.JobId, Attempt = ticket.Attempt, ChunkId = ticket.ChunkId },
        });
        var acceptAck = (await first.NextAsync(ConnectResponse.FrameOneofCase.FrameAck)).FrameAck;

        // The phone loses its connection while the job runs (a tunnel, a network switch): the stream and its session id die.
        var oldSession = first.SessionId;
        await first.DisposeAsync();
        var held = new HeldAttempt { JobId = ticket.JobId, Attempt = ticket.Attempt, ChunkId = ticket.ChunkId };
        await using var second = await WebDeviceClient.ConnectAsync(host.Url, host.Fingerprint, phone, phoneKeys, Phone(), protocol: 2, held: [held]);
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => second.Relay.ReportProgressAsync(new ReportProgressRequest
        {
            SessionId = oldSession, Progress = new JobProgress { JobId = ticket.JobId, Attempt = ticket.Attempt, Fraction = 0.5 },
        }).ResponseAsync);
        var envelope = JobEnvelope.Parser.ParseFrom(offer.JobOffer.Envelope);
        await second.Relay.ReportResultAsync(new ReportResultRequest
        {
            SessionId = second.SessionId,
            Sequence = 42,
            Result = EndToEndPayload.SealResult(envelope, new JobResult
            {
                JobId = ticket.JobId, Attempt = ticket.Attempt, ChunkId = ticket.ChunkId,
                Output = new WorkloadOutput { Echo = new EchoOutput { Data = input.Echo.Data } }.ToByteString(),
                Metering = new Metering { RuntimeMs = 1200, Tier = Tier._0, HeartbeatsDuringRun = 1 },
            }),
        });
        var resultAck = (await second.NextAsync(ConnectResponse.FrameOneofCase.FrameAck)).FrameAck;
        var run = await client.WaitForResultAsync(network, job);

        var done = (await new JobService.JobServiceClient(host.Channel(alice)).GetJobAsync(new GetJobRequest { NetworkId = network, JobId = job.JobId })).Job;
        var events = (await client.GetLedgerAsync(network, pageSize: 500)).Events.Where(e => e.JobId == job.JobId).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(first.Welcome.ProtocolVersion, Is.EqualTo(2), "the relay speaks protocol 2 with the page");
            Assert.That(acceptAck.Sequence, Is.EqualTo(41), "the accept is acknowledged once control handled it");
            Assert.That(resultAck.Sequence, Is.EqualTo(42), "the result sent on the new session is acknowledged there");
            Assert.That(run.Output.Echo.Data, Is.EqualTo(input.Echo.Data));
            Assert.That(done.Attempts.Select(a => a.DeviceId), Is.EqualTo(new[] { phone.DeviceId }), "the attempt survived the reconnect: not retried");
            Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
            Assert.That(events.Where(e => e.EventType == LedgerEventType.CreditsMinted).Select(e => e.DeviceId), Is.EqualTo(new[] { phone.DeviceId }));
        });
    }

    [Test]
    public async Task The_network_policy_keeps_jobs_off_a_phone_browser_on_cellular_data_and_caps_its_mint_on_battery()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var alice = await host.SignInAsync("web-policy@example.com");
        using var client = new MeshClient(host.Url, host.Fingerprint, alice);
        var strict = (await client.CreateNetworkAsync("strict")).NetworkId;
        var (phone, phoneKeys) = await host.JoinAsync(alice, strict, "pixel-browser", Phone());
        await using var web = await WebDeviceClient.ConnectAsync(host.Url, host.Fingerprint, phone, phoneKeys, Phone(network: NetworkType.Cellular));
        await web.HeartbeatAsync(1, Phone(network: NetworkType.Cellular));

        var envelope = JobEnvelopes.Build(strict, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("x") } },
            new JobRouting { Mode = RoutingMode.PinnedDevice, PinnedDeviceIds = [phone.DeviceId] });
        var estimate = await client.Jobs.EstimateJobAsync(new EstimateJobRequest { Envelope = envelope });
        var verdict = estimate.Eligibility.Single(e => e.DeviceId == phone.DeviceId);
        Assert.Multiple(() =>
        {
            Assert.That(verdict.Eligible, Is.False);
            Assert.That(verdict.FailingFilter, Is.EqualTo(EligibilityFilter.DeviceStateOk));
            Assert.That(verdict.Reason, Does.Contain("charging on Wi-Fi"), "the network's mobile policy, the same filter as for any phone");
        });

        // A network that lets phones work on battery: the phone earns at the capped mobile rate.
        var lenient = (await client.CreateNetworkAsync("lenient", new NetworkSettings
        {
            MobileSafety = new MobileSafetyDefaults { MobileContributionPolicy = MobileContributionPolicy.Always, MinBatteryPercent = 20, MaxThermalLevel = 3 },
        })).NetworkId;
        var (onBattery, onBatteryKeys) = await host.JoinAsync(alice, lenient, "pixel-on-battery", Phone(charging: false));
        await using var battery = await WebDeviceClient.ConnectAsync(host.Url, host.Fingerprint, onBattery, onBatteryKeys, Phone(charging: false));
        await battery.HeartbeatAsync(1, Phone(charging: false));
        var status = await battery.Relay.GetDeviceStatusAsync(new GetDeviceStatusRequest { SessionId = battery.SessionId });
        var job = await client.SubmitJobAsync(lenient, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("y") } },
            new JobRouting { Mode = RoutingMode.PinnedDevice, PinnedDeviceIds = [onBattery.DeviceId] });
        var offer = await battery.NextAsync(ConnectResponse.FrameOneofCase.JobOffer);
        var ticket = PlacementTicketDetails.Parser.ParseFrom(offer.JobOffer.Ticket.Details);
        await battery.Relay.AcceptJobAsync(new AcceptJobRequest { SessionId = battery.SessionId, Accept = new JobAccept { JobId = ticket.JobId, Attempt = ticket.Attempt } });
        var envelopeOffered = JobEnvelope.Parser.ParseFrom(offer.JobOffer.Envelope);
        await battery.Relay.ReportResultAsync(new ReportResultRequest
        {
            SessionId = battery.SessionId,
            Result = EndToEndPayload.SealResult(envelopeOffered, new JobResult
            {
                JobId = ticket.JobId, Attempt = ticket.Attempt, Output = new WorkloadOutput { Echo = new EchoOutput { Data = ByteString.CopyFromUtf8("y") } }.ToByteString(),
                Metering = new Metering { RuntimeMs = 2000, Tier = Tier._0, HeartbeatsDuringRun = 1 },
            }),
        });
        await client.WaitForResultAsync(lenient, job);
        var metering = (await host.Services.GetRequiredService<LedgerRepository>().ListMeteringsAsync(lenient, CancellationToken.None)).Single(m => m.JobId == job.JobId);
        var after = await battery.Relay.GetDeviceStatusAsync(new GetDeviceStatusRequest { SessionId = battery.SessionId });
        Assert.Multiple(() =>
        {
            Assert.That(status.MobileSafety.MobileContributionPolicy, Is.EqualTo(MobileContributionPolicy.Always), "the page learns the network's rules");
            Assert.That(metering.MintCapBps, Is.EqualTo(status.BatteryMintCapBps).And.LessThan(10_000), "on battery: the ledger's mobile mint cap");
            Assert.That(after.JobsCompletedToday, Is.EqualTo(1));
            Assert.That(after.MintedTodayMicro, Is.GreaterThan(0), "what the page shows as credits earned today");
            Assert.That(after.NetworkName, Is.EqualTo("lenient"));
        });
    }

    [Test]
    public async Task Revoking_a_phone_browser_cuts_its_session_at_once_and_its_session_id_stops_working()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var alice = await host.SignInAsync("web-revoke@example.com");
        using var client = new MeshClient(host.Url, host.Fingerprint, alice);
        var network = (await client.CreateNetworkAsync("revoke")).NetworkId;
        var (phone, phoneKeys) = await host.JoinAsync(alice, network, "pixel-browser", Phone());
        await using var web = await WebDeviceClient.ConnectAsync(host.Url, host.Fingerprint, phone, phoneKeys, Phone());
        await web.HeartbeatAsync(1, Phone());

        await client.Devices.RevokeDeviceAsync(new RevokeDeviceRequest { NetworkId = network, DeviceId = phone.DeviceId, Reason = "lost phone" });
        var cut = (await web.NextAsync(ConnectResponse.FrameOneofCase.Cut)).Cut;
        await web.EndedAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(cut.Reason, Is.EqualTo(CutReason.Revoked), "pushed down the stream by the revocation, not found at a later heartbeat");
            Assert.That(web.EndStatus?.StatusCode, Is.EqualTo(StatusCode.PermissionDenied));
        });
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => web.HeartbeatAsync(2, Phone()));
        var reopened = WebDeviceClient.ConnectAsync(host.Url, host.Fingerprint, phone, phoneKeys, Phone());
        Assert.That(async () => await reopened, Throws.InstanceOf<InvalidOperationException>().With.Message.Contains("PermissionDenied"),
            "a revoked certificate gets no new session");
    }

    [Test]
    public async Task A_forged_challenge_answer_or_an_unknown_session_id_is_unauthenticated()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var alice = await host.SignInAsync("web-forged@example.com");
        using var client = new MeshClient(host.Url, host.Fingerprint, alice);
        var network = (await client.CreateNetworkAsync("forged")).NetworkId;
        var (phone, _) = await host.JoinAsync(alice, network, "pixel-browser", Phone());

        // Someone holding the certificate (public) but not the key.
        var impostor = AgentKeys.Generate();
        var forged = WebDeviceClient.ConnectAsync(host.Url, host.Fingerprint, phone, impostor, Phone());
        Assert.That(async () => await forged, Throws.InstanceOf<RpcException>().With.Property(nameof(RpcException.StatusCode)).EqualTo(StatusCode.Unauthenticated));

        using var channel = WebDeviceClient.WebChannel(host.Url, host.Fingerprint);
        var relay = new WebRelayService.WebRelayServiceClient(channel);
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => relay.SendHeartbeatAsync(new SendHeartbeatRequest { SessionId = "not-a-session", Heartbeat = new Heartbeat() }).ResponseAsync);
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => relay.GetDeviceStatusAsync(new GetDeviceStatusRequest { SessionId = "" }).ResponseAsync);
    }
}

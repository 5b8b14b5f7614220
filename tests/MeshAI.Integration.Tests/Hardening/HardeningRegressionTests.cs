using Dapper;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Audit.V1;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Storage;
using MeshAI.Integration.Tests.Control;
using MeshAI.Integration.Tests.Security;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Hardening;

/// <summary>
/// Issue 15's numbered defects where storage matters (1-5), each as a regression test through the real server (real
/// Kestrel, control plane + relay, in-process agents over the real relay stream), once on SQLite and once on PostgreSQL.
/// </summary>
[TestFixtureSource(nameof(Stores))]
[Category("Integration")]
[NonParallelizable]
public sealed class HardeningRegressionTests(string store)
{
    public static readonly string[] Stores = ["sqlite", "postgres"];

    private SecureMeshHost _host = null!;
    private string _admin = "";

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _host = await SecureMeshHost.StartAsync(store);
        _admin = await _host.SignInAsync("admin@example.com");
    }

    [OneTimeTearDown]
    public async Task StopServer() => await _host.DisposeAsync();

    private NetworkService.NetworkServiceClient Networks(string? token = null) => new(_host.Channel(token ?? _admin));

    private JobService.JobServiceClient Jobs(string? token = null) => new(_host.Channel(token ?? _admin));

    private Task<long> CountAsync(string sql, object? args = null) =>
        _host.Services.GetRequiredService<Database>().RunAsync(c => c.ExecuteScalarAsync<long>(sql, args), CancellationToken.None);

    // ---- 1: CreateNetwork went around the settings validation ----

    [Test]
    public async Task Defect1_create_network_refuses_every_setting_the_update_paths_refuse_and_stores_nothing()
    {
        var admin = await _host.SignInAsync($"creator-{store}@example.com");
        NetworkSettings Bad(Action<NetworkSettings> change)
        {
            var s = new NetworkSettings { Credits = new CreditSettings(), RetryPolicy = new RetryPolicy(), ScoringWeights = new ScoringWeights(), MobileSafety = new MobileSafetyDefaults() };
            change(s);
            return s;
        }

        var cases = new (string Name, NetworkSettings Settings, string Field)[]
        {
            ("a 9e18 starting grant", Bad(s => s.Credits.StartingGrantMicro = 9_000_000_000_000_000_000), "settings.credits.starting_grant_micro"),
            ("a negative burn rate", Bad(s => s.Credits.TierRates.Add(new TierRate { Tier = Tier._2, EarnMicroPerMin = 1, BurnMicroPerMin = -6_000_000 })), "settings.credits.tier_rates[0].burn_micro_per_min"),
            ("a negative backoff", Bad(s => s.RetryPolicy.BackoffMs.Add(-5)), "settings.retry_policy.backoff_ms[0]"),
            ("a million attempts", Bad(s => s.RetryPolicy.MaxAttempts = 1_000_000), "settings.retry_policy.max_attempts"),
            ("a NaN scoring weight", Bad(s => s.ScoringWeights.IdleScore = double.NaN), "settings.scoring_weights.idle_score"),
            ("a sample rate above 100 %", Bad(s => s.Credits.SpotCheckSampleBps = 10_001), "settings.credits.spot_check_sample_bps"),
            ("a negative relay surcharge", Bad(s => s.Credits.RelaySurchargeMicroPerMib = -1), "settings.credits.relay_surcharge_micro_per_mib"),
            ("a negative trust level", Bad(s => s.MinDeviceTrustLevel = -3), "settings.min_device_trust_level"),
            ("two rates for one tier", Bad(s => s.Credits.TierRates.Add([new TierRate { Tier = Tier._1 }, new TierRate { Tier = Tier._1 }])), "settings.credits.tier_rates[1].tier"),
        };
        foreach (var (name, settings, field) in cases)
        {
            var e = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Networks(admin).CreateNetworkAsync(new CreateNetworkRequest { Name = "bad", Settings = settings }).ResponseAsync);
            Assert.That(RequestProbes.Violations(e).Select(v => v.Field), Has.Member(field), name + ": " + e.Status.Detail);
            Assert.That(RpcErrors.ReasonOf(e), Is.Not.Null.And.Not.EqualTo("INVALID_ARGUMENT"), name);
        }

        Assert.That((await Networks(admin).ListNetworksAsync(new ListNetworksRequest())).Networks, Is.Empty, "nothing was stored");

        // Within the bounds an override still works (a smaller grant than the operator's), and reconcile stays balanced.
        var ok = (await Networks(admin).CreateNetworkAsync(new CreateNetworkRequest
        {
            Name = "small grant",
            Settings = new NetworkSettings { Credits = new CreditSettings { StartingGrantMicro = 5_000_000, SpotCheckSampleBps = 10_000 } },
        })).Network;
        Assert.That(ok.Settings.Credits.StartingGrantMicro, Is.EqualTo(5_000_000));
        Assert.That(ok.CreditBalanceSummary.PoolBalanceMicro, Is.EqualTo(5_000_000));

        // The same bound holds on the rate and settings update paths.
        var ledger = new LedgerService.LedgerServiceClient(_host.Channel(admin));
        var rate = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => ledger.UpdateCreditRatesAsync(new UpdateCreditRatesRequest
        {
            NetworkId = ok.NetworkId, TierRates = { new TierRate { Tier = Tier._3, EarnMicroPerMin = 1, BurnMicroPerMin = -1 } },
        }).ResponseAsync);
        Assert.That(RequestProbes.Violations(rate).Select(v => v.Field), Has.Member("tier_rates[0].burn_micro_per_min"));
        var weights = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Networks(admin).UpdateNetworkSettingsAsync(new UpdateNetworkSettingsRequest
        {
            NetworkId = ok.NetworkId, Settings = new NetworkSettings { ScoringWeights = new ScoringWeights { RttMs = double.PositiveInfinity } },
            UpdateMask = new FieldMask { Paths = { "scoring_weights" } },
        }).ResponseAsync);
        Assert.That(RpcErrors.ReasonOf(weights), Is.EqualTo(ErrorReasons.ValueOutOfRange));
        var reconciled = await ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = ok.NetworkId });
        Assert.That(reconciled.Balanced, Is.True);
    }

    // ---- 2: unauthenticated RPCs stored megabyte-sized strings ----

    [Test]
    public async Task Defect2_unauthenticated_rpcs_refuse_megabyte_strings_and_store_nothing()
    {
        var megabyte = new string('x', 1024 * 1024);
        var anonymousDevices = new DeviceService.DeviceServiceClient(_host.Channel());
        var anonymousIdentity = new IdentityService.IdentityServiceClient(_host.Channel());
        var pairings = await CountAsync("SELECT COUNT(*) FROM device_pairings");
        var logins = await CountAsync("SELECT COUNT(*) FROM device_logins");

        var pairing = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => anonymousDevices.StartDevicePairingAsync(new StartDevicePairingRequest { DeviceName = megabyte, InstallationId = "inst_x" }).ResponseAsync);
        Assert.That(RpcErrors.ReasonOf(pairing), Is.EqualTo(ErrorReasons.FieldTooLong));
        Assert.That(RequestProbes.Violations(pairing).Single().Field, Is.EqualTo("device_name"));
        await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => anonymousDevices.StartDevicePairingAsync(new StartDevicePairingRequest { DeviceName = "ok", InstallationId = megabyte }).ResponseAsync);
        var login = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => anonymousIdentity.StartDeviceLoginAsync(new StartDeviceLoginRequest { Email = "dl@example.com", ClientName = megabyte }).ResponseAsync);
        Assert.That(RequestProbes.Violations(login).Single().Field, Is.EqualTo("client_name"));

        Assert.That(await CountAsync("SELECT COUNT(*) FROM device_pairings"), Is.EqualTo(pairings), "no pairing row for a refused request");
        Assert.That(await CountAsync("SELECT COUNT(*) FROM device_logins"), Is.EqualTo(logins), "no login row for a refused request");

        // The client name at magic-link completion: refused before the link is consumed, so the link still works after.
        await anonymousIdentity.StartMagicLinkAsync(new StartMagicLinkRequest { Email = $"ml-{store}@example.com" });
        var file = Directory.GetFiles(Path.Combine(_host.DataDir, "outbox"), $"*-ml-{store}@example.com.eml").Single();
        var link = File.ReadAllLines(file).Single(l => l.StartsWith("Link: ", StringComparison.Ordinal))[6..];
        var token = Uri.UnescapeDataString(link[(link.IndexOf("token=", StringComparison.Ordinal) + 6)..]);
        var complete = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => anonymousIdentity.CompleteMagicLinkAsync(new CompleteMagicLinkRequest { Token = token, ClientName = megabyte }).ResponseAsync);
        Assert.That(RequestProbes.Violations(complete).Single().Field, Is.EqualTo("client_name"));
        var session = await anonymousIdentity.CompleteMagicLinkAsync(new CompleteMagicLinkRequest { Token = token, ClientName = "laptop" });
        Assert.That(session.Session.ClientName, Is.EqualTo("laptop"));
        Assert.That(await CountAsync("SELECT COUNT(*) FROM sessions WHERE LENGTH(client_name) > 1000"), Is.Zero);
    }

    // ---- 3: RevokeDevice reasons of any length, repeated revokes, audit pages over the message size ----

    [Test]
    public async Task Defect3_revoke_reasons_are_bounded_a_repeat_revoke_adds_no_audit_event_and_the_audit_log_stays_readable()
    {
        var network = (await Networks().CreateNetworkAsync(new CreateNetworkRequest { Name = "audit" })).Network.NetworkId;
        var (device, _) = await _host.JoinAsync(_admin, network, "laptop");
        var devices = new DeviceService.DeviceServiceClient(_host.Channel(_admin));

        var huge = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => devices.RevokeDeviceAsync(new RevokeDeviceRequest
        {
            NetworkId = network, DeviceId = device.DeviceId, Reason = new string('r', 3 * 1024 * 1024),
        }).ResponseAsync);
        Assert.That(RpcErrors.ReasonOf(huge), Is.EqualTo(ErrorReasons.FieldTooLong));
        Assert.That((await devices.GetDeviceAsync(new GetDeviceRequest { NetworkId = network, DeviceId = device.DeviceId })).Device.Revoked, Is.False);

        var reason = "lost on a train; " + new string('r', 1000); // within the request bound, longer than an audit detail
        for (var i = 0; i < 4; i++)
        {
            var revoked = await devices.RevokeDeviceAsync(new RevokeDeviceRequest { NetworkId = network, DeviceId = device.DeviceId, Reason = reason + i });
            Assert.That(revoked.Device.Revoked, Is.True);
        }

        var audit = new AuditService.AuditServiceClient(_host.Channel(_admin));
        var events = (await audit.ListAuditEventsAsync(new ListAuditEventsRequest { NetworkId = network })).Events;
        var revokes = events.Where(e => e.Action == AuditAction.DeviceRevoked && e.Target == device.DeviceId).ToList();
        Assert.That(revokes, Has.Count.EqualTo(1), "a repeat revoke writes no second audit event");
        Assert.That(revokes[0].Details["reason"], Has.Length.LessThanOrEqualTo(512).And.EndsWith("…").And.StartsWith("lost on a train; "));
        Assert.That(await CountAsync("SELECT COUNT(*) FROM devices WHERE device_id = @id AND revoke_reason LIKE '%0'", new { id = device.DeviceId }), Is.EqualTo(1), "the first reason is kept");

        using var export = audit.ExportAuditEvents(new ExportAuditEventsRequest { NetworkId = network });
        var bytes = 0;
        while (await export.ResponseStream.MoveNext(CancellationToken.None))
        {
            bytes += export.ResponseStream.Current.Data.Length;
        }

        Assert.That(bytes, Is.GreaterThan(0));
    }

    // ---- 4: concurrent SubmitJob with one idempotency key gave some callers UNKNOWN ----

    [Test]
    public async Task Defect4_concurrent_submits_with_one_idempotency_key_all_return_the_one_job_it_created()
    {
        var network = (await Networks().CreateNetworkAsync(new CreateNetworkRequest { Name = "idem" })).Network.NetworkId;
        var (device, keys) = await _host.JoinAsync(_admin, network, "worker");
        await _host.GoOnlineAsync(device, keys);
        var key = "order-" + Guid.NewGuid().ToString("N");
        var envelope = new JobEnvelope
        {
            NetworkId = network,
            WorkloadId = WorkloadClass.DiagnosticEcho,
            InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("once"), DelayMs = 300 } }.ToByteString() },
        };

        var submits = Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
        {
            using var channel = _host.Channel(_admin); // a connection each: the calls really overlap on the server
            return (await new JobService.JobServiceClient(channel).SubmitJobAsync(new SubmitJobRequest { Envelope = envelope, IdempotencyKey = key })).Job;
        })).ToList();
        var jobs = await Task.WhenAll(submits);
        Assert.That(jobs.Select(j => j.JobId).Distinct().ToList(), Has.Count.EqualTo(1), "every caller gets the same job, none an error");
        Assert.That(await CountAsync("SELECT COUNT(*) FROM jobs WHERE idempotency_key = @key", new { key }), Is.EqualTo(1));

        var jobId = jobs[0].JobId;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        Job final;
        while ((final = (await Jobs().GetJobAsync(new GetJobRequest { NetworkId = network, JobId = jobId })).Job).State is not (JobState.Completed or JobState.Failed))
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the job did not finish");
            await Task.Delay(50);
        }

        Assert.That(final.State, Is.EqualTo(JobState.Completed));
        var ledger = new LedgerService.LedgerServiceClient(_host.Channel(_admin));
        var events = (await ledger.ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = network, JobId = jobId })).Events;
        Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
        Assert.That((await ledger.ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = network })).Balanced, Is.True);
    }

    // ---- 5: a guest could read another member's job ----

    [Test]
    public async Task Defect5_guests_see_only_their_own_jobs_and_admins_only_visibility_hides_others_jobs_from_members()
    {
        var member = await _host.SignInAsync($"member-{store}@example.com");
        var guest = await _host.SignInAsync($"guest-{store}@example.com");
        foreach (var visibility in new[] { WorkloadVisibility.MembersOnly, WorkloadVisibility.AdminsOnly })
        {
            var network = (await Networks().CreateNetworkAsync(new CreateNetworkRequest
            {
                Name = "visibility " + visibility,
                Settings = new NetworkSettings { WorkloadVisibility = visibility },
            })).Network.NetworkId;
            await AddAsync(network, member, Role.Member);
            await AddAsync(network, guest, Role.Guest);
            var (device, keys) = await _host.JoinAsync(_admin, network, "worker");
            await _host.GoOnlineAsync(device, keys);

            var adminJob = await SubmitEchoAsync(_admin, network);
            var memberJob = await SubmitEchoAsync(member, network);
            var guestJob = await SubmitEchoAsync(guest, network);

            // The guest: NOT_FOUND for anyone else's job, by every door; its own job is visible.
            foreach (var other in new[] { adminJob, memberJob })
            {
                var get = await Rpc.ThrowsAsync(StatusCode.NotFound, () => Jobs(guest).GetJobAsync(new GetJobRequest { NetworkId = network, JobId = other }).ResponseAsync);
                Assert.That(RpcErrors.ReasonOf(get), Is.EqualTo("JOB_NOT_FOUND"));
                await Rpc.ThrowsAsync(StatusCode.NotFound, async () =>
                {
                    using var watch = Jobs(guest).WatchJob(new WatchJobRequest { NetworkId = network, JobId = other });
                    await watch.ResponseStream.MoveNext(CancellationToken.None);
                });
                await Rpc.ThrowsAsync(StatusCode.NotFound, () => Jobs(guest).CancelJobAsync(new CancelJobRequest { NetworkId = network, JobId = other }).ResponseAsync);
            }

            Assert.That((await Jobs(guest).GetJobAsync(new GetJobRequest { NetworkId = network, JobId = guestJob })).Job.JobId, Is.EqualTo(guestJob));
            var explain = await Rpc.ThrowsAsync(StatusCode.PermissionDenied, () => Jobs(guest).ExplainJobAsync(new ExplainJobRequest { NetworkId = network, JobId = guestJob }).ResponseAsync);
            Assert.That(RpcErrors.ReasonOf(explain), Is.EqualTo(ErrorReasons.MemberRequired));

            // A member: everyone's jobs under MEMBERS_ONLY, only their own under ADMINS_ONLY.
            var listed = (await Jobs(member).ListJobsAsync(new ListJobsRequest { NetworkId = network })).Jobs.Select(j => j.JobId).ToList();
            if (visibility == WorkloadVisibility.MembersOnly)
            {
                Assert.That(listed, Is.EquivalentTo(new[] { adminJob, memberJob, guestJob }));
                Assert.That((await Jobs(member).GetJobAsync(new GetJobRequest { NetworkId = network, JobId = adminJob })).Job.JobId, Is.EqualTo(adminJob));
            }
            else
            {
                Assert.That(listed, Is.EqualTo(new[] { memberJob }));
                await Rpc.ThrowsAsync(StatusCode.NotFound, () => Jobs(member).GetJobAsync(new GetJobRequest { NetworkId = network, JobId = adminJob }).ResponseAsync);
            }

            Assert.That((await Jobs().ListJobsAsync(new ListJobsRequest { NetworkId = network })).Jobs, Has.Count.EqualTo(3), "admins see every job");
        }
    }

    private async Task<string> SubmitEchoAsync(string token, string network)
    {
        var envelope = new JobEnvelope
        {
            NetworkId = network,
            WorkloadId = WorkloadClass.DiagnosticEcho,
            DataSensitivityTag = DataSensitivityTag.Public,
            InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("secret of " + token[..8]) } }.ToByteString() },
        };
        return (await Jobs(token).SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job.JobId;
    }

    private async Task AddAsync(string network, string token, Role role)
    {
        var invite = await Networks().InviteMemberAsync(new InviteMemberRequest { NetworkId = network, InviteType = InviteType.ShareLinkWithApproval, Role = role });
        var accepted = await Networks(token).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = invite.InviteLink });
        await Networks().ApproveMemberAsync(new ApproveMemberRequest { NetworkId = network, UserId = accepted.Member.UserId });
    }
}

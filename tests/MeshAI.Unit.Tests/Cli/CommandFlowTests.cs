using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Cli;

[TestFixture]
[Category("Unit")]
public sealed class CommandFlowTests
{
    private static readonly string[] PinnedDevices = ["dev_laptop"];
    private static readonly string[] Texts = ["hello world", "second"];
    private static readonly float[] FirstVector = [0.6f, 0.8f, 0f];
    private static readonly Timestamp Created = Timestamp.FromDateTime(new DateTime(2025, 1, 2, 3, 4, 5, DateTimeKind.Utc));

    [Test]
    public async Task Login_polls_until_approved_and_saves_server_fingerprint_and_token()
    {
        using var cli = new CliHarness();
        var polls = 0;
        cli.Mesh
            .OnUnary<StartDeviceLoginRequest, StartDeviceLoginResponse>("StartDeviceLogin", _ => new StartDeviceLoginResponse
            {
                DeviceCode = "dc_secret", UserCode = "KXQF-7TRM", PollIntervalMs = 10, ExpireTime = Timestamp.FromDateTime(DateTime.UtcNow.AddMinutes(10)),
            })
            .OnUnary<PollDeviceLoginRequest, PollDeviceLoginResponse>("PollDeviceLogin", _ => ++polls < 3
                ? new PollDeviceLoginResponse { State = DeviceLoginState.Pending }
                : new PollDeviceLoginResponse
                {
                    State = DeviceLoginState.Approved, SessionToken = "ses_new", User = new User { UserId = "usr_ada", Email = "ada@example.com" },
                });

        var code = await cli.RunAsync("auth", "login", "--server", "https://127.0.0.1:7443/", "--fingerprint", CliHarness.Fingerprint.ToUpperInvariant(), "--email", "ada@example.com");

        Assert.That(code, Is.Zero, cli.Stderr);
        Assert.That(cli.Stdout, Does.Contain("Check ada@example.com for a sign-in link (code KXQF-7TRM)"));
        Assert.That(cli.Stdout, Does.Contain("Logged in to https://127.0.0.1:7443 as ada@example.com (usr_ada)."));
        Assert.That(polls, Is.EqualTo(3));
        Assert.That(cli.Mesh.Request<PollDeviceLoginRequest>("PollDeviceLogin").DeviceCode, Is.EqualTo("dc_secret"));
        Assert.That(cli.Targets[0], Is.EqualTo(new MeshAI.Cli.ServerTarget("https://127.0.0.1:7443", CliHarness.Fingerprint, null)));
        var config = await cli.ConfigAsync();
        Assert.That(config.ServerUrl, Is.EqualTo("https://127.0.0.1:7443"));
        Assert.That(config.Fingerprint, Is.EqualTo(CliHarness.Fingerprint));
        Assert.That(config.SessionToken, Is.EqualTo("ses_new"));
        Assert.That(config.Email, Is.EqualTo("ada@example.com"));
    }

    [TestCase(DeviceLoginState.Denied, "was denied")]
    [TestCase(DeviceLoginState.Expired, "expired")]
    public async Task Login_that_is_not_approved_fails_with_a_clear_message(DeviceLoginState state, string message)
    {
        using var cli = new CliHarness();
        cli.Mesh
            .OnUnary<StartDeviceLoginRequest, StartDeviceLoginResponse>("StartDeviceLogin", _ => new StartDeviceLoginResponse { DeviceCode = "dc", UserCode = "AAAA-BBBB" })
            .OnUnary<PollDeviceLoginRequest, PollDeviceLoginResponse>("PollDeviceLogin", _ => new PollDeviceLoginResponse { State = state });

        var code = await cli.RunAsync("auth", "login", "--server", CliHarness.Server, "--email", "ada@example.com");

        Assert.That(code, Is.EqualTo(1));
        Assert.That(cli.Stderr, Does.Contain(message));
        Assert.That((await cli.ConfigAsync()).IsLoggedIn, Is.False);
    }

    [Test]
    public async Task Login_json_prints_the_user_but_never_the_token()
    {
        using var cli = new CliHarness();
        cli.Mesh
            .OnUnary<StartDeviceLoginRequest, StartDeviceLoginResponse>("StartDeviceLogin", _ => new StartDeviceLoginResponse { DeviceCode = "dc", UserCode = "AAAA-BBBB" })
            .OnUnary<PollDeviceLoginRequest, PollDeviceLoginResponse>("PollDeviceLogin", _ => new PollDeviceLoginResponse
            {
                State = DeviceLoginState.Approved, SessionToken = "ses_json", User = new User { UserId = "usr_ada", Email = "ada@example.com" },
            });

        var code = await cli.RunAsync("auth", "login", "--server", CliHarness.Server, "--email", "ada@example.com", "--json");

        Assert.That(code, Is.Zero, cli.Stderr);
        var json = JsonNode.Parse(cli.Stdout)!;
        Assert.That((string?)json["server"], Is.EqualTo(CliHarness.Server));
        Assert.That((string?)json["user"]!["email"], Is.EqualTo("ada@example.com"));
        Assert.That(cli.Stdout, Does.Not.Contain("ses_json"));
        Assert.That(cli.Stderr, Does.Contain("AAAA-BBBB"), "prompts go to stderr in JSON mode");
    }

    [Test]
    public async Task Commands_that_need_a_session_say_how_to_log_in()
    {
        using var cli = new CliHarness();

        var code = await cli.RunAsync("devices", "list");

        Assert.That(code, Is.EqualTo(1));
        Assert.That(cli.Stderr, Is.EqualTo(
            "error: Not logged in. Run: meshnet auth login --server URL --fingerprint FP --email EMAIL " +
            "(FP is the fingerprint=… that meshai-server prints when it starts; leave it out for a CA-signed certificate)\n"));
    }

    [Test]
    public async Task Whoami_sends_the_session_token_and_logout_forgets_it()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh.OnUnary<GetCurrentUserRequest, GetCurrentUserResponse>("GetCurrentUser", _ => new GetCurrentUserResponse
        {
            User = new User { UserId = "usr_ada", Email = "ada@example.com" },
        });

        Assert.That(await cli.RunAsync("auth", "whoami"), Is.Zero, cli.Stderr);
        Assert.That(cli.Stdout, Does.Contain("Logged in to https://127.0.0.1:7443 as ada@example.com (usr_ada)."));
        Assert.That(cli.Stdout, Does.Contain("Default network: net_home"));
        Assert.That(cli.Mesh.Calls.Single().Authorization, Is.EqualTo("Bearer " + CliHarness.Token));
        Assert.That(cli.Targets.Single().Fingerprint, Is.EqualTo(CliHarness.Fingerprint));

        Assert.That(await cli.RunAsync("auth", "logout"), Is.Zero);
        Assert.That(cli.Stdout, Is.EqualTo("Logged out of https://127.0.0.1:7443.\n"));
        var config = await cli.ConfigAsync();
        Assert.That(config.SessionToken, Is.Null);
        Assert.That(config.ServerUrl, Is.EqualTo(CliHarness.Server));
    }

    [Test]
    public async Task Net_create_makes_a_private_credits_network_the_default()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync(defaultNetworkId: null);
        cli.Mesh.OnUnary<CreateNetworkRequest, CreateNetworkResponse>("CreateNetwork", r => new CreateNetworkResponse
        {
            Network = new Network { NetworkId = "net_new", Name = r.Name, Visibility = r.Visibility, BillingMode = r.BillingMode },
        });

        var code = await cli.RunAsync("net", "create", "home lab");

        Assert.That(code, Is.Zero, cli.Stderr);
        var request = cli.Mesh.Request<CreateNetworkRequest>("CreateNetwork");
        Assert.That(request.Name, Is.EqualTo("home lab"));
        Assert.That(request.Visibility, Is.EqualTo(NetworkVisibility.Private));
        Assert.That(request.BillingMode, Is.EqualTo(BillingMode.CreditsInternal));
        Assert.That(cli.Stdout, Does.StartWith("Created network home lab (net_new); it is now your default network."));
        Assert.That((await cli.ConfigAsync()).DefaultNetworkId, Is.EqualTo("net_new"));
    }

    [Test]
    public async Task Net_list_shows_role_online_devices_and_pool_balance()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync(defaultNetworkId: "net_home");
        cli.Mesh.OnUnary<ListNetworksRequest, ListNetworksResponse>("ListNetworks", _ => new ListNetworksResponse
        {
            Networks =
            {
                new Network { NetworkId = "net_home", Name = "home", CallerRole = Role.Admin, OnlineDevicesCount = 2, CreditBalanceSummary = new CreditBalanceSummary { PoolBalanceMicro = 99_933_333 } },
                new Network { NetworkId = "net_work", Name = "work", CallerRole = Role.Guest, OnlineDevicesCount = 0, CreditBalanceSummary = new CreditBalanceSummary { PoolBalanceMicro = 66_667 } },
            },
        });

        Assert.That(await cli.RunAsync("net", "list"), Is.Zero, cli.Stderr);
        Assert.That(cli.Stdout, Is.EqualTo(
            "   ID        NAME  ROLE   ONLINE  POOL (CREDITS)\n" +
            "*  net_home  home  admin       2       99.933333\n" +
            "   net_work  work  guest       0        0.066667\n"));

        Assert.That(await cli.RunAsync("net", "list", "--json"), Is.Zero, cli.Stderr);
        var json = JsonNode.Parse(cli.Stdout)!;
        Assert.That((string?)json["defaultNetworkId"], Is.EqualTo("net_home"));
        Assert.That((string?)json["networks"]![0]!["networkId"], Is.EqualTo("net_home"));
        Assert.That((string?)json["networks"]![0]!["callerRole"], Is.EqualTo("ROLE_ADMIN"));
        Assert.That((string?)json["networks"]![0]!["creditBalanceSummary"]!["poolBalanceMicro"], Is.EqualTo("99933333"));
        Assert.That((int?)json["networks"]![1]!["onlineDevicesCount"], Is.EqualTo(0), "default values are included");
    }

    [Test]
    public async Task Device_join_prints_the_link_a_qr_code_and_the_agent_command()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        const string link = "meshai://join?server=https%3A%2F%2F127.0.0.1%3A7443&token=jt_secret&fp=aa11";
        cli.Mesh.OnUnary<CreateJoinTokenRequest, CreateJoinTokenResponse>("CreateJoinToken", r => new CreateJoinTokenResponse
        {
            JoinLink = link,
            JoinToken = new JoinToken { JoinTokenId = "jt_1", NetworkId = r.NetworkId, MaxUses = 1, ExpireTime = Created },
        });

        Assert.That(await cli.RunAsync("device", "join", "--ttl", "600"), Is.Zero, cli.Stderr);
        var request = cli.Mesh.Request<CreateJoinTokenRequest>("CreateJoinToken");
        Assert.That(request.NetworkId, Is.EqualTo("net_home"));
        Assert.That(request.TtlSeconds, Is.EqualTo(600));
        Assert.That(cli.Stdout, Does.StartWith("Join link for network net_home (expires 2025-01-02 03:04:05Z, 1 use):\n\n  " + link + "\n"));
        Assert.That(cli.Stdout, Does.Contain("█"));
        Assert.That(cli.Stdout, Does.EndWith("On the device, run:\n\n  meshai-agent join '" + link + "'\n"));

        Assert.That(await cli.RunAsync("device", "join", "--json", "--network", "net_other"), Is.Zero, cli.Stderr);
        var json = JsonNode.Parse(cli.Stdout)!;
        Assert.That((string?)json["joinLink"], Is.EqualTo(link));
        Assert.That((string?)json["agentCommand"], Is.EqualTo("meshai-agent join '" + link + "'"));
        Assert.That((string?)json["joinToken"]!["networkId"], Is.EqualTo("net_other"));
    }

    [Test]
    public async Task Device_approve_and_revoke_call_the_device_service()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh
            .OnUnary<ApproveDevicePairingRequest, ApproveDevicePairingResponse>("ApproveDevicePairing", _ => new ApproveDevicePairingResponse())
            .OnUnary<RevokeDeviceRequest, RevokeDeviceResponse>("RevokeDevice", r => new RevokeDeviceResponse
            {
                Device = new Device { DeviceId = r.DeviceId, Name = "old-phone", Revoked = true, OnlineStatus = OnlineStatus.Revoked },
            });

        Assert.That(await cli.RunAsync("device", "approve", "kxqf-7trm"), Is.Zero, cli.Stderr);
        Assert.That(cli.Mesh.Request<ApproveDevicePairingRequest>("ApproveDevicePairing").UserCode, Is.EqualTo("KXQF-7TRM"));
        Assert.That(cli.Stdout, Does.StartWith("Approved device code KXQF-7TRM into network net_home"));

        Assert.That(await cli.RunAsync("device", "revoke", "dev_phone", "--reason", "lost"), Is.Zero, cli.Stderr);
        Assert.That(cli.Mesh.Request<RevokeDeviceRequest>("RevokeDevice").Reason, Is.EqualTo("lost"));
        Assert.That(cli.Stdout, Is.EqualTo("Revoked device old-phone (dev_phone).\n"));
    }

    [Test]
    public async Task Devices_list_json_has_the_network_and_the_devices()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh.OnUnary<ListDevicesRequest, ListDevicesResponse>("ListDevices", r => new ListDevicesResponse
        {
            Devices = { new Device { DeviceId = "dev_1", NetworkId = r.NetworkId, Name = "laptop", CapabilityTier = Tier._2, OnlineStatus = OnlineStatus.Online } },
        });

        Assert.That(await cli.RunAsync("devices", "list", "--json"), Is.Zero, cli.Stderr);

        var json = JsonNode.Parse(cli.Stdout)!;
        Assert.That((string?)json["networkId"], Is.EqualTo("net_home"));
        Assert.That((string?)json["devices"]![0]!["capabilityTier"], Is.EqualTo("TIER_2"));
        Assert.That((string?)json["devices"]![0]!["onlineStatus"], Is.EqualTo("ONLINE_STATUS_ONLINE"));
    }

    [Test]
    public async Task Run_embeddings_submits_an_unencrypted_envelope_watches_it_and_prints_each_vector()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        SetUpEmbeddings(cli.Mesh);

        var code = await cli.RunAsync("run", "embeddings", "--text", "hello world", "--text", "second", "--max-cost", "0.5",
            "--routing", "pinned_device", "--device", "dev_laptop");

        Assert.That(code, Is.Zero, cli.Stderr);
        var envelope = cli.Mesh.Request<SubmitJobRequest>("SubmitJob").Envelope;
        Assert.That(envelope.NetworkId, Is.EqualTo("net_home"));
        Assert.That(envelope.WorkloadId, Is.EqualTo(WorkloadClass.Embeddings));
        Assert.That(envelope.RoutingMode, Is.EqualTo(RoutingMode.PinnedDevice));
        Assert.That(envelope.ResourceRequest.RequiresPinnedDeviceIdsOptional, Is.EqualTo(PinnedDevices));
        Assert.That(envelope.MaxCostMicro, Is.EqualTo(500_000));
        Assert.That(envelope.MaxCostCredits, Is.Zero, "new clients set only the unit-correct field");
        Assert.That(envelope.PayloadEncryption.Scheme, Is.EqualTo(PayloadEncryptionScheme.None));
        Assert.That(envelope.TraceId, Has.Length.EqualTo(32));
        Assert.That(envelope.InputManifest.PayloadSha256,
            Is.EqualTo(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(envelope.InputManifest.Payload.ToByteArray()))));
        Assert.That(WorkloadInput.Parser.ParseFrom(envelope.InputManifest.Payload).Embeddings.Texts, Is.EqualTo(Texts));
        Assert.That(cli.Stderr, Is.EqualTo("job job_1: queued → running on dev_laptop → completed in 123 ms (cost 0.066667 credits)\n"));
        Assert.That(cli.Stdout, Is.EqualTo(
            "[1] \"hello world\"\n" +
            "    dimension 3, norm 1.000000\n" +
            "    first 8: [0.6000, 0.8000, 0.0000]\n" +
            "[2] \"second\"\n" +
            "    dimension 3, norm 2.000000\n" +
            "    first 8: [0.0000, 0.0000, 2.0000]\n"));
    }

    [Test]
    public async Task Run_embeddings_json_has_the_vectors_job_device_and_cost()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        SetUpEmbeddings(cli.Mesh);

        Assert.That(await cli.RunAsync("run", "embeddings", "-t", "hello world", "-t", "second", "--json"), Is.Zero, cli.Stderr);

        var json = JsonNode.Parse(cli.Stdout)!;
        Assert.That((string?)json["jobId"], Is.EqualTo("job_1"));
        Assert.That((string?)json["deviceId"], Is.EqualTo("dev_laptop"));
        Assert.That((long?)json["costMicro"], Is.EqualTo(66_667));
        Assert.That((string?)json["cost"], Is.EqualTo("0.066667"));
        Assert.That((int?)json["dimension"], Is.EqualTo(3));
        Assert.That((string?)json["embeddings"]![0]!["text"], Is.EqualTo("hello world"));
        Assert.That(json["embeddings"]![0]!["values"]!.AsArray().Select(v => (float)v!), Is.EqualTo(FirstVector));
        Assert.That((double?)json["embeddings"]![1]!["norm"], Is.EqualTo(2.0).Within(1e-9));
        Assert.That(cli.Stderr, Does.Contain("completed in 123 ms"), "status changes still go to stderr");
    }

    [Test]
    public async Task A_failed_job_is_one_error_line_and_exit_code_1()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh
            .OnUnary<SubmitJobRequest, SubmitJobResponse>("SubmitJob", _ => new SubmitJobResponse { Job = new Job { JobId = "job_2", State = JobState.Queued } })
            .OnStream<WatchJobRequest, WatchJobResponse>("WatchJob", _ =>
            [
                new WatchJobResponse { Status = new JobStatusFrame { Job = new Job { JobId = "job_2", State = JobState.Running, DeviceId = "dev_x" } } },
                new WatchJobResponse { Status = new JobStatusFrame { Job = new Job { JobId = "job_2", State = JobState.Failed, DeviceId = "dev_x", ErrorMessage = "model missing" } } },
            ]);

        var code = await cli.RunAsync("run", "echo", "--data", "hi");

        Assert.That(code, Is.EqualTo(1));
        Assert.That(cli.Stdout, Is.Empty);
        Assert.That(cli.Stderr, Is.EqualTo(
            "job job_2: queued → running on dev_x → failed\n" +
            "error: Job job_2 failed on dev_x: model missing\n"));
    }

    [Test]
    public async Task Run_echo_prints_the_echoed_text()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh
            .OnUnary<SubmitJobRequest, SubmitJobResponse>("SubmitJob", _ => new SubmitJobResponse { Job = new Job { JobId = "job_3", State = JobState.Queued } })
            .OnStream<WatchJobRequest, WatchJobResponse>("WatchJob", _ =>
            [
                new WatchJobResponse
                {
                    Result = new JobResultFrame
                    {
                        Output = new WorkloadOutput { Echo = new EchoOutput { Data = ByteString.CopyFromUtf8("ping") } }.ToByteString(),
                        Job = new Job { JobId = "job_3", State = JobState.Completed, DeviceId = "dev_x", LatencyMs = 4 },
                    },
                },
            ]);

        Assert.That(await cli.RunAsync("run", "echo", "--data", "ping", "--network", "net_x"), Is.Zero, cli.Stderr);
        Assert.That(cli.Stdout, Is.EqualTo("ping\n"));
        Assert.That(cli.Mesh.Request<SubmitJobRequest>("SubmitJob").Envelope.WorkloadId, Is.EqualTo(WorkloadClass.DiagnosticEcho));
        Assert.That(cli.Mesh.Request<WatchJobRequest>("WatchJob").NetworkId, Is.EqualTo("net_x"));
    }

    [Test]
    public async Task Jobs_explain_renders_eligibility_candidates_and_retries()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh.OnUnary<ExplainJobRequest, ExplainJobResponse>("ExplainJob", r => new ExplainJobResponse
        {
            PlacementTime = Created,
            DebugView = new JobDebugView
            {
                JobId = r.JobId,
                SelectedDeviceId = "dev_laptop",
                SelectionReason = "highest score",
                Eligibility =
                {
                    new DeviceEligibility { DeviceId = "dev_laptop", Eligible = true },
                    new DeviceEligibility { DeviceId = "dev_phone", Eligible = false, FailingFilter = EligibilityFilter.Online, Reason = "offline" },
                },
                TopCandidates =
                {
                    new CandidateScore
                    {
                        DeviceId = "dev_laptop", Total = 0.75,
                        Features = { new FeatureScore { Name = "rtt_ms", RawValue = 12, NormalizedValue = 0.9, Weight = 0.5, Contribution = 0.45 } },
                    },
                },
                Retries = { new JobAttempt { Attempt = 1, DeviceId = "dev_old", Cause = AttemptCause.Disconnect, Detail = "stream closed" } },
            },
        });

        Assert.That(await cli.RunAsync("jobs", "explain", "job_9"), Is.Zero, cli.Stderr);

        Assert.That(cli.Stdout, Does.StartWith(
            "Job job_9\nSelected device: dev_laptop (placed 2025-01-02 03:04:05Z)\nWhy: highest score\n\nEligibility\n" +
            "DEVICE      ELIGIBLE  FAILED FILTER  REASON\n" +
            "dev_laptop  yes       -              -\n" +
            "dev_phone   no        online         offline\n"));
        Assert.That(cli.Stdout, Does.Contain("rtt_ms 12 → 0.9 × 0.5 = 0.45"));
        Assert.That(cli.Stdout, Does.Contain("dev_old  disconnect"));
    }

    [Test]
    public async Task Jobs_get_json_includes_the_decoded_output()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh.OnUnary<GetJobRequest, GetJobResponse>("GetJob", r => new GetJobResponse
        {
            Job = new Job { JobId = r.JobId, State = JobState.Completed, CostMicro = 66_667 },
            Result = new JobResultFrame { Output = new WorkloadOutput { Echo = new EchoOutput { Data = ByteString.CopyFromUtf8("x") } }.ToByteString() },
        });

        Assert.That(await cli.RunAsync("jobs", "get", "job_5", "--json"), Is.Zero, cli.Stderr);
        var json = JsonNode.Parse(cli.Stdout)!;
        Assert.That((string?)json["job"]!["state"], Is.EqualTo("JOB_STATE_COMPLETED"));
        Assert.That((string?)json["output"]!["echo"]!["data"], Is.EqualTo("eA=="));

        Assert.That(await cli.RunAsync("jobs", "get", "job_5"), Is.Zero, cli.Stderr);
        Assert.That(cli.Stdout, Does.Contain("cost         0.066667 credits"));
        Assert.That(cli.Stdout, Does.Contain("result       echo \"x\""));
    }

    [Test]
    public async Task Ledger_show_prints_balances_minted_burned_members_devices_and_events()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        SetUpLedger(cli.Mesh);

        Assert.That(await cli.RunAsync("ledger", "show"), Is.Zero, cli.Stderr);

        Assert.That(cli.Stdout, Is.EqualTo(
            "Network net_home: shared pool on. Jobs are paid from the pool; devices earn credits for their owners.\n" +
            "\n" +
            "                      CREDITS\n" +
            "Pool balance        99.933333  what jobs can still spend\n" +
            "Granted            100.000000  starting credits put in the pool\n" +
            "Spent by jobs        0.066667  paid from the pool\n" +
            "Earned by devices    0.066667  paid to the devices' owners\n" +
            "\n" +
            "Members\n" +
            "MEMBER             EARNED  SPENT (POOL PAID)  OWN BALANCE\n" +
            "ada@example.com  0.066667           0.066667     0.000000\n" +
            "\n" +
            "Devices\n" +
            "DEVICE  ID          OWNER              EARNED  WORKED  JOBS\n" +
            "laptop  dev_laptop  ada@example.com  0.066667   1.0 s     1\n" +
            "\n" +
            "Recent events (the newest last; --limit N for more)\n" +
            "#  TIME (UTC)           EVENT       CREDITS  ACCOUNT  MEMBER           JOB    DEVICE\n" +
            "7  2025-01-02 03:04:05  job paid  -0.066667  pool     ada@example.com  job_1  laptop\n"));
        var balances = cli.Mesh.Request<GetBalancesRequest>("GetBalances");
        Assert.That(balances.NetworkId, Is.EqualTo("net_home"));
        Assert.That(cli.Mesh.Request<ListLedgerEventsRequest>("ListLedgerEvents").NewestFirst, Is.True, "the view shows the newest events");
    }

    [Test]
    public async Task Ledger_show_json_has_balances_and_events()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        SetUpLedger(cli.Mesh);

        Assert.That(await cli.RunAsync("ledger", "show", "--json"), Is.Zero, cli.Stderr);

        var json = JsonNode.Parse(cli.Stdout)!;
        Assert.That((string?)json["balances"]!["poolBalanceMicro"], Is.EqualTo("99933333"));
        Assert.That((string?)json["balances"]!["members"]![0]!["email"], Is.EqualTo("ada@example.com"));
        Assert.That((string?)json["events"]![0]!["eventType"], Is.EqualTo("LEDGER_EVENT_TYPE_CREDITS_BURNED"));
        Assert.That((string?)json["events"]![0]!["amountMicro"], Is.EqualTo("-66667"));
    }

    [Test]
    public async Task Every_command_prints_exactly_one_json_document_with_json()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        SetUpLedger(cli.Mesh);
        SetUpEmbeddings(cli.Mesh);
        cli.Mesh.OnUnary<ListJobsRequest, ListJobsResponse>("ListJobs", _ => new ListJobsResponse { Jobs = { new Job { JobId = "job_1" } } });

        foreach (var args in new[] { new[] { "ledger", "show" }, ["jobs", "list"], ["run", "embeddings", "-t", "a"], ["auth", "logout"] })
        {
            Assert.That(await cli.RunAsync([.. args, "--json"]), Is.Zero, string.Join(' ', args) + ": " + cli.Stderr);
            Assert.DoesNotThrow(() => JsonDocument.Parse(cli.Stdout).Dispose(), string.Join(' ', args));
        }
    }

    [Test]
    public async Task Server_errors_are_one_line_with_their_details_and_no_stack_trace()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh
            .OnUnary<SubmitJobRequest, SubmitJobResponse>("SubmitJob", _ =>
                throw RpcErrors.InvalidArgument("envelope.input_manifest.payload", "payload exceeds 4194304 bytes"))
            .OnUnary<CreateJoinTokenRequest, CreateJoinTokenResponse>("CreateJoinToken", _ =>
                throw RpcErrors.FailedPrecondition("NETWORK_ROLE", "usr_ada", "only admins and members can add devices"));

        Assert.That(await cli.RunAsync("run", "embeddings", "-t", "big"), Is.EqualTo(1));
        Assert.That(cli.Stderr, Is.EqualTo(
            "error: invalid envelope.input_manifest.payload: payload exceeds 4194304 bytes\n"));

        Assert.That(await cli.RunAsync("device", "join"), Is.EqualTo(1));
        Assert.That(cli.Stderr, Is.EqualTo("error: only admins and members can add devices (NETWORK_ROLE)\n"));
        Assert.That(cli.Stderr, Does.Not.Contain(" at "));
    }

    [Test]
    public async Task An_expired_session_says_to_log_in_again()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh.OnUnary<ListDevicesRequest, ListDevicesResponse>("ListDevices", _ => throw RpcErrors.Unauthenticated("session expired"));

        Assert.That(await cli.RunAsync("devices", "list"), Is.EqualTo(1));
        Assert.That(cli.Stderr, Does.StartWith("error: Unauthenticated: session expired"));
        Assert.That(cli.Stderr, Does.Contain("meshnet auth login --server https://127.0.0.1:7443"));
    }

    [Test]
    public async Task A_server_that_does_not_answer_in_time_is_named()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh.OnUnary<ListJobsRequest, ListJobsResponse>("ListJobs", _ => throw new RpcException(new Status(StatusCode.DeadlineExceeded, "")));

        Assert.That(await cli.RunAsync("jobs", "list"), Is.EqualTo(1));
        Assert.That(cli.Stderr, Is.EqualTo("error: DeadlineExceeded: https://127.0.0.1:7443 did not answer in time\n"));
    }

    [Test]
    public async Task Without_a_default_network_commands_say_how_to_pick_one()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync(defaultNetworkId: null);

        Assert.That(await cli.RunAsync("ledger", "show"), Is.EqualTo(1));
        Assert.That(cli.Stderr, Is.EqualTo("error: No network selected. Pass --network ID, or run: meshnet net use ID (see: meshnet net list)\n"));
    }

    private static void SetUpEmbeddings(FakeMesh mesh)
    {
        var output = new EmbeddingsOutput { Dimension = 3, Model = "minilm" };
        output.Embeddings.Add(new Embedding { Values = { 0.6f, 0.8f, 0f } });
        output.Embeddings.Add(new Embedding { Values = { 0f, 0f, 2f } });
        var done = new Job { JobId = "job_1", NetworkId = "net_home", State = JobState.Completed, DeviceId = "dev_laptop", LatencyMs = 123, CostMicro = 66_667 };
        mesh.OnUnary<SubmitJobRequest, SubmitJobResponse>("SubmitJob", r => new SubmitJobResponse
            {
                Job = new Job { JobId = "job_1", NetworkId = r.Envelope.NetworkId, State = JobState.Queued },
            })
            .OnStream<WatchJobRequest, WatchJobResponse>("WatchJob", _ =>
            [
                new WatchJobResponse { Status = new JobStatusFrame { Job = new Job { JobId = "job_1", State = JobState.Queued } } },
                new WatchJobResponse { Status = new JobStatusFrame { Job = new Job { JobId = "job_1", State = JobState.Running, DeviceId = "dev_laptop" } } },
                new WatchJobResponse { Progress = new JobProgressFrame { Fraction = 0.5 } },
                new WatchJobResponse { Result = new JobResultFrame { Output = new WorkloadOutput { Embeddings = output }.ToByteString(), Job = done } },
            ]);
    }

    private static void SetUpLedger(FakeMesh mesh)
    {
        mesh.OnUnary<GetBalancesRequest, GetBalancesResponse>("GetBalances", r => new GetBalancesResponse
            {
                Balances = new Balances
                {
                    NetworkId = r.NetworkId, SharedPoolEnabled = true, PoolBalanceMicro = 99_933_333, MintedTotalMicro = 66_667, BurnedTotalMicro = 66_667,
                    GrantedTotalMicro = 100_000_000,
                    Members = { new MemberBalance { UserId = "usr_ada", Email = "ada@example.com", MintedMicro = 66_667, BurnedMicro = 66_667 } },
                    Devices = { new DeviceBalance { DeviceId = "dev_laptop", DeviceName = "laptop", OwnerUserId = "usr_ada", MintedMicro = 66_667, RuntimeMs = 1000, Jobs = 1 } },
                },
            })
            .OnUnary<ListLedgerEventsRequest, ListLedgerEventsResponse>("ListLedgerEvents", _ => new ListLedgerEventsResponse
            {
                Events =
                {
                    new LedgerEvent
                    {
                        Sequence = 7, EventType = LedgerEventType.CreditsBurned, JobId = "job_1", DeviceId = "dev_laptop", UserId = "usr_ada",
                        AccountKind = AccountKind.Pool, AmountMicro = -66_667, CreateTime = Created,
                    },
                },
            });
    }
}

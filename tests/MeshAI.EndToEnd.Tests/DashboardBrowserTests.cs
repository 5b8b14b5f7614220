using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Issue 12: the web dashboard, end to end in headless Chromium against a real meshai-server process with real agent
/// processes. The tests build on each other ([DependsOnTest]) (sign in, create a network, add a device, …), like a person
/// setting a network up; each drives one flow of tests/browser/dashboard-flows.mjs and checks the outcome through the API.
/// Screenshots of every screen land in .artifacts/dashboard/.
/// </summary>
[TestFixture]
[Category("Browser")]
[Category("EndToEnd")]
[NonParallelizable]
public sealed partial class DashboardBrowserTests
{
    private const string Email = "dashboard-admin@example.com";
    private const string Invitee = "dashboard-member@example.com";
    private LocalMesh _mesh = null!;
    private DashboardDriver _browser = null!;
    private string _chatModel = null!;
    private string? _token;
    private string? _networkId;
    private string? _embeddingsJobId;
    private MeshAgent? _pairedAgent;
    private string? _cliConfig;
    private readonly List<MeshAgent> _agents = [];

    /// <summary>A server for the whole fixture; presence grace is short so a killed agent shows offline quickly.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        DashboardDriver.RequireTools();

        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 6 });
        _browser = new DashboardDriver(_mesh.Url);
        _chatModel = await MeshJobs.GenerateTinyChatModelAsync(Path.Combine(_mesh.DataDirectory, "tiny-chat"));
    }

    /// <summary>Stops the server and every agent.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task Signing_in_with_a_magic_link_from_the_sign_in_page_lands_on_the_network_list()
    {
        var result = await _browser.RunAsync("signin-magic", new Dictionary<string, string> { ["email"] = Email, ["outbox"] = _mesh.OutboxDirectory });
        _token = result.GetProperty("token").GetString();
        Assert.That(_token, Is.Not.Null.And.Not.Empty, "the session token is kept for the next visits");
        Assert.That(result.GetProperty("path").GetString(), Is.EqualTo("/"));
        using var channel = _mesh.Channel(_token);
        var me = await new MeshAI.Contracts.Identity.V1.IdentityService.IdentityServiceClient(channel).GetCurrentUserAsync(new MeshAI.Contracts.Identity.V1.GetCurrentUserRequest());
        Assert.That(me.User.Email, Is.EqualTo(Email), "the browser's session is a real session of that user");
    }

    [Test]
    [DependsOnTest(nameof(Signing_in_with_a_magic_link_from_the_sign_in_page_lands_on_the_network_list))]
    public async Task Creating_a_network_shows_the_spec_fields_and_defaults_and_opens_it()
    {
        var result = await _browser.RunAsync("create-network", Args(("name", "Dashboard Lab")));
        _networkId = result.GetProperty("networkId").GetString();
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("empty").GetBoolean(), Is.True, "a new account sees the empty state first");
            Assert.That(result.GetProperty("visibility").GetString(), Is.EqualTo("private"));
            Assert.That(result.GetProperty("billing").GetString(), Is.EqualTo("credits_internal"));
        });
        using var channel = _mesh.Channel(_token);
        var network = (await new NetworkService.NetworkServiceClient(channel).GetNetworkAsync(new GetNetworkRequest { NetworkId = _networkId })).Network;
        Assert.Multiple(() =>
        {
            Assert.That(network.Name, Is.EqualTo("Dashboard Lab"));
            Assert.That(network.Visibility, Is.EqualTo(NetworkVisibility.Private));
            Assert.That(network.BillingMode, Is.EqualTo(BillingMode.CreditsInternal));
            Assert.That(network.CallerRole, Is.EqualTo(MeshAI.Contracts.Common.V1.Role.Admin), "the creator is admin");
        });
    }

    [Test]
    [DependsOnTest(nameof(Creating_a_network_shows_the_spec_fields_and_defaults_and_opens_it))]
    public async Task A_device_added_by_its_link_appears_online_without_a_reload()
    {
        var result = await _browser.RunAsync("add-device", Args(("network", Network)), async (e, _) =>
        {
            Assert.That(e.GetProperty("name").GetString(), Is.EqualTo("join-link"));
            _agents.Add(await _mesh.StartAgentAsync(e.GetProperty("link").GetString()!, "lab-laptop", ["--chat-model-dir", _chatModel], null));
        });
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("link").GetString(), Does.StartWith("meshai://join?"));
            Assert.That(result.GetProperty("deviceId").GetString(), Is.EqualTo(_agents[0].DeviceId), "the card is the agent that joined");
            Assert.That(result.GetProperty("name").GetString(), Is.EqualTo("lab-laptop"));
            Assert.That(result.GetProperty("navigations").GetInt32(), Is.EqualTo(1), "no reload: the card arrived over WatchNetwork");
        });
    }

    [Test]
    [DependsOnTest(nameof(A_device_added_by_its_link_appears_online_without_a_reload))]
    public async Task Pinning_workloads_and_pausing_contribution_on_a_device_card_reach_the_device()
    {
        var result = await _browser.RunAsync("device-actions", Args(("network", Network), ("device", _agents[0].DeviceId)));
        Assert.That(result.GetProperty("paused").GetBoolean(), Is.True, "the card offered to enable contribution again once paused");
        var device = await GetDeviceAsync(_agents[0].DeviceId);
        Assert.Multiple(() =>
        {
            Assert.That(device.ContributionEnabled, Is.True, "enabled again at the end of the flow");
            Assert.That(device.PinnedWorkloads, Is.Empty, "unpinned again at the end of the flow (clear_pinned_workloads)");
        });
    }

    [Test]
    [DependsOnTest(nameof(A_device_added_by_its_link_appears_online_without_a_reload))]
    public async Task Inviting_by_share_link_and_approving_the_request_makes_an_active_member()
    {
        var inviteeToken = await _mesh.SignInAsync(Invitee);
        var result = await _browser.RunAsync("invite-member", Args(("network", Network), ("invitee", Invitee)), async (e, _) =>
        {
            using var channel = _mesh.Channel(inviteeToken);
            var accepted = await new NetworkService.NetworkServiceClient(channel).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = e.GetProperty("link").GetString() });
            Assert.That(accepted.Member.State, Is.EqualTo(MemberState.PendingApproval), "a share link waits for an admin");
        });
        Assert.That(result.GetProperty("invalidEmailRefused").GetBoolean(), Is.True, "the email field refuses a non-address before any call");
        Assert.That(result.GetProperty("link").GetString(), Does.Contain("/invite?token="));
        using var admin = _mesh.Channel(_token);
        var members = (await new NetworkService.NetworkServiceClient(admin).ListMembersAsync(new ListMembersRequest { NetworkId = Network })).Members;
        var member = members.Single(m => m.Email == Invitee);
        Assert.Multiple(() =>
        {
            Assert.That(member.State, Is.EqualTo(MemberState.Active), "approved from the dashboard");
            Assert.That(member.Role, Is.EqualTo(MeshAI.Contracts.Common.V1.Role.Member));
        });
    }

    [Test]
    [DependsOnTest(nameof(A_device_added_by_its_link_appears_online_without_a_reload))]
    public async Task Running_embeddings_shows_the_vectors_their_similarity_and_why_it_ran_there_and_stores_no_plaintext()
    {
        var secret = "dashboard secret " + Guid.NewGuid().ToString("N");
        var result = await _browser.RunAsync("run", Args(("network", Network), ("workload", "Embeddings"), ("texts", $"{secret}|a second sentence"), ("shot", "embeddings")));
        AssertCompleted(result);
        _embeddingsJobId = result.GetProperty("jobId").GetString();
        var similarities = result.GetProperty("similarities").EnumerateArray().Select(e => e.GetDouble()).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("resultKind").GetString(), Is.EqualTo("result-embeddings"));
            Assert.That(result.GetProperty("estimate").GetString(), Does.Match(@"≈ [\d.,]+ credits"), "the estimate was shown before running");
            Assert.That(similarities, Has.Count.EqualTo(4), "a 2×2 similarity matrix");
            Assert.That(similarities[0], Is.EqualTo(1).Within(1e-3), "a vector is identical to itself");
        });

        var job = await GetJobAsync(_embeddingsJobId!);
        var ranOn = await GetDeviceAsync(job.Job.DeviceId);
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("selected").GetString(), Does.StartWith($"Ran on {ranOn.Name}:"), "the explain view names the device that ran it");
            Assert.That(job.Job.State, Is.EqualTo(JobState.Completed));
            Assert.That(job.Result.Encrypted, Is.True, "the device sealed the result to the browser's key");
        });
        // Neither the stored envelope nor the stored result holds the text: the whole SQLite store (database + WAL) is scanned.
        var needle = Encoding.UTF8.GetBytes(secret);
        foreach (var file in Directory.GetFiles(_mesh.DataDirectory, "meshai.db*"))
        {
            Assert.That(ReadShared(file).AsSpan().IndexOf(needle), Is.EqualTo(-1), $"plaintext of the dashboard's job found in {Path.GetFileName(file)}");
        }
    }

    [Test]
    [DependsOnTest(nameof(A_device_added_by_its_link_appears_online_without_a_reload))]
    public async Task Running_ocr_shows_the_text_with_the_word_boxes_drawn_on_the_image()
    {
        var result = await _browser.RunAsync("run", Args(("network", Network), ("workload", "OCR"), ("ocrText", "MeshAI reads this sentence"), ("shot", "ocr")));
        AssertCompleted(result);
        var text = result.GetProperty("resultText").GetString()!;
        TestContext.Out.WriteLine("OCR read: " + text);
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("resultKind").GetString(), Is.EqualTo("result-ocr"));
            Assert.That(text, Does.Contain("sentence").IgnoreCase, "Tesseract read the image Chromium rendered");
            Assert.That(result.GetProperty("boxes").GetInt32(), Is.GreaterThanOrEqualTo(3), "word boxes drawn over the image");
        });
    }

    [Test]
    [DependsOnTest(nameof(A_device_added_by_its_link_appears_online_without_a_reload))]
    public async Task Chatting_streams_tokens_into_the_conversation()
    {
        var result = await _browser.RunAsync("run", Args(("network", Network), ("workload", "Chat"), ("message", "Tell me about meshes."), ("maxTokens", "12"), ("shot", "chat")));
        AssertCompleted(result);
        var conversation = result.GetProperty("conversation").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("resultKind").GetString(), Is.EqualTo("result-chat"));
            Assert.That(result.GetProperty("sawTokens").GetInt32(), Is.GreaterThan(0), "tokens arrived in the live bubble before the result");
            Assert.That(conversation, Has.Count.EqualTo(2), "the question and the answer, as a conversation");
            Assert.That(conversation[0], Is.EqualTo("Tell me about meshes."));
        });
    }

    [Test]
    [DependsOnTest(nameof(A_device_added_by_its_link_appears_online_without_a_reload))]
    public async Task Transcribing_a_recording_shows_the_transcript_with_its_segments()
    {
        var wav = Path.Combine(_mesh.DataDirectory, "speech.wav");
        await MeshJobs.RunToolAsync("espeak-ng", ["-v", "en-us+m3", "-s", "140", "-w", wav, "i would like a cup of coffee"]);
        var result = await _browser.RunAsync("run", Args(("network", Network), ("workload", "Transcription"), ("wav", wav), ("shot", "transcribe")));
        AssertCompleted(result);
        var text = result.GetProperty("resultText").GetString()!;
        TestContext.Out.WriteLine("transcript: " + text);
        Assert.That(result.GetProperty("resultKind").GetString(), Is.EqualTo("result-transcript"));
        Assert.That(text, Does.Contain("would like").IgnoreCase, "pocketsphinx heard the espeak sentence (its generic model gets the start right)");
        Assert.That(TimeRange().IsMatch(text), Is.True, "segments are listed with their time ranges");
    }

    [Test]
    [DependsOnTest(nameof(A_device_added_by_its_link_appears_online_without_a_reload))]
    public async Task A_cost_cap_below_the_estimate_is_refused_with_the_servers_reason_not_a_status_dump()
    {
        var result = await _browser.RunAsync("run", Args(("network", Network), ("workload", "Embeddings"), ("cap", "0.000001"), ("expectError", "true"), ("shot", "cost-cap")));
        var error = result.GetProperty("error").GetString()!;
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("reason").GetString(), Is.EqualTo("JOB_COST_CAP_EXCEEDED"), "ErrorInfo.reason from the google.rpc details");
            Assert.That(error, Does.Contain("exceeds the cap max_cost_micro"), "the server's message");
            Assert.That(error, Does.Not.Contain("FAILED_PRECONDITION").And.Not.Contain("[failed_precondition]"), "no raw status in front of the message");
        });
    }

    [Test]
    [DependsOnTest(nameof(Running_embeddings_shows_the_vectors_their_similarity_and_why_it_ran_there_and_stores_no_plaintext))]
    public async Task The_recent_runs_and_a_job_page_show_status_node_cost_and_the_explain_view()
    {
        var result = await _browser.RunAsync("job-page", Args(("network", Network), ("job", _embeddingsJobId!)));
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("rows").GetInt32(), Is.GreaterThanOrEqualTo(1), "the runs so far are listed");
            Assert.That(result.GetProperty("sealedElsewhere").GetBoolean(), Is.True, "a fresh browser has no key for a result sealed to another browser and says so");
        });
    }

    [Test]
    [DependsOnTest(nameof(Running_embeddings_shows_the_vectors_their_similarity_and_why_it_ran_there_and_stores_no_plaintext))]
    public async Task Exporting_the_ledger_gives_files_that_parse_and_reconcile_reports_balanced()
    {
        var result = await _browser.RunAsync("ledger", Args(("network", Network)));
        using var channel = _mesh.Channel(_token);
        var events = (await new LedgerService.LedgerServiceClient(channel).ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = Network, PageSize = 500 })).Events;
        var files = result.GetProperty("files");
        var csv = files.GetProperty("csv");
        var jsonl = files.GetProperty("jsonl");
        var csvLines = csv.GetProperty("text").GetString()!.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var jsonLines = jsonl.GetProperty("text").GetString()!.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(csv.GetProperty("name").GetString(), Is.EqualTo($"ledger-{Network}.csv"));
            Assert.That(csvLines[0], Does.Contain("event_type").Or.Contain("eventType").Or.Contain("sequence"), "a header row");
            Assert.That(csvLines, Has.Length.EqualTo(events.Count + 1), "one row per ledger event");
            Assert.That(jsonLines, Has.Count.EqualTo(events.Count), "one JSON object per line and event");
            Assert.That(jsonLines.Any(j => j.ToString().Contains(_embeddingsJobId!, StringComparison.Ordinal)), Is.True, "the dashboard's job is in the export");
            Assert.That(result.GetProperty("reconcile").GetString(), Does.StartWith("Balanced"));
        });
    }

    [Test]
    [DependsOnTest(nameof(Creating_a_network_shows_the_spec_fields_and_defaults_and_opens_it))]
    public async Task A_policy_edit_whose_stored_test_fails_is_refused_with_the_failing_test_named()
    {
        using var channel = _mesh.Channel(_token);
        var policies = new PolicyService.PolicyServiceClient(channel);
        var before = (await policies.GetPolicyAsync(new GetPolicyRequest { NetworkId = Network })).Policy;
        var result = await _browser.RunAsync("policy-refused", Args(("network", Network)));
        var after = (await policies.GetPolicyAsync(new GetPolicyRequest { NetworkId = Network })).Policy;
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("failing").GetInt32(), Is.GreaterThanOrEqualTo(1), "running the stored tests in the page shows the failing one");
            Assert.That(result.GetProperty("reason").GetString(), Is.EqualTo("POLICY_TESTS_FAILED"));
            Assert.That(result.GetProperty("refusal").GetString(), Does.Contain("policy test(s) fail").And.Contain("expected"), "the reason names the test and what it expected");
            Assert.That(after.Version, Is.EqualTo(before.Version), "nothing was saved");
        });
    }

    [Test]
    [DependsOnTest(nameof(Exporting_the_ledger_gives_files_that_parse_and_reconcile_reports_balanced))]
    public async Task Rotating_keys_from_settings_changes_the_network_keys_and_devices_keep_working()
    {
        var result = await _browser.RunAsync("rotate-keys", Args(("network", Network)));
        using var channel = _mesh.Channel(_token);
        var network = (await new NetworkService.NetworkServiceClient(channel).GetNetworkAsync(new GetNetworkRequest { NetworkId = Network })).Network;
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("after").GetString(), Is.Not.EqualTo(result.GetProperty("before").GetString()));
            Assert.That(result.GetProperty("after").GetString(), Is.EqualTo(network.ControlKeyId), "the page shows the server's new control key");
            Assert.That(result.GetProperty("ca").GetString(), Is.EqualTo(network.CaKeyId));
        });
        // An encrypted job planned and signed under the new key still runs on the device that joined under the old CA.
        var run = await _browser.RunAsync("run", Args(("network", Network), ("workload", "Diagnostic echo"), ("data", "after rotation"), ("shot", "after-rotation")));
        AssertCompleted(run);
        Assert.That(run.GetProperty("resultText").GetString(), Is.EqualTo("after rotation"));
    }

    [Test]
    [DependsOnTest(nameof(A_device_added_by_its_link_appears_online_without_a_reload))]
    public async Task A_device_paired_with_its_code_in_the_dashboard_joins_and_comes_online()
    {
        var state = _mesh.NewAgentStateDirectory();
        var models = await ProvisionedModels.EnsureAsync();
        var pair = _mesh.Track(ProcessRunner.Start(new ProcessRunnerOptions
        {
            FileName = ProcessRunner.DotnetHostPath,
            Arguments = [RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent"), "pair", "--server", _mesh.Url, "--fingerprint", _mesh.Fingerprint, "--state-dir", state, "--name", "paired-box", "--model-cache", models],
            Name = "agent-pair",
        }));
        await _browser.RunAsync("pair-device", Args(("network", Network)), async (e, run) =>
        {
            if (e.GetProperty("name").GetString() == "need-code")
            {
                var line = await pair.WaitForLineAsync("MESHAI_AGENT_PAIRING", TimeSpan.FromSeconds(60));
                await DashboardDriver.ContinueAsync(run, line.Text[(line.Text.IndexOf("code=", StringComparison.Ordinal) + 5)..].Trim());
                return;
            }

            Assert.That(await pair.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.Zero, pair.Output);
            var deviceId = JoinedLine().Match(pair.Output).Groups["id"].Value;
            _pairedAgent = await _mesh.RunAgentAsync(state, deviceId, "paired-box", []);
        });
        var device = await GetDeviceAsync(_pairedAgent!.DeviceId);
        Assert.That(device.Name, Is.EqualTo("paired-box"));
    }

    [Test]
    [DependsOnTest(nameof(A_device_paired_with_its_code_in_the_dashboard_joins_and_comes_online))]
    public async Task Killing_an_agent_turns_its_device_offline_on_the_open_page_and_it_can_be_removed()
    {
        // The agent may still be reconnecting with backoff (after the server-restart test): the flow starts from "Online".
        await WaitUntilOnlineAsync(_pairedAgent!.DeviceId, TimeSpan.FromMinutes(2));
        var result = await _browser.RunAsync("device-offline", Args(("network", Network), ("device", _pairedAgent!.DeviceId)), async (_, _) => await _pairedAgent.Process.DisposeAsync());
        Assert.That(result.GetProperty("navigations").GetInt32(), Is.EqualTo(1), "offline arrived live, without a reload");
        var device = await GetDeviceAsync(_pairedAgent.DeviceId);
        Assert.That(device.Revoked, Is.True, "removed from the dashboard: its certificate is revoked");
    }

    [Test]
    [DependsOnTest(nameof(Signing_in_with_a_magic_link_from_the_sign_in_page_lands_on_the_network_list))]
    public async Task Approving_a_terminal_sign_in_code_in_the_dashboard_signs_the_cli_in()
    {
        _cliConfig = Path.Combine(_mesh.DataDirectory, "dashboard-cli.json");
        var login = _mesh.StartCli(_cliConfig, "auth", "login", "--server", _mesh.Url, "--fingerprint", _mesh.Fingerprint, "--email", Email);
        var prompt = await login.WaitForLineAsync("(code ", TimeSpan.FromSeconds(60));
        var code = CodeInPrompt().Match(prompt.Text).Groups[1].Value;
        await _browser.RunAsync("approve-cli", Args(("code", code)));
        Assert.That(await login.WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.Zero, login.Output);
        Assert.That(login.Output, Does.Contain("Logged in to " + _mesh.Url + " as " + Email));
    }

    [Test]
    [DependsOnTest(nameof(Approving_a_terminal_sign_in_code_in_the_dashboard_signs_the_cli_in))]
    public async Task The_cli_prints_a_one_time_sign_in_link_that_opens_the_dashboard_signed_in()
    {
        var use = await LocalMesh.RunCliAsync(_cliConfig!, ["net", "use", Network]);
        Assert.That(use.ExitCode, Is.Zero, use.StandardError);
        var printed = await LocalMesh.RunCliAsync(_cliConfig!, ["--json", "auth", "dashboard"]);
        Assert.That(printed.ExitCode, Is.Zero, printed.StandardError);
        var json = JsonDocument.Parse(printed.StandardOutput).RootElement;
        var link = json.GetProperty("signInLink").GetString()!;
        Assert.That(json.GetProperty("dashboardUrl").GetString(), Is.EqualTo(_mesh.Url + "/"));
        var opened = await _browser.RunAsync("open-link", new Dictionary<string, string> { ["link"] = link });
        Assert.That(opened.GetProperty("path").GetString(), Is.EqualTo($"/networks/{Network}"), "the link opens the CLI's default network");
        Assert.That(opened.GetProperty("token").GetString(), Is.Not.Empty);
        var again = await _browser.RunAsync("open-link", new Dictionary<string, string> { ["link"] = link });
        Assert.Multiple(() =>
        {
            Assert.That(again.GetProperty("path").GetString(), Is.EqualTo("/signin/magic"), "the link works once");
            Assert.That(again.GetProperty("error").GetString(), Does.Contain("already used").And.Not.Contain("UNAUTHENTICATED"), "the server's reason is shown, not a status dump");
        });
    }

    [Test]
    [DependsOnTest(nameof(Signing_in_with_a_magic_link_from_the_sign_in_page_lands_on_the_network_list))]
    public async Task A_passkey_added_in_the_dashboard_signs_in_on_the_sign_in_page()
    {
        var localhost = $"https://localhost:{new Uri(_mesh.Url).Port}";
        var result = await _browser.RunAsync("passkey", Args(), atUrl: localhost);
        var passkeyToken = result.GetProperty("token").GetString();
        Assert.That(passkeyToken, Is.Not.Empty.And.Not.EqualTo(_token), "a new session from the passkey");
        using var channel = _mesh.Channel(passkeyToken);
        var me = await new IdentityService.IdentityServiceClient(channel).GetCurrentUserAsync(new GetCurrentUserRequest());
        Assert.That(me.User.Email, Is.EqualTo(Email));
    }

    [Test]
    [DependsOnTest(nameof(Running_embeddings_shows_the_vectors_their_similarity_and_why_it_ran_there_and_stores_no_plaintext))]
    public async Task Every_screen_renders_on_desktop_and_phone_without_serious_accessibility_violations_or_sideways_scrolling()
    {
        var result = await _browser.RunAsync("screens", Args(("network", Network), ("job", _embeddingsJobId!)), timeout: TimeSpan.FromMinutes(10)); // a hang guard: 22 screens with axe scans take minutes on a busy 2-core machine
        var report = result.GetProperty("report").EnumerateArray().ToList();
        var failures = new List<string>();
        foreach (var screen in report)
        {
            var name = $"{screen.GetProperty("screen").GetString()} ({screen.GetProperty("kind").GetString()})";
            Assert.That(File.Exists(screen.GetProperty("file").GetString()), Is.True, name + " screenshot");
            foreach (var v in screen.GetProperty("violations").EnumerateArray())
            {
                var line = $"{name}: {v.GetProperty("impact").GetString()} {v.GetProperty("id").GetString()} — {v.GetProperty("help").GetString()} ({v.GetProperty("nodes").GetInt32()} nodes: {string.Join(", ", v.GetProperty("targets").EnumerateArray())})";
                TestContext.Out.WriteLine("axe: " + line);
                if (v.GetProperty("impact").GetString() is "serious" or "critical")
                {
                    failures.Add(line);
                }
            }

            if (screen.GetProperty("overflow").GetInt32() > 1)
            {
                failures.Add($"{name}: {screen.GetProperty("overflow").GetInt32()} px wider than a 360 px screen");
            }
        }

        Assert.That(report, Has.Count.EqualTo(22), "11 screens × desktop and phone");
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    [Test]
    [DependsOnTest(nameof(Every_screen_renders_on_desktop_and_phone_without_serious_accessibility_violations_or_sideways_scrolling))]
    public async Task A_server_restart_shows_reconnecting_and_the_open_page_recovers_without_a_reload()
    {
        var result = await _browser.RunAsync("reconnect", Args(("network", Network)), async (_, run) =>
        {
            await _mesh.RestartServerAsync();
            await DashboardDriver.ContinueAsync(run);
        }, timeout: TimeSpan.FromMinutes(4));
        Assert.That(result.GetProperty("navigations").GetInt32(), Is.EqualTo(1), "the page reconnected by itself");
    }

    /// <summary>Fails with what the page showed when a run did not complete.</summary>
    private static void AssertCompleted(JsonElement run) =>
        Assert.That(run.GetProperty("state").GetString(), Is.EqualTo("COMPLETED"), run.TryGetProperty("error", out var error) ? error.GetString() : "");

    private async Task WaitUntilOnlineAsync(string deviceId, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while ((await GetDeviceAsync(deviceId)).OnlineStatus != OnlineStatus.Online)
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"device {deviceId} did not come online within {limit}");
            }

            await Task.Delay(500);
        }
    }

    private async Task<Device> GetDeviceAsync(string deviceId)
    {
        using var channel = _mesh.Channel(_token);
        return (await new DeviceService.DeviceServiceClient(channel).GetDeviceAsync(new GetDeviceRequest { NetworkId = Network, DeviceId = deviceId })).Device;
    }

    private async Task<GetJobResponse> GetJobAsync(string jobId)
    {
        using var channel = _mesh.Channel(_token);
        return await new JobService.JobServiceClient(channel).GetJobAsync(new GetJobRequest { NetworkId = Network, JobId = jobId });
    }

    private static byte[] ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }

    [GeneratedRegex(@"\(code ([A-Z0-9-]+)\)")]
    private static partial Regex CodeInPrompt();

    [GeneratedRegex(@"MESHAI_AGENT_JOINED device_id=(?<id>\S+)")]
    private static partial Regex JoinedLine();

    [GeneratedRegex(@"\d+:\d\d\.\d–\d+:\d\d\.\d")]
    private static partial Regex TimeRange();

    private string Network => _networkId ?? throw new InconclusiveException("no network: the create-network test did not run");

    private Dictionary<string, string> Args(params (string Key, string Value)[] pairs)
    {
        var args = pairs.ToDictionary(p => p.Key, p => p.Value);
        args["token"] = _token ?? throw new InconclusiveException("not signed in: the sign-in test did not run");
        return args;
    }
}

using System.Text.Json;
using MeshAI.Client;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Issue 13: a phone contributes from its browser. A real meshai-server process (serving the real all-MiniLM-L6-v2 files),
/// a real native agent and the real CLI; the phone is headless Chromium with phone emulation (390×844, touch, a mobile user
/// agent) whose battery, connection, pressure and visibility signals an init script controls (tests/browser/phone-signals.js).
/// The tests build on each other like a person's afternoon: the phone joins through the QR link, runs a CLI job whose vectors
/// match the native agent's, is unplugged mid-job, goes on cellular data, is hidden, switched off, and finally revoked.
/// Screenshots of each state: .artifacts/contribute/.
/// </summary>
[TestFixture]
[Category("Browser")]
[Category("EndToEnd")]
[NonParallelizable]
public sealed class ContributorBrowserTests : IDisposable
{
    private const string Email = "phone-owner@example.com";

    // Texts the phone and the agent both embed (varied on purpose: case, punctuation, numbers, accents).
    private static readonly string[] Texts =
    [
        "A cat sat on the mat.", "A kitten rested on the rug.", "Quarterly revenue grew 4 % in the third quarter.",
        "The café's naïve owner re-opened on Monday!", "How do I reset my password?", "Photosynthesis turns light into chemical energy.",
    ];

    private LocalMesh _mesh = null!;
    private ContributorPage _page = null!;
    private MeshClient _sdk = null!;
    private string _cli = null!;
    private string _network = null!;
    private MeshAgent _agent = null!;
    private string _phone = "";

    /// <summary>
    /// One server for the fixture, serving the model files; a 10 s heartbeat (grace 30 s) so a state change reaches control only
    /// with the next heartbeat, as on a real phone, and an offer can meet the page's fresher check.
    /// </summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        var models = await ProvisionedModels.EnsureAsync();
        if (Directory.Exists(ContributorPage.Artifacts))
        {
            Directory.Delete(ContributorPage.Artifacts, recursive: true);
        }

        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions
        {
            HeartbeatGraceSeconds = 30,
            ExtraServerArguments = ["--models-dir", models, "--Relay:HeartbeatIntervalMs", "10000", "--Control:Ledger:HeartbeatIntervalMs", "10000"],
        });
        _cli = Path.Combine(_mesh.DataDirectory, "phone-owner-cli.json");
        var token = await _mesh.SignInWithCliAsync(_cli, Email);
        _sdk = new MeshClient(_mesh.Url, _mesh.Fingerprint, token);
        _network = Json(await Cli("net", "create", "Phones", "--json")).GetProperty("networkId").GetString()!;
        // Weigh credit cost heavily, so the cheapest device goes first (the phone, tier0, before the laptop, tier2): a hand-back then moves the
        // job to the agent, which was a planned recipient of the encrypted payload all along.
        await Cli("net", "tune", "-w", "credit_rate_efficiency=1");
        await Cli("models", "publish", ProvisionedModels.MiniLm);
        var agentLink = Json(await Cli("device", "join", "--json")).GetProperty("joinLink").GetString()!;
        _agent = await _mesh.StartAgentAsync(agentLink, "laptop");
        _page = ContributorPage.Start();
    }

    /// <summary>Releases the SDK client (NUnit calls it after the fixture's teardown).</summary>
    public void Dispose() => _sdk?.Dispose();

    /// <summary>Closes the browser, the agent and the server.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_page is not null)
        {
            await _page.DisposeAsync();
        }

        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task A_phone_joins_through_the_qr_link_and_appears_online_as_a_tier0_web_device()
    {
        var link = Json(await Cli("device", "join", "--web", "--json")).GetProperty("webJoinLink").GetString()!;
        Assert.That(link, Does.StartWith(_mesh.Url + "/contribute#token="), "the QR code opens the contributor page; the token stays in the fragment");

        await _page.OpenAsync(link);
        await _page.ScreenshotAsync("join");
        await _page.JoinAsync("Pixel 8");
        var loading = await _page.WaitAsync(phase: "preparing", timeout: TimeSpan.FromSeconds(60));
        await _page.ScreenshotAsync("preparing");
        var ready = await _page.WaitAsync(phase: "contributing", timeout: TimeSpan.FromSeconds(240));
        _phone = ready.DeviceId;
        await _page.ScreenshotAsync("contributing");

        var devices = Json(await Cli("devices", "list", "--json")).GetProperty("devices").EnumerateArray().ToList();
        var card = devices.Single(d => d.GetProperty("deviceId").GetString() == _phone);
        Assert.Multiple(() =>
        {
            Assert.That(loading.Model, Is.AnyOf("waiting", "downloading", "verifying", "loading"), "the model is fetched and checked before use");
            Assert.That(ready.Model, Is.EqualTo("ready"));
            Assert.That(ready.CrossOriginIsolated, Is.True, "the page is cross-origin isolated, so ONNX Runtime runs on several threads");
            Assert.That(ready.Rules.Where(r => r.State != "ok"), Is.Empty, "charging on Wi-Fi, on screen, cool: every rule met");
            Assert.That(card.GetProperty("onlineStatus").GetString(), Does.Contain("ONLINE"));
            Assert.That(card.GetProperty("platform").GetString(), Does.Contain("WEB"));
            Assert.That(card.GetProperty("capabilityTier").GetString(), Is.EqualTo("TIER_0"));
            Assert.That(card.GetProperty("name").GetString(), Is.EqualTo("Pixel 8"));
        });
    }

    [Test]
    [DependsOnTest(nameof(A_phone_joins_through_the_qr_link_and_appears_online_as_a_tier0_web_device))]
    public async Task A_cli_job_pinned_to_the_phone_runs_in_the_page_and_its_vectors_equal_the_native_agents()
    {
        var onPhone = Json(await Cli(["run", "embeddings", .. Texts.SelectMany(t => new[] { "--text", t }), "--routing", "pinned_device", "--device", Phone, "--json"]));
        var onAgent = Json(await Cli(["run", "embeddings", .. Texts.SelectMany(t => new[] { "--text", t }), "--routing", "pinned_device", "--device", _agent.DeviceId, "--json"]));
        var jobId = onPhone.GetProperty("jobId").GetString()!;
        var page = await _page.WaitAsync(eventKind: "done", jobId: jobId);
        // The day's counters come from control once it acknowledged the result (settled); give that a few refreshes.
        for (var tries = 0; page.JobsToday != "1" && tries < 60; tries++)
        {
            await Task.Delay(500);
            page = await _page.StateAsync();
        }

        await _page.ScreenshotAsync("after-job", fullPage: true);

        var phoneVectors = Vectors(onPhone);
        var agentVectors = Vectors(onAgent);
        TestContext.Out.WriteLine($"cosine page vs agent: min {Enumerable.Range(0, Texts.Length).Min(i => Cosine(phoneVectors[i], agentVectors[i])):F6}");
        Assert.Multiple(() =>
        {
            Assert.That(onPhone.GetProperty("deviceId").GetString(), Is.EqualTo(Phone), "placed on the phone, as pinned");
            Assert.That(onPhone.GetProperty("tier").GetString(), Is.EqualTo("tier0"));
            Assert.That(onAgent.GetProperty("deviceId").GetString(), Is.EqualTo(_agent.DeviceId));
            Assert.That(onPhone.GetProperty("model").GetString(), Is.EqualTo(ProvisionedModels.MiniLm));
            Assert.That(phoneVectors.Select(v => v.Length), Is.All.EqualTo(384));
            for (var i = 0; i < Texts.Length; i++)
            {
                Assert.That(Cosine(phoneVectors[i], agentVectors[i]), Is.GreaterThanOrEqualTo(0.999), $"text {i}: the page's vector equals the agent's");
            }

            Assert.That(TokenCounts(onPhone), Is.EqualTo(TokenCounts(onAgent)), "the same tokenizer");
            Assert.That(page.JobsToday, Is.EqualTo("1"), "the page counts the job it ran");
        });
    }

    [Test]
    [DependsOnTest(nameof(A_cli_job_pinned_to_the_phone_runs_in_the_page_and_its_vectors_equal_the_native_agents))]
    public async Task Unplugging_the_phone_mid_job_hands_the_job_back_and_it_is_retried_on_the_agent_and_billed_once()
    {
        var job = await RunningOnThePhoneAsync();
        await _page.SignalsAsync(new { charging = false });
        // The hand-back is logged before the page settles into its paused phase: wait for both.
        var page = await _page.WaitAsync(phase: "paused", eventKind: "handed-back", jobId: job.JobId);
        await _page.ScreenshotAsync("paused-unplugged");
        var run = await _sdk.WaitForResultAsync(_network, job);

        var done = await GetJobAsync(job.JobId);
        var events = (await _sdk.GetLedgerAsync(_network, pageSize: 1000)).Events.Where(e => e.JobId == job.JobId).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(page.Phase, Is.EqualTo("paused"));
            Assert.That(page.Reason, Does.Contain("Plug the phone in"), "the page says what stops it, as what to do");
            Assert.That(page.Rules.Single(r => r.Id == "charging").State, Is.EqualTo("blocked"));
            Assert.That(run.Output.Embeddings.Embeddings, Has.Count.EqualTo(LongTexts.Length), "the agent finished the job");
            Assert.That(done.DeviceId, Is.EqualTo(_agent.DeviceId));
            Assert.That(done.Attempts.Select(a => a.DeviceId), Is.EqualTo(new[] { Phone, _agent.DeviceId }));
            Assert.That(done.Attempts[0].Detail, Does.Contain("handed back").And.Contain("not charging"));
            Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
            Assert.That(events.Where(e => e.EventType == LedgerEventType.CreditsMinted).Select(e => e.DeviceId), Is.EqualTo(new[] { _agent.DeviceId }),
                "the phone earns nothing for work it handed back");
        });

        await _page.SignalsAsync(new { charging = true });
        await _page.WaitAsync(phase: "contributing");
    }

    [Test]
    [DependsOnTest(nameof(Unplugging_the_phone_mid_job_hands_the_job_back_and_it_is_retried_on_the_agent_and_billed_once))]
    public async Task On_cellular_data_the_page_declines_the_offer()
    {
        // Right after a heartbeat told control "Wi-Fi", the phone moves to cellular data; the next offer meets the page's own check.
        await _page.SignalsAsync(new { type = "cellular" }, afterHeartbeat: true);
        var job = await _sdk.SubmitJobAsync(_network, new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { Texts } } },
            new JobRouting { Mode = RoutingMode.PinnedDevice, PinnedDeviceIds = [Phone] });
        var page = await _page.WaitAsync(eventKind: "declined", jobId: job.JobId);
        await _page.ScreenshotAsync("paused-cellular");
        var attempts = await WaitForAttemptAsync(job.JobId, a => a.DeviceId == Phone && a.Cause == AttemptCause.NodeDecline);

        Assert.Multiple(() =>
        {
            Assert.That(page.EventsOf(job.JobId).First().Text, Does.Contain("on cellular data"));
            Assert.That(page.Phase, Is.EqualTo("paused"));
            Assert.That(page.Rules.Single(r => r.Id == "wifi").State, Is.EqualTo("blocked"));
            Assert.That(attempts.Detail, Does.Contain("on cellular data"), "control records the phone's reason with the attempt");
        });

        await _page.SignalsAsync(new { type = "wifi" });
        await _page.WaitAsync(phase: "contributing");
    }

    [Test]
    [DependsOnTest(nameof(On_cellular_data_the_page_declines_the_offer))]
    public async Task Hiding_the_page_hands_the_running_job_back()
    {
        var job = await RunningOnThePhoneAsync();
        await _page.SignalsAsync(new { visible = false });
        var page = await _page.WaitAsync(eventKind: "handed-back", jobId: job.JobId);
        await _sdk.WaitForResultAsync(_network, job);
        var done = await GetJobAsync(job.JobId);
        Assert.Multiple(() =>
        {
            Assert.That(page.Rules.Single(r => r.Id == "visible").State, Is.EqualTo("blocked"));
            Assert.That(done.Attempts[0].DeviceId, Is.EqualTo(Phone));
            Assert.That(done.Attempts[0].Detail, Does.Contain("hidden"));
            Assert.That(done.DeviceId, Is.EqualTo(_agent.DeviceId), "retried on the agent");
        });

        await _page.SignalsAsync(new { visible = true });
        await _page.WaitAsync(phase: "contributing");
    }

    [Test]
    [DependsOnTest(nameof(Hiding_the_page_hands_the_running_job_back))]
    public async Task The_big_switch_turns_contribution_off_and_back_on()
    {
        await _page.ToggleAsync();
        var off = await _page.WaitAsync(phase: "off");
        await _page.ScreenshotAsync("switched-off");
        await _page.ToggleAsync();
        var on = await _page.WaitAsync(phase: "contributing");
        Assert.Multiple(() =>
        {
            Assert.That(off.SwitchedOn, Is.False);
            Assert.That(off.Rules.Single(r => r.Id == "switch").State, Is.EqualTo("blocked"));
            Assert.That(on.SwitchedOn, Is.True);
        });
    }

    [Test]
    [DependsOnTest(nameof(The_big_switch_turns_contribution_off_and_back_on))]
    public async Task Revoking_the_phone_from_the_cli_closes_its_session_at_once()
    {
        await Cli("device", "revoke", Phone, "--reason", "lost phone");
        var page = await _page.WaitAsync(phase: "revoked", timeout: TimeSpan.FromSeconds(30));
        await _page.ScreenshotAsync("revoked");
        var card = Json(await Cli("devices", "list", "--json")).GetProperty("devices").EnumerateArray().Single(d => d.GetProperty("deviceId").GetString() == Phone);
        Assert.Multiple(() =>
        {
            // The Cut that RevokeDevice pushes carries the admin's reason; a revocation noticed at a heartbeat would say "device revoked".
            Assert.That(page.Reason, Does.Contain("lost phone"), "the relay cut the session at once with the revocation's reason");
            Assert.That(card.GetProperty("revoked").GetBoolean(), Is.True);
        });
    }

    private string Phone => _phone.Length > 0 ? _phone : throw new InconclusiveException("the phone did not join: the first test did not pass");

    // Long enough that the page is still working when the test pulls the plug (a few seconds in WebAssembly).
    private static readonly string[] LongTexts = [.. Enumerable.Range(0, 256).Select(i =>
        $"Document {i}: " + string.Join(' ', Enumerable.Repeat("the quick brown fox jumps over the lazy dog while the phone charges", 8)))];

    /// <summary>Submits a long job for the phone or the agent (the phone goes first: cheapest) and waits until the page runs it.</summary>
    private async Task<Job> RunningOnThePhoneAsync()
    {
        var job = await _sdk.SubmitJobAsync(_network, new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { LongTexts } } },
            new JobRouting { Mode = RoutingMode.PinnedDevice, PinnedDeviceIds = [Phone, _agent.DeviceId], TimeoutMs = 300_000 });
        await _page.WaitAsync(phase: "working");
        return job;
    }

    private async Task<Job> GetJobAsync(string jobId) =>
        (await _sdk.Jobs.GetJobAsync(new GetJobRequest { NetworkId = _network, JobId = jobId })).Job;

    private async Task<JobAttempt> WaitForAttemptAsync(string jobId, Func<JobAttempt, bool> match)
    {
        var deadline = DateTimeOffset.UtcNow.AddSeconds(30);
        while (true)
        {
            var attempt = (await GetJobAsync(jobId)).Attempts.FirstOrDefault(match);
            if (attempt is not null)
            {
                return attempt;
            }

            if (DateTimeOffset.UtcNow > deadline)
            {
                Assert.Fail($"job {jobId} has no such attempt: {await GetJobAsync(jobId)}");
            }

            await Task.Delay(200);
        }
    }

    private async Task<string> Cli(params string[] arguments)
    {
        var result = await LocalMesh.RunCliAsync(_cli, arguments);
        if (result.ExitCode != 0)
        {
            Assert.Fail($"meshnet {string.Join(' ', arguments)} exited with {result.ExitCode}:\n{result.StandardOutput}\n{result.StandardError}");
        }

        return result.StandardOutput;
    }

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();

    private static float[][] Vectors(JsonElement run) =>
        [.. run.GetProperty("embeddings").EnumerateArray().Select(e => e.GetProperty("values").EnumerateArray().Select(v => v.GetSingle()).ToArray())];

    private static int[] TokenCounts(JsonElement run) => [.. run.GetProperty("embeddings").EnumerateArray().Select(e => e.GetProperty("tokenCount").GetInt32())];

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }

        return dot / Math.Sqrt(na * nb);
    }
}

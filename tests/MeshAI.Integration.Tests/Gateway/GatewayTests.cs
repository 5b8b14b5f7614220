using System.Collections;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Grpc.Core;
using MeshAI.Agent.State;
using MeshAI.Agent.Workloads;
using MeshAI.Common.Observability;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Integration.Tests.Security;
using MeshAI.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;
using OpenTelemetry.Trace;

namespace MeshAI.Integration.Tests.Gateway;

/// <summary>
/// The OpenAI-compatible gateway against the real server in-process, with two real agent sessions running the agent's
/// real embeddings runtime (all-MiniLM-L6-v2) and its OpenAI-compatible chat runtime (a local upstream), every relay frame
/// recorded and every span kept by an in-memory OpenTelemetry exporter.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class GatewayTests
{
    private static readonly string[] ServedModels = ["all-minilm-l6-v2", "arctic-embed-xs", "upstream-chat"];
    private static readonly string Marker = "zq" + Guid.NewGuid().ToString("N")[..10];
    private readonly LockedList<Activity> _spans = new();
    private SecureMeshHost _host = null!;
    private OpenAiUpstream _upstream = null!;
    private HttpClient _http = null!;
    private string _admin = null!;
    private string _networkId = null!;
    private string _key = null!;
    private readonly List<(AgentEnrollment Enrollment, WorkloadRegistry Registry)> _devices = [];

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _upstream = OpenAiUpstream.Start(["Hello", " from", " " + Marker + "-answer", " the", " mesh", "."], TimeSpan.FromMilliseconds(20));
        _host = await SecureMeshHost.StartAsync("sqlite", ["--Control:Gateway:RequestsPerMinutePerCaller", "30"],
            services => services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(_spans)));
        _http = _host.Http();
        _admin = await _host.SignInAsync("gateway-admin@example.com");
        _networkId = (await new NetworkService.NetworkServiceClient(_host.Channel(_admin)).CreateNetworkAsync(new CreateNetworkRequest { Name = "gateway" })).Network.NetworkId;
        var models = await ProvisionedModels.EnsureAsync();
        foreach (var name in new[] { "laptop", "desktop" })
        {
            var (enrollment, keys) = await _host.JoinAsync(_admin, _networkId, name);
            var registry = WorkloadRegistry.CreateDefault(new WorkloadSettings { ModelRoots = [models], ChatOpenAiUrl = _upstream.Url, ChatOpenAiModel = "upstream-chat" }, NullLogger.Instance);
            await _host.GoOnlineAsync(enrollment, keys, registry);
            _devices.Add((enrollment, registry));
        }

        _key = await CreateKeyAsync(_networkId, "tools");
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        _upstream?.Release();
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        _upstream?.Dispose();
    }

    [Test]
    public async Task Models_lists_what_the_online_devices_serve()
    {
        var (status, body, _) = await SendAsync(HttpMethod.Get, "/v1/models", _key);
        Assert.That(status, Is.EqualTo(200), body.ToJsonString());
        var ids = body["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();
        Assert.That(ids, Is.SupersetOf(ServedModels));
        Assert.That(body["data"]!.AsArray().First(m => m!["id"]!.GetValue<string>() == "upstream-chat")!["meshai_devices_online"]!.GetValue<int>(), Is.EqualTo(2));
    }

    [Test]
    public async Task Gateway_payloads_are_sealed_so_the_relay_and_the_store_see_only_ciphertext()
    {
        var secret = $"the {Marker} recipe for plum jam";
        var (status, body, headers) = await SendAsync(HttpMethod.Post, "/v1/embeddings", _key, new JsonObject { ["model"] = "all-minilm-l6-v2", ["input"] = new JsonArray(secret, "a second line") });
        Assert.That(status, Is.EqualTo(200), body.ToJsonString());
        Assert.That(body["data"]!.AsArray(), Has.Count.EqualTo(2));
        Assert.That(body["data"]![0]!["embedding"]!.AsArray(), Has.Count.EqualTo(384));
        Assert.That(body["usage"]!["prompt_tokens"]!.GetValue<int>(), Is.GreaterThan(0));
        var embeddingsJob = headers.GetValues("x-meshai-job-id").Single();

        var chatPrompt = $"tell me about {Marker}-prompt please";
        using var chat = await StreamAsync(new JsonObject
        {
            ["model"] = "upstream-chat", ["stream"] = true, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = chatPrompt }),
        });
        var streamed = string.Concat((await ReadEventsAsync(chat)).Select(Delta));
        Assert.That(streamed, Is.EqualTo(string.Concat(_upstream.Tokens)), "the client gets the tokens in plaintext");
        Assert.That(_upstream.Requests.Any(r => r.Contains(chatPrompt, StringComparison.Ordinal)), Is.True, "the device opened the prompt");
        var chatJob = chat.Headers.GetValues("x-meshai-job-id").Single();

        var jobs = _host.Services.GetRequiredService<MeshAI.Control.Storage.JobRepository>();
        foreach (var jobId in new[] { embeddingsJob, chatJob })
        {
            var stored = (await jobs.GetJobAsync(_networkId, jobId, CancellationToken.None))!;
            var envelope = JobEnvelope.Parser.ParseFrom(stored.Envelope);
            Assert.That(envelope.PayloadEncryption.Scheme, Is.EqualTo(PayloadEncryptionScheme.X25519HkdfXchacha20Poly1305), $"{jobId} sealed to devices");
            Assert.That(envelope.PayloadEncryption.Recipients.Select(r => r.DeviceId), Is.SubsetOf(_devices.Select(d => d.Enrollment.DeviceId)));
            Assert.That(stored.OutputEncrypted, Is.True, $"{jobId} result sealed back to the gateway's request key");
        }

        var needles = new[] { secret, chatPrompt, Marker + "-answer" }.Select(Encoding.UTF8.GetBytes).ToList();
        Assert.That(_host.Recorder.Frames, Is.Not.Empty);
        foreach (var needle in needles)
        {
            Assert.That(_host.Recorder.Frames.Any(f => f.AsSpan().IndexOf(needle) >= 0), Is.False, $"'{Encoding.UTF8.GetString(needle)}' crossed the relay in plaintext");
            foreach (var file in Directory.GetFiles(_host.DataDir, "meshai.db*"))
            {
                Assert.That((await ReadSharedAsync(file)).AsSpan().IndexOf(needle), Is.LessThan(0), $"'{Encoding.UTF8.GetString(needle)}' stored in plaintext in {Path.GetFileName(file)}");
            }
        }
    }

    [Test]
    public async Task Gateway_jobs_are_ordinary_jobs_routed_billed_and_explained_like_SubmitJob()
    {
        var pinned = _devices[1].Enrollment.DeviceId;
        var headers = new Dictionary<string, string> { ["MeshAI-Pinned-Device"] = pinned, ["Idempotency-Key"] = "idem-" + Marker };
        var body = new JsonObject { ["model"] = "all-minilm-l6-v2", ["input"] = "pinned to the desktop" };
        var (status, _, first) = await SendAsync(HttpMethod.Post, "/v1/embeddings", _key, body, headers);
        Assert.That(status, Is.EqualTo(200));
        var jobId = first.GetValues("x-meshai-job-id").Single();
        Assert.That(first.GetValues("x-request-id").Single(), Is.EqualTo(jobId));

        var client = new JobService.JobServiceClient(_host.Channel(_admin));
        var job = (await client.GetJobAsync(new GetJobRequest { NetworkId = _networkId, JobId = jobId })).Job;
        Assert.That((job.State, job.DeviceId, job.RoutingMode), Is.EqualTo((JobState.Completed, pinned, RoutingMode.PinnedDevice)));
        Assert.That(job.TraceId, Is.EqualTo(first.GetValues("x-meshai-trace-id").Single()));
        var explain = (await client.ExplainJobAsync(new ExplainJobRequest { NetworkId = _networkId, JobId = jobId })).DebugView;
        Assert.That(explain.SelectedDeviceId, Is.EqualTo(pinned));
        TestContext.Out.WriteLine(explain.ToString());
        Assert.That(explain.Eligibility.Where(e => e.DeviceId != pinned).Select(e => e.FailingFilter), Has.All.EqualTo(EligibilityFilter.Pinned), explain.ToString());
        var ledger = (await new LedgerService.LedgerServiceClient(_host.Channel(_admin)).ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = _networkId, JobId = jobId, PageSize = 100 })).Events;
        Assert.That(ledger.Select(e => e.EventType), Is.SupersetOf(new[] { LedgerEventType.JobCompleted, LedgerEventType.CreditsBurned }));
        Assert.That(ledger.Single(e => e.EventType == LedgerEventType.CreditsBurned).AmountMicro, Is.EqualTo(-job.CostMicro));

        var (again, replay, second) = await SendAsync(HttpMethod.Post, "/v1/embeddings", _key, body, headers);
        Assert.That((again, replay["error"]!["code"]!.GetValue<string>()), Is.EqualTo((409, "idempotency_key_reused")), replay.ToJsonString());
        Assert.That(second.GetValues("x-meshai-job-id").Single(), Is.EqualTo(jobId), "the same Idempotency-Key is the same job");
        var burns = (await new LedgerService.LedgerServiceClient(_host.Channel(_admin)).ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = _networkId, JobId = jobId, PageSize = 100 })).Events;
        Assert.That(burns.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
    }

    [Test]
    public async Task Concurrent_requests_with_one_Idempotency_Key_run_one_job_and_the_others_get_409()
    {
        // Whether the later requests see the job at the check or lose the insert, the outcome is the same: one answer,
        // every other request 409 idempotency_key_reused naming that job, one bill.
        var headers = new Dictionary<string, string> { ["Idempotency-Key"] = "race-" + Marker };
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ =>
            SendAsync(HttpMethod.Post, "/v1/embeddings", _key, new JsonObject { ["model"] = "all-minilm-l6-v2", ["input"] = "one key, four requests" }, headers)));
        var statuses = results.Select(r => r.Status).ToList();
        Assert.That(statuses.Count(s => s == 200), Is.EqualTo(1), string.Join(", ", statuses));
        Assert.That(statuses.Count(s => s == 409), Is.EqualTo(3), string.Join(", ", statuses));
        Assert.That(results.Where(r => r.Status == 409).Select(r => r.Body["error"]!["code"]!.GetValue<string>()), Is.All.EqualTo("idempotency_key_reused"));
        var jobIds = results.Select(r => r.Headers.GetValues("x-meshai-job-id").Single()).Distinct().ToList();
        Assert.That(jobIds, Has.Count.EqualTo(1), "every answer names the one job");
        var events = (await new LedgerService.LedgerServiceClient(_host.Channel(_admin)).ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = _networkId, JobId = jobIds[0], PageSize = 100 })).Events;
        Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
    }

    [Test]
    public async Task Errors_use_openai_shapes_and_the_status_codes_clients_understand()
    {
        var embed = new JsonObject { ["model"] = "all-minilm-l6-v2", ["input"] = "x" };
        await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", null, embed, 401, "missing_api_key");
        await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", "mak_not-a-real-key", embed, 401, "invalid_api_key");
        await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", _key, new JsonObject { ["model"] = "gpt-4o", ["input"] = "x" }, 404, "model_not_found");
        await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", _key, new JsonObject { ["model"] = "all-minilm-l6-v2", ["input"] = new JsonArray(1, 2) }, 400, "invalid_value");
        await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", _key, embed, 402, "cost_cap_exceeded", new() { ["MeshAI-Max-Cost-Micro"] = "1" });
        await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", _key, embed, 400, "invalid_value", new() { ["MeshAI-Routing-Mode"] = "fastest" });

        using (var raw = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = new StringContent("{\"model\": ", Encoding.UTF8, "application/json") })
        {
            raw.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _key);
            using var response = await _http.SendAsync(raw);
            Assert.That((int)response.StatusCode, Is.EqualTo(400));
            Assert.That(JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>(), Is.EqualTo("invalid_json"));
        }

        // Over the 1 MiB bound: refused from Content-Length alone (Expect: 100-continue, so the client never uploads it
        // and cannot race the server's answer with a broken pipe).
        var huge = new JsonObject { ["model"] = "all-minilm-l6-v2", ["input"] = new string('x', 1_100_000) };
        using (var tooLarge = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = new StringContent(huge.ToJsonString(), Encoding.UTF8, "application/json") })
        {
            tooLarge.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _key);
            tooLarge.Headers.ExpectContinue = true;
            using var response = await _http.SendAsync(tooLarge);
            Assert.That((int)response.StatusCode, Is.EqualTo(413));
            Assert.That(JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>(), Is.EqualTo("request_too_large"));
        }

        // Scopes: a key without "jobs" may not run jobs; a revoked key stops at once.
        var readOnly = await CreateKeyAsync(_networkId, "read-only", "ledger:read");
        await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", readOnly, embed, 403, "api_key_scope_missing");
        var revoked = await CreateKeyAsync(_networkId, "soon-revoked");
        var keys = new IdentityService.IdentityServiceClient(_host.Channel(_admin));
        var id = (await keys.ListApiKeysAsync(new ListApiKeysRequest { NetworkId = _networkId })).ApiKeys.Single(k => k.Name == "soon-revoked").ApiKeyId;
        await keys.RevokeApiKeyAsync(new RevokeApiKeyRequest { ApiKeyId = id });
        await ExpectErrorAsync(HttpMethod.Get, "/v1/models", revoked, null, 401, "invalid_api_key");

        // A network whose devices serve no model at all: the model is not found there (the 503 path is in the sensitivity test).
        var empty = (await new NetworkService.NetworkServiceClient(_host.Channel(_admin)).CreateNetworkAsync(new CreateNetworkRequest { Name = "empty" })).Network.NetworkId;
        var none = await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", await CreateKeyAsync(empty, "empty"), embed, 404, "model_not_found");
        Assert.That(none, Does.Contain("available: none").And.Not.Contain("envelope."), "the message names what the client sent, not the internal envelope");

        // Credits: a burn rate the pool cannot cover is 402.
        var ledger = new LedgerService.LedgerServiceClient(_host.Channel(_admin));
        var before = (await ledger.GetCreditRatesAsync(new GetCreditRatesRequest { NetworkId = _networkId }));
        var expensive = new UpdateCreditRatesRequest { NetworkId = _networkId };
        expensive.TierRates.AddRange(before.TierRates.Select(r => new TierRate { Tier = r.Tier, EarnMicroPerMin = r.EarnMicroPerMin, BurnMicroPerMin = 1_000_000_000_000 }));
        await ledger.UpdateCreditRatesAsync(expensive);
        try
        {
            await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", _key, embed, 402, "insufficient_credits");
        }
        finally
        {
            var restore = new UpdateCreditRatesRequest { NetworkId = _networkId };
            restore.TierRates.AddRange(before.TierRates);
            await ledger.UpdateCreditRatesAsync(restore);
        }
    }

    [Test]
    public async Task Sensitive_data_is_refused_by_the_gateway_unless_the_network_allows_it_and_then_the_scheduler_decides()
    {
        var embed = new JsonObject { ["model"] = "all-minilm-l6-v2", ["input"] = "medical notes" };
        var sensitive = new Dictionary<string, string> { ["MeshAI-Data-Sensitivity"] = "sensitive" };
        var error = await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", _key, embed, 403, "sensitivity_refused", sensitive);
        Assert.That(error, Does.Contain("plaintext"));

        var networks = new NetworkService.NetworkServiceClient(_host.Channel(_admin));
        await networks.UpdateNetworkSettingsAsync(new UpdateNetworkSettingsRequest
        {
            NetworkId = _networkId,
            Settings = new NetworkSettings { Gateway = new GatewaySettings { MaxSensitivity = DataSensitivityTag.Sensitive } },
            UpdateMask = new Google.Protobuf.WellKnownTypes.FieldMask { Paths = { "gateway.max_sensitivity" } },
        });
        try
        {
            // The gateway now lets it through; the scheduler's policy filter decides, and these devices take no sensitive
            // data: 503 no_eligible_device, the status OpenAI clients retry, with the reason in the message.
            var message = await ExpectErrorAsync(HttpMethod.Post, "/v1/embeddings", _key, embed, 503, "no_eligible_device", sensitive);
            Assert.That(message, Does.Contain("eligib"));
        }
        finally
        {
            await networks.UpdateNetworkSettingsAsync(new UpdateNetworkSettingsRequest
            {
                NetworkId = _networkId,
                Settings = new NetworkSettings { Gateway = new GatewaySettings { MaxSensitivity = DataSensitivityTag.Unspecified } },
                UpdateMask = new Google.Protobuf.WellKnownTypes.FieldMask { Paths = { "gateway.max_sensitivity" } },
            });
        }
    }

    [Test]
    public async Task Too_many_requests_per_key_are_429_with_retry_after()
    {
        var key = await CreateKeyAsync(_networkId, "busy");
        var statuses = new List<int>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 70 && limited is null; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            var response = await _http.SendAsync(request);
            statuses.Add((int)response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited = response;
            }
            else
            {
                response.Dispose();
            }
        }

        Assert.That(limited, Is.Not.Null, "statuses: " + string.Join(",", statuses));
        using (limited)
        {
            Assert.That(limited!.Headers.RetryAfter, Is.Not.Null);
            Assert.That(JsonNode.Parse(await limited.Content.ReadAsStringAsync())!["error"]!["type"]!.GetValue<string>(), Is.EqualTo("rate_limit_error"));
        }

        Assert.That(statuses.Count(s => s == 200), Is.InRange(30, 60), "Control:Gateway:RequestsPerMinutePerCaller = 30 per fixed minute");
    }

    [Test]
    public async Task A_client_that_hangs_up_mid_stream_cancels_its_job()
    {
        _upstream.HoldAfter = 1;
        try
        {
            using var response = await StreamAsync(new JsonObject
            {
                ["model"] = "upstream-chat", ["stream"] = true, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "a long story" }),
            });
            var jobId = response.Headers.GetValues("x-meshai-job-id").Single();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            string? line;
            while ((line = await reader.ReadLineAsync()) is not null && !line.Contains("\"Hello\"", StringComparison.Ordinal))
            {
            }

            Assert.That(line, Is.Not.Null, "the first token arrives while the upstream holds the rest");
            response.Dispose(); // the client goes away with the answer unfinished
            var jobs = new JobService.JobServiceClient(_host.Channel(_admin));
            var deadline = DateTime.UtcNow.AddSeconds(20);
            Job job;
            do
            {
                await Task.Delay(100);
                job = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = _networkId, JobId = jobId })).Job;
            }
            while (job.State != JobState.Cancelled && DateTime.UtcNow < deadline);
            Assert.That(job.State, Is.EqualTo(JobState.Cancelled), job.ErrorMessage);
        }
        finally
        {
            _upstream.HoldAfter = null;
            _upstream.Release();
        }
    }

    [Test]
    public async Task One_job_is_one_trace_from_the_http_request_to_the_agent_and_back()
    {
        _spans.Clear();
        var traceparent = "00-" + ActivityTraceId.CreateRandom().ToHexString() + "-" + ActivitySpanId.CreateRandom().ToHexString() + "-01";
        var (status, body, headers) = await SendAsync(HttpMethod.Post, "/v1/embeddings", _key,
            new JsonObject { ["model"] = "all-minilm-l6-v2", ["input"] = "traced" }, new() { ["traceparent"] = traceparent });
        Assert.That(status, Is.EqualTo(200), body.ToJsonString());
        var traceId = headers.GetValues("x-meshai-trace-id").Single();
        Assert.That(traceId, Is.EqualTo(traceparent[3..35]), "the client's W3C trace context continues into the job");

        var names = new[] { "meshai.job.submit", "meshai.job.offer", "meshai.relay.offer", "meshai.agent.job", "meshai.relay.forward", "meshai.job.report" };
        var deadline = DateTime.UtcNow.AddSeconds(10);
        List<Activity> trace;
        do
        {
            await Task.Delay(50);
            trace = _spans.Snapshot().Where(a => a.TraceId.ToHexString() == traceId).ToList();
        }
        while ((names.Any(n => trace.All(a => a.OperationName != n)) || !trace.Any(IsHttpSpan)) && DateTime.UtcNow < deadline);

        TestContext.Out.WriteLine(string.Join("\n", trace.Select(a => $"{a.OperationName} {a.SpanId} parent {a.ParentSpanId} {a.Source.Name}")));
        Assert.That(trace.Select(a => a.OperationName), Is.SupersetOf(names));
        var http = trace.Single(IsHttpSpan);
        Activity Span(string name) => trace.Single(a => a.OperationName == name && (name != "meshai.job.report" || (string?)a.GetTagItem("meshai.frame") == "Result"));
        Assert.Multiple(() =>
        {
            Assert.That(Span("meshai.job.submit").ParentSpanId, Is.EqualTo(http.SpanId), "submit is a child of the HTTP request");
            Assert.That(Span("meshai.job.offer").ParentSpanId, Is.EqualTo(Span("meshai.job.submit").SpanId));
            Assert.That(Span("meshai.relay.offer").ParentSpanId, Is.EqualTo(Span("meshai.job.offer").SpanId), "JobOffer.traceparent");
            Assert.That(Span("meshai.agent.job").ParentSpanId, Is.EqualTo(Span("meshai.relay.offer").SpanId), "the agent's span");
            Assert.That(trace.Where(a => a.OperationName == "meshai.relay.forward").Select(a => a.ParentSpanId), Has.All.EqualTo(Span("meshai.agent.job").SpanId), "ConnectRequest.traceparent");
            Assert.That(trace.Where(a => a.OperationName == "meshai.job.report").Select(a => a.ParentSpanId),
                Is.SubsetOf(trace.Where(a => a.OperationName == "meshai.relay.forward").Select(a => a.SpanId)), "JobReport.traceparent");
            Assert.That(Span("meshai.agent.job").GetTagItem(MeshTelemetry.JobIdKey), Is.EqualTo(headers.GetValues("x-meshai-job-id").Single()));
        });
    }

    [Test]
    public async Task Network_metrics_are_for_that_networks_admins_and_the_open_endpoint_names_no_network()
    {
        var (status, _, _) = await SendAsync(HttpMethod.Post, "/v1/embeddings", _key, new JsonObject { ["model"] = "all-minilm-l6-v2", ["input"] = "counted" });
        Assert.That(status, Is.EqualTo(200));
        var open = await _http.GetStringAsync("/metrics");
        foreach (var series in new[] { "job_latency_ms_bucket", "job_success_rate", "relay_bandwidth_bytes", "device_online_rate", "credits_minted_per_day", "credits_burned_per_day", "grpc_server_handled_total", "process_cpu_seconds_total", "gateway_requests_total" })
        {
            Assert.That(open, Does.Contain(series), series);
        }

        var settled = System.Text.RegularExpressions.Regex.Match(open, @"^settlement_batch_size_count (\S+)$", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.That(settled.Success, Is.True, "settlement_batch_size is exported");
        Assert.That(double.Parse(settled.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThanOrEqualTo(1), "the embeddings job's settlement was committed by the group commit");
        Assert.That(open, Does.Contain("settlement_batch_fallbacks_total"));
        Assert.That(open, Does.Not.Contain("network_id").And.Not.Contain(_networkId), "the open endpoint carries no network ids");
        Assert.That(open, Does.Contain("device_online_rate 1"), "both devices are online");

        var path = $"/metrics/networks/{_networkId}";
        Assert.That((int)(await _http.GetAsync(path)).StatusCode, Is.EqualTo(401), "anonymous");
        Assert.That(await StatusAsync(path, _key), Is.EqualTo(403), "an API key without metrics:read");
        var scrape = await CreateKeyAsync(_networkId, "prometheus", "metrics:read");
        Assert.That(await StatusAsync("/metrics/networks/net_someoneelses0000000", scrape), Is.EqualTo(404), "another network is not found");
        var member = await _host.SignInAsync("gateway-member@example.com");
        var networks = new NetworkService.NetworkServiceClient(_host.Channel(_admin));
        var invite = await networks.InviteMemberAsync(new InviteMemberRequest { NetworkId = _networkId, Invitee = "gateway-member@example.com", InviteType = InviteType.Email, Role = Role.Member });
        await new NetworkService.NetworkServiceClient(_host.Channel(member)).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = invite.InviteLink });
        Assert.That(await StatusAsync(path, member), Is.EqualTo(403), "a member who is not an admin");

        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", scrape);
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/plain"));
        var network = $"network_id=\"{_networkId}\"";
        AssertSeries(text, "job_latency_ms_count", network, "workload=\"embeddings\"", "outcome=\"completed\"");
        AssertSeries(text, "relay_bandwidth_bytes", network, "direction=\"from_device\"");
        AssertSeries(text, "device_online_rate", network);
        Assert.That(text, Does.Contain($"device_online_rate{{{network}}} 1"));
        foreach (var series in new[] { "job_success_rate", "credits_minted_per_day", "credits_burned_per_day" })
        {
            AssertSeries(text, series, network);
        }

        Assert.That(text, Does.Not.Contain("grpc_server_handled_total"), "server-wide series stay on the operator's endpoint");
    }

    [Test]
    public async Task Health_liveness_readiness_and_the_grpc_health_service_answer()
    {
        Assert.That(await _http.GetStringAsync("/healthz"), Is.EqualTo("Healthy"));
        var ready = JsonNode.Parse(await _http.GetStringAsync("/readyz"))!;
        Assert.That(ready["status"]!.GetValue<string>(), Is.EqualTo("Healthy"));
        Assert.That(ready["checks"]!["store"]!["status"]!.GetValue<string>(), Is.EqualTo("Healthy"));
        Assert.That(ready["checks"]!["bus"]!["status"]!.GetValue<string>(), Is.EqualTo("Healthy"));
        var health = new Grpc.Health.V1.Health.HealthClient(_host.Channel());
        Assert.That((await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest { Service = "" })).Status, Is.EqualTo(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving));
    }

    private static bool IsHttpSpan(Activity a) => a.Source.Name == "Microsoft.AspNetCore" && a.DisplayName.Contains("/v1/embeddings", StringComparison.Ordinal);

    private static void AssertSeries(string exposition, string name, params string[] labels) =>
        Assert.That(exposition.Split('\n').Any(line => line.StartsWith(name + "{", StringComparison.Ordinal) && labels.All(l => line.Contains(l, StringComparison.Ordinal))),
            Is.True, $"{name} with {string.Join(", ", labels)} in\n{exposition}");

    private async Task<string> CreateKeyAsync(string networkId, string name, params string[] scopes)
    {
        var request = new CreateApiKeyRequest { NetworkId = networkId, Name = name };
        request.Scopes.Add(scopes);
        return (await new IdentityService.IdentityServiceClient(_host.Channel(_admin)).CreateApiKeyAsync(request)).Secret;
    }

    private async Task<int> StatusAsync(string path, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await _http.SendAsync(request);
        return (int)response.StatusCode;
    }

    private async Task<(int Status, JsonNode Body, HttpResponseHeaders Headers)> SendAsync(HttpMethod method, string path, string? key, JsonObject? body = null, Dictionary<string, string>? headers = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }

        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        foreach (var (name, value) in headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"), text);
        return ((int)response.StatusCode, JsonNode.Parse(text)!, response.Headers);
    }

    private async Task<string> ExpectErrorAsync(HttpMethod method, string path, string? key, JsonObject? body, int status, string code, Dictionary<string, string>? headers = null)
    {
        var (actual, json, _) = await SendAsync(method, path, key, body, headers);
        var error = json["error"];
        Assert.That(error, Is.Not.Null, json.ToJsonString());
        Assert.That((actual, error!["code"]!.GetValue<string>()), Is.EqualTo((status, code)), json.ToJsonString());
        Assert.That(error["message"]!.GetValue<string>(), Is.Not.Empty);
        Assert.That(error["type"]!.GetValue<string>(), Is.Not.Empty);
        return error["message"]!.GetValue<string>();
    }

    private async Task<HttpResponseMessage> StreamAsync(JsonObject body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _key);
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/event-stream"));
        return response;
    }

    private static async Task<List<JsonNode>> ReadEventsAsync(HttpResponseMessage response)
    {
        var events = new List<JsonNode>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var done = false;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal))
            {
                continue;
            }

            if (line == "data: [DONE]")
            {
                done = true;
                break;
            }

            events.Add(JsonNode.Parse(line[6..])!);
        }

        Assert.That(done, Is.True, "the stream ends with data: [DONE]");
        return events;
    }

    private static string Delta(JsonNode chunk) =>
        chunk["choices"]!.AsArray() is { Count: > 0 } choices && choices[0]!["delta"]!["content"] is { } content ? content.GetValue<string>() : "";

    private static async Task<byte[]> ReadSharedAsync(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var memory = new MemoryStream();
        await stream.CopyToAsync(memory);
        return memory.ToArray();
    }

    /// <summary>A list the exporter appends to from the server's threads while the test reads it.</summary>
    private sealed class LockedList<T> : ICollection<T>
    {
        private readonly List<T> _items = [];

        public int Count
        {
            get
            {
                lock (_items)
                {
                    return _items.Count;
                }
            }
        }

        public bool IsReadOnly => false;

        public void Add(T item)
        {
            lock (_items)
            {
                _items.Add(item);
            }
        }

        public void Clear()
        {
            lock (_items)
            {
                _items.Clear();
            }
        }

        public List<T> Snapshot()
        {
            lock (_items)
            {
                return [.. _items];
            }
        }

        public bool Contains(T item) => Snapshot().Contains(item);

        public void CopyTo(T[] array, int arrayIndex) => Snapshot().CopyTo(array, arrayIndex);

        public bool Remove(T item)
        {
            lock (_items)
            {
                return _items.Remove(item);
            }
        }

        public IEnumerator<T> GetEnumerator() => Snapshot().GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}

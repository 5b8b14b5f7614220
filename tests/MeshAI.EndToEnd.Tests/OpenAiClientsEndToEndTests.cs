#pragma warning disable CA1861 // expected values read best inline
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Testing;
using NUnit.Framework;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// The OpenAI-compatible gateway used by clients nobody here wrote — the official <c>OpenAI</c> NuGet package and the
/// official <c>openai</c> npm package — against the real server process and a real agent process (real all-MiniLM-L6-v2
/// embeddings; chat from an OpenAI-compatible upstream that holds its answer after the first token until released, so
/// "tokens arrive before the end" needs no timing). Then a real Prometheus scrapes the server's two metrics endpoints
/// and its HTTP API is asked for the jobs' series.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
[NonParallelizable]
public sealed class OpenAiClientsEndToEndTests
{
    private const string AdminEmail = "openai-clients@example.com";
    private const string ChatModel = "upstream-chat";
    private static readonly string[] Tokens = ["Hello", " from", " the", " mesh", "."];

    private OpenAiUpstream _upstream = null!;
    private LocalMesh _mesh = null!;
    private string _cliConfig = null!;
    private string _networkId = null!;
    private string _apiKey = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;
    private string _session = null!;

    /// <summary>Upstream, server, sign-in through the CLI, a network, one agent, an API key made with `meshnet api-keys create`.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _upstream = OpenAiUpstream.Start(Tokens, TimeSpan.FromMilliseconds(5), holdAfter: 1);
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions());
        _cliConfig = Path.Combine(_mesh.DataDirectory, "cli.json");
        _session = await _mesh.SignInWithCliAsync(_cliConfig, AdminEmail);
        _channel = _mesh.Channel(_session);
        _networkId = (await CliJsonAsync("net", "create", "OpenAI clients")).GetProperty("networkId").GetString()!;
        var link = (await CliJsonAsync("device", "join", "--network", _networkId)).GetProperty("joinLink").GetString()!;
        await _mesh.StartAgentAsync(link, "openai-agent", ["--chat-openai-url", _upstream.Url, "--chat-openai-model", ChatModel], null);
        var created = await CliJsonAsync("api-keys", "create", "tools", "--network", _networkId, "--scope", "jobs", "--scope", "ledger:read");
        _apiKey = created.GetProperty("secret").GetString()!;
        Assert.That(_apiKey, Does.StartWith("mak_"));
    }

    /// <summary>Stops everything.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        _upstream?.Release();
        _channel?.Dispose();
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }

        _upstream?.Dispose();
    }

    [Test]
    public async Task The_OpenAI_NuGet_client_embeds_and_streams_chat_and_the_ledger_shows_both_jobs()
    {
        using var http = PinnedHttpClient();
        var options = new OpenAIClientOptions
        {
            Endpoint = new Uri(_mesh.Url.TrimEnd('/') + "/v1"),
            Transport = new HttpClientPipelineTransport(http),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        };
        var credential = new ApiKeyCredential(_apiKey);

        var embeddings = new EmbeddingClient(ProvisionedModels.MiniLm, credential, options);
        var embedded = await embeddings.GenerateEmbeddingsAsync(["a cat sat on the mat", "a kitten rested on the rug", "quarterly revenue grew 4 %"]);
        var vectors = embedded.Value.Select(e => e.ToFloats().ToArray()).ToList();
        Assert.That(vectors, Has.Count.EqualTo(3));
        Assert.That(vectors[0], Has.Length.EqualTo(384));
        Assert.That(Cosine(vectors[0], vectors[1]), Is.GreaterThan(Cosine(vectors[0], vectors[2]) + 0.3), "the real model: related sentences are closer than unrelated ones");
        Assert.That(embedded.Value.Usage.InputTokenCount, Is.GreaterThan(0));
        var embeddingsJob = Header(embedded.GetRawResponse(), "x-meshai-job-id");

        var chat = new ChatClient(ChatModel, credential, options);
        var text = "";
        string? beforeRelease = null;
        string? completionId = null;
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("say hello to the mesh")], new ChatCompletionOptions { MaxOutputTokenCount = 64 }))
        {
            completionId ??= update.CompletionId;
            finish ??= update.FinishReason;
            foreach (var part in update.ContentUpdate)
            {
                text += part.Text;
            }

            if (beforeRelease is null && text.Length > 0)
            {
                // The upstream has produced exactly one token and waits: everything after it does not exist yet.
                beforeRelease = text;
                _upstream.Release();
            }
        }

        Assert.That(beforeRelease, Is.EqualTo(Tokens[0]), "the first token reached the client while the answer was still being written");
        Assert.That(text, Is.EqualTo(string.Concat(Tokens)));
        Assert.That(finish, Is.EqualTo(ChatFinishReason.Stop));
        Assert.That(completionId, Does.StartWith("chatcmpl-job_"));
        var chatJob = completionId!["chatcmpl-".Length..];

        await AssertBilledAsync(embeddingsJob, chatJob);

        var unknown = await Assert.ThrowsAsync<ClientResultException>(() => new EmbeddingClient("gpt-4o", credential, options).GenerateEmbeddingAsync("x"));
        Assert.That(unknown!.Status, Is.EqualTo(404));
        Assert.That(unknown.Message, Does.Contain("model_not_found"));
        var denied = await Assert.ThrowsAsync<ClientResultException>(() => new ChatClient(ChatModel, new ApiKeyCredential("mak_not-a-real-key"), options).CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.That(denied!.Status, Is.EqualTo(401));
    }

    [Test]
    public async Task The_openai_npm_client_embeds_and_streams_chat_and_the_ledger_shows_both_jobs()
    {
        await using var node = await ProcessRunner.RunAsync(new ProcessRunnerOptions
        {
            FileName = "node",
            Arguments = [RepoPaths.Combine("tests", "openai-clients", "openai-npm-client.mjs")],
            Name = "openai-npm",
            Environment = new Dictionary<string, string?>
            {
                ["MESHAI_OPENAI_BASE_URL"] = _mesh.Url.TrimEnd('/') + "/v1",
                ["MESHAI_OPENAI_API_KEY"] = _apiKey,
                ["MESHAI_UPSTREAM_RELEASE_URL"] = _upstream.Url + "/release",
                ["MESHAI_EMBEDDINGS_MODEL"] = ProvisionedModels.MiniLm,
                ["MESHAI_CHAT_MODEL"] = ChatModel,
                ["NODE_EXTRA_CA_CERTS"] = Path.Combine(_mesh.DataDirectory, "tls", "server.pem"),
            },
        }, TimeSpan.FromMinutes(3));
        Assert.That(node.ExitCode, Is.Zero, node.Output);
        TestContext.Out.WriteLine(node.StandardOutputText);
        var result = JsonNode.Parse(node.StandardOutputText.Split('\n').Last(l => l.StartsWith('{')))!;

        var embeddings = result["embeddings"]!;
        Assert.That((embeddings["count"]!.GetValue<int>(), embeddings["dimensions"]!.GetValue<int>(), embeddings["model"]!.GetValue<string>()), Is.EqualTo((3, 384, ProvisionedModels.MiniLm)));
        Assert.That(embeddings["related"]!.GetValue<double>(), Is.GreaterThan(embeddings["unrelated"]!.GetValue<double>() + 0.3), "base64 vectors decoded by the client are the real model's");
        Assert.That(embeddings["promptTokens"]!.GetValue<int>(), Is.GreaterThan(0));

        var chat = result["chat"]!;
        Assert.That(chat["tokensBeforeRelease"]!.GetValue<string>(), Is.EqualTo(Tokens[0]), "the first token reached the npm client while the upstream still held the rest");
        Assert.That(chat["text"]!.GetValue<string>(), Is.EqualTo(string.Concat(Tokens)));
        Assert.That(chat["finishReason"]!.GetValue<string>(), Is.EqualTo("stop"));
        Assert.That(chat["id"]!.GetValue<string>(), Is.EqualTo("chatcmpl-" + chat["jobId"]!.GetValue<string>()));

        var errors = result["errors"]!;
        Assert.That((errors["unknownModel"]!["class"]!.GetValue<string>(), errors["unknownModel"]!["status"]!.GetValue<int>(), errors["unknownModel"]!["code"]!.GetValue<string>()),
            Is.EqualTo(("NotFoundError", 404, "model_not_found")), errors.ToJsonString());
        Assert.That((errors["badKey"]!["class"]!.GetValue<string>(), errors["badKey"]!["status"]!.GetValue<int>(), errors["badKey"]!["code"]!.GetValue<string>()),
            Is.EqualTo(("AuthenticationError", 401, "invalid_api_key")), errors.ToJsonString());
        Assert.That((errors["noMessages"]!["class"]!.GetValue<string>(), errors["noMessages"]!["status"]!.GetValue<int>(), errors["noMessages"]!["param"]!.GetValue<string>()),
            Is.EqualTo(("BadRequestError", 400, "messages")), errors.ToJsonString());
        Assert.That(result["models"]!.AsArray().Select(m => m!.GetValue<string>()), Does.Contain(ProvisionedModels.MiniLm).And.Contain(ChatModel));

        await AssertBilledAsync(embeddings["jobId"]!.GetValue<string>(), chat["jobId"]!.GetValue<string>());
    }

    [Test]
    public async Task A_real_Prometheus_scrapes_the_server_and_the_networks_own_endpoint()
    {
        Assert.That(File.Exists(PrometheusBinary), Is.True, $"{PrometheusBinary} (Debian package prometheus, in test.sh's APT_PACKAGES)");
        using var http = PinnedHttpClient();
        await RunEmbeddingsAsync(http, "counted by prometheus");

        var scrapeKey = (await CliJsonAsync("api-keys", "create", "prometheus", "--network", _networkId, "--scope", "metrics:read")).GetProperty("secret").GetString()!;
        var directory = Directory.CreateTempSubdirectory("meshai-prometheus-").FullName;
        try
        {
            var target = new Uri(_mesh.Url).Authority;
            var ca = Path.Combine(_mesh.DataDirectory, "tls", "server.pem");
            var tokenFile = Path.Combine(directory, "scrape-token");
            await File.WriteAllTextAsync(tokenFile, scrapeKey);
            var config = Path.Combine(directory, "prometheus.yml");
            await File.WriteAllTextAsync(config, $"""
                global:
                  scrape_interval: 1s
                scrape_configs:
                  - job_name: meshai-server
                    scheme: https
                    metrics_path: /metrics
                    tls_config: {"{"} ca_file: '{ca}' {"}"}
                    static_configs: [{"{"} targets: ['{target}'] {"}"}]
                  - job_name: meshai-network
                    scheme: https
                    metrics_path: /metrics/networks/{_networkId}
                    authorization: {"{"} type: Bearer, credentials_file: '{tokenFile}' {"}"}
                    tls_config: {"{"} ca_file: '{ca}' {"}"}
                    static_configs: [{"{"} targets: ['{target}'] {"}"}]
                """);
            var port = FreePort.Next();
            await using var prometheus = ProcessRunner.Start(new ProcessRunnerOptions
            {
                FileName = PrometheusBinary,
                Arguments = ["--config.file=" + config, "--storage.tsdb.path=" + Path.Combine(directory, "data"), $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                Name = "prometheus",
            });
            using var api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };

            // Both targets up, then the series the issue names, each from the endpoint that may show it.
            var up = await QueryUntilAsync(api, prometheus, "up == 1", r => r.Count == 2);
            Assert.That(up.Select(s => s!["metric"]!["job"]!.GetValue<string>()), Is.EquivalentTo(new[] { "meshai-server", "meshai-network" }));

            var latency = await QueryUntilAsync(api, prometheus, $"job_latency_ms_count{{job=\"meshai-network\",network_id=\"{_networkId}\",workload=\"embeddings\",outcome=\"completed\"}}", r => r.Count == 1 && Value(r[0]) >= 1);
            TestContext.Out.WriteLine($"MESHAI_PROMETHEUS embeddings jobs completed = {Value(latency[0])}");
            var serverWide = await QueryUntilAsync(api, prometheus, "sum(job_latency_ms_count{job=\"meshai-server\"})", r => r.Count == 1 && Value(r[0]) >= 1);
            Assert.That(Value(serverWide[0]), Is.GreaterThanOrEqualTo(Value(latency[0])));
            var p50 = await QueryUntilAsync(api, prometheus, $"histogram_quantile(0.5, sum by (le) (job_latency_ms_bucket{{job=\"meshai-network\",network_id=\"{_networkId}\"}}))", r => r.Count == 1);
            TestContext.Out.WriteLine($"MESHAI_PROMETHEUS job_latency_ms p50 ≈ {Value(p50[0]):F0} ms");

            foreach (var series in new[] { "job_success_rate", "relay_bandwidth_bytes", "device_online_rate", "credits_minted_per_day", "credits_burned_per_day" })
            {
                var found = await QueryUntilAsync(api, prometheus, $"{series}{{job=\"meshai-network\",network_id=\"{_networkId}\"}}", r => r.Count >= 1);
                TestContext.Out.WriteLine($"MESHAI_PROMETHEUS {series} = {string.Join(", ", found.Select(Value))}");
            }

            var online = await QueryUntilAsync(api, prometheus, $"device_online_rate{{job=\"meshai-network\",network_id=\"{_networkId}\"}}", r => r.Count == 1);
            Assert.That(Value(online[0]), Is.EqualTo(1), "the one agent is online");
            var burned = await QueryUntilAsync(api, prometheus, $"credits_burned_per_day{{job=\"meshai-network\",network_id=\"{_networkId}\"}}", r => r.Count == 1 && Value(r[0]) > 0);
            Assert.That(Value(burned[0]), Is.GreaterThan(0), "the jobs burned credits today");
            await QueryUntilAsync(api, prometheus, "grpc_server_handled_total{job=\"meshai-server\"}", r => r.Count >= 1);
            await QueryUntilAsync(api, prometheus, "process_cpu_seconds_total{job=\"meshai-server\"}", r => r.Count == 1);
            var leaked = await QueryAsync(api, "count({job=\"meshai-server\",network_id!=\"\"})");
            Assert.That(leaked, Is.Empty, "the open endpoint carries no network-labelled series");
        }
        finally
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
                // Prometheus may still be closing its files.
            }
        }
    }

    [Test]
    public async Task The_gateway_returns_exactly_the_vectors_of_the_grpc_job_plane_and_both_latencies_are_reported()
    {
        // The same texts through both doors, alternating, after one warm-up each; the medians go to docs/gateway.md.
        const int Rounds = 15;
        string[] texts = ["the gateway is a thin door onto the job plane", "measured, not guessed"];
        using var http = PinnedHttpClient();
        using var client = new MeshAI.Client.MeshClient(_mesh.Url, _mesh.Fingerprint, _session);
        var viaGrpc = new List<double>();
        var viaGateway = new List<double>();
        float[]? grpcVector = null;
        float[]? gatewayVector = null;
        for (var i = 0; i <= Rounds; i++)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var output = await client.RunEmbeddingsAsync(_networkId, texts, model: ProvisionedModels.MiniLm);
            var grpcMs = watch.Elapsed.TotalMilliseconds;
            grpcVector = [.. output.Embeddings[0].Values];

            watch.Restart();
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = JsonContent.Create(new { model = ProvisionedModels.MiniLm, input = texts }) };
            request.Headers.Authorization = new("Bearer", _apiKey);
            using var response = await http.SendAsync(request);
            var body = await response.Content.ReadFromJsonAsync<JsonNode>();
            var gatewayMs = watch.Elapsed.TotalMilliseconds;
            Assert.That((int)response.StatusCode, Is.EqualTo(200), body?.ToJsonString());
            gatewayVector = [.. body!["data"]![0]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>())];
            if (i > 0)
            {
                viaGrpc.Add(grpcMs);
                viaGateway.Add(gatewayMs);
            }
        }

        Assert.That(gatewayVector, Is.EqualTo(grpcVector), "JSON floats round-trip the job plane's vectors exactly");
        static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
        TestContext.Out.WriteLine(FormattableString.Invariant(
            $"MESHAI_GATEWAY_LATENCY embeddings x2, {Rounds} rounds: grpc SubmitJob+WatchJob median {Median(viaGrpc):F1} ms, gateway /v1/embeddings median {Median(viaGateway):F1} ms, ratio {Median(viaGateway) / Median(viaGrpc):F2}"));
    }

    private const string PrometheusBinary = "/usr/bin/prometheus";

    private static double Value(JsonNode? sample) => double.Parse(sample!["value"]![1]!.GetValue<string>(), CultureInfo.InvariantCulture);

    private static async Task<JsonArray> QueryAsync(HttpClient api, string query)
    {
        var response = await api.GetFromJsonAsync<JsonNode>("/api/v1/query?query=" + Uri.EscapeDataString(query));
        Assert.That(response!["status"]!.GetValue<string>(), Is.EqualTo("success"), response.ToJsonString());
        return response["data"]!["result"]!.AsArray();
    }

    private static async Task<JsonArray> QueryUntilAsync(HttpClient api, ProcessRunner prometheus, string query, Func<JsonArray, bool> done)
    {
        var deadline = DateTimeOffset.UtcNow.AddSeconds(60);
        JsonArray result = [];
        while (DateTimeOffset.UtcNow < deadline)
        {
            Assert.That(prometheus.HasExited, Is.False, prometheus.Output);
            try
            {
                result = await QueryAsync(api, query);
                if (done(result))
                {
                    return result;
                }
            }
            catch (HttpRequestException)
            {
                // Prometheus is still starting.
            }

            await Task.Delay(500);
        }

        var targets = await api.GetStringAsync("/api/v1/targets");
        Assert.Fail($"{query} never matched; last result {result.ToJsonString()}\ntargets: {targets}\n{prometheus.Output}");
        return result;
    }

    private async Task RunEmbeddingsAsync(HttpClient http, string input)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = JsonContent.Create(new { model = ProvisionedModels.MiniLm, input }) };
        request.Headers.Authorization = new("Bearer", _apiKey);
        using var response = await http.SendAsync(request);
        Assert.That((int)response.StatusCode, Is.EqualTo(200), await response.Content.ReadAsStringAsync());
    }

    private async Task AssertBilledAsync(params string[] jobIds)
    {
        var jobs = new JobService.JobServiceClient(_channel);
        foreach (var jobId in jobIds)
        {
            var job = await MeshJobs.WaitForJobAsync(jobs, _networkId, jobId, j => j.State == JobState.Completed);
            var ledger = await MeshJobs.LedgerEventsAsync(_channel, _networkId, jobId);
            Assert.That(ledger.Select(e => e.EventType), Is.SupersetOf(new[] { LedgerEventType.JobCompleted, LedgerEventType.CreditsBurned }), jobId);
            Assert.That(ledger.Single(e => e.EventType == LedgerEventType.CreditsBurned).AmountMicro, Is.EqualTo(-job.CostMicro), jobId);
        }
    }

    private HttpClient PinnedHttpClient()
    {
        var handler = new SocketsHttpHandler
        {
            SslOptions = new System.Net.Security.SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && Convert.ToHexStringLower(SHA256.HashData(cert.GetRawCertData())) == _mesh.Fingerprint,
            },
        };
        return new HttpClient(handler) { BaseAddress = new Uri(_mesh.Url), Timeout = TimeSpan.FromMinutes(2) };
    }

    private static string Header(PipelineResponse response, string name) =>
        response.Headers.TryGetValue(name, out var value) && value is { Length: > 0 } ? value : throw new AssertionException($"no {name} header");

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += a[i] * b[i];
            na += a[i] * a[i];
            nb += b[i] * b[i];
        }

        return dot / Math.Sqrt(na * nb);
    }

    private async Task<JsonElement> CliJsonAsync(params string[] args)
    {
        var result = await LocalMesh.RunCliAsync(_cliConfig, [.. args, "--json"]);
        Assert.That(result.ExitCode, Is.Zero, $"meshnet {string.Join(' ', args)}\n{result.StandardError}\n{result.StandardOutput}");
        return JsonDocument.Parse(result.StandardOutput).RootElement;
    }
}

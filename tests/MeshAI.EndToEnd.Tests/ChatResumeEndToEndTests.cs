using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Chat that survives a dead device (issue 14, docs/chat-resume.md): two real agents serve small_chat; the one
/// streaming is killed after the first tokens; the retry goes to the other with the tokens already delivered, and the
/// watcher's stream continues — every index once, in order — while each device is billed for the part it streamed.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class ChatResumeEndToEndTests
{
    private const string AdminEmail = "chat-resume@example.com";

    /// <summary>The whole answer the OpenAI-compatible upstream gives, one word per streamed chunk.</summary>
    private static readonly string[] Answer = [.. Enumerable.Range(0, 40).Select(i => (i == 0 ? "" : " ") + "word" + i.ToString("00", CultureInfo.InvariantCulture))];

    private LocalMesh _mesh = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;

    /// <summary>Server and a signed-in admin.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 10 });
        var token = await _mesh.SignInWithCliAsync(Path.Combine(_mesh.DataDirectory, "cli.json"), AdminEmail);
        _channel = _mesh.Channel(token);
    }

    /// <summary>Stops every process.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        _channel?.Dispose();
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task Killing_the_agent_streaming_from_an_openai_upstream_continues_the_stream_on_another_device_billed_per_device()
    {
        using var upstream = OpenAiUpstream.Start(Answer, TimeSpan.FromMilliseconds(150));
        var (networkId, agents) = await MeshJobs.NetworkWithAgentsAsync(_mesh, _channel, "resume-openai", 2, ["--chat-openai-url", upstream.Url, "--chat-openai-model", "resume-upstream"]);
        var run = await RunAndKillAsync(networkId, agents, maxTokens: 64);

        Assert.That(run.Output.Text, Is.EqualTo(string.Concat(Answer)), "the answer is the upstream's, continued exactly where the dead device stopped");
        Assert.That(run.Output.CompletionTokens, Is.EqualTo(Answer.Length));
        Assert.That(run.Output.FinishReason, Is.EqualTo("stop"));
        Assert.That(upstream.Prefixes, Has.Count.EqualTo(2), "one request per device");
        Assert.That(upstream.Prefixes[0], Is.Empty);
        Assert.That(upstream.Prefixes[1], Is.EqualTo(string.Concat(run.Tokens.Take(run.ResumedAt))), "the second device was given exactly what the watcher had received");
    }

    [Test]
    public async Task Killing_the_agent_streaming_from_llama_continues_the_stream_on_another_device_billed_per_device()
    {
        var modelDir = await MeshJobs.GenerateTinyChatModelAsync(Path.Combine(_mesh.DataDirectory, "tiny-chat-resume"));
        var (networkId, agents) = await MeshJobs.NetworkWithAgentsAsync(_mesh, _channel, "resume-llama", 2, ["--chat-model-dir", modelDir]);
        const int maxTokens = 1500;
        var run = await RunAndKillAsync(networkId, agents, maxTokens);

        Assert.That(run.Output.FinishReason, Is.EqualTo("length").Or.EqualTo("stop"));
        if (run.Output.FinishReason == "length")
        {
            Assert.That(run.Output.CompletionTokens, Is.EqualTo(maxTokens), "the resumed tokens count against max_tokens: no more than asked for in all");
        }

        Assert.That(agents.Single(a => a.DeviceId != run.Victim.DeviceId).Process.Output, Does.Contain("MESHAI_WORKER_STARTED class=small_chat"), "the second device ran llama.cpp in its worker");
    }

    /// <summary>
    /// Submits a chat (auto routing), kills the serving agent once the watcher has three tokens, reads the stream to the
    /// result and checks what every resumed chat must hold: contiguous indices once each, the text equals the result, two
    /// attempts on two devices, one execution record per device and a job cost that is their sum.
    /// </summary>
    private async Task<ResumedRun> RunAndKillAsync(string networkId, IReadOnlyList<MeshAgent> agents, int maxTokens)
    {
        var jobs = new JobService.JobServiceClient(_channel);
        var envelope = new JobEnvelope
        {
            NetworkId = networkId,
            WorkloadId = WorkloadClass.SmallChat,
            RoutingMode = RoutingMode.Auto,
            DataSensitivityTag = DataSensitivityTag.Private,
            TimeoutMs = 120_000,
            InputManifest = new InputManifest
            {
                Payload = new WorkloadInput
                {
                    Chat = new ChatInput { MaxTokens = maxTokens, ContextTokens = 4096, Messages = { new ChatMessage { Role = ChatRole.User, Content = "Tell me a story" } } },
                }.ToByteString(),
            },
            PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
        };
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
        var indices = new List<int>();
        var tokens = new List<string>();
        MeshAgent? victim = null;
        ChatOutput? output = null;
        using (var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = networkId, JobId = job.JobId }))
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(150)))
        {
            await foreach (var frame in watch.ResponseStream.ReadAllAsync(cts.Token))
            {
                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Token)
                {
                    indices.Add(frame.Token.Index);
                    tokens.Add(frame.Token.Token.ToStringUtf8());
                    if (tokens.Count == 3 && victim is null)
                    {
                        var running = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = job.JobId })).Job;
                        victim = agents.Single(a => a.DeviceId == running.Attempts.Single().DeviceId);
                        victim.Process.Kill();
                    }
                }
                else if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
                {
                    output = WorkloadOutput.Parser.ParseFrom(frame.Result.Output).Chat;
                    break;
                }
                else if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && frame.Status.Job?.State is JobState.Failed or JobState.Cancelled)
                {
                    Assert.Fail($"job ended {frame.Status.Job.State}: {frame.Status.Job.ErrorMessage}");
                }
            }
        }

        Assert.That(victim, Is.Not.Null, "the stream reached three tokens before the answer was complete");
        Assert.That(output, Is.Not.Null, "the watcher got the result");
        TestContext.Out.WriteLine($"{tokens.Count} token frames; result \"{Shorten(output!.Text)}\"");
        Assert.That(indices, Is.EqualTo(Enumerable.Range(0, indices.Count)), "every token index exactly once, in order: nothing duplicated, nothing missing");
        Assert.That(string.Concat(tokens), Is.EqualTo(output.Text), "what the watcher received is the answer");

        var done = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = job.JobId })).Job;
        Assert.That(done.State, Is.EqualTo(JobState.Completed));
        Assert.That(done.Attempts.Select(a => (a.DeviceId, a.Cause)), Is.EqualTo(new[] { (victim!.DeviceId, AttemptCause.Disconnect), (done.DeviceId, AttemptCause.Succeeded) }));
        Assert.That(done.DeviceId, Is.Not.EqualTo(victim.DeviceId));
        var reason = (await jobs.ExplainJobAsync(new ExplainJobRequest { NetworkId = networkId, JobId = job.JobId })).DebugView.SelectionReason;
        var resumed = System.Text.RegularExpressions.Regex.Match(reason, @"resumes the stream after (\d+) delivered token");
        Assert.That(resumed.Success, Is.True, $"the explain view says the retry resumed: {reason}");
        var resumedAt = int.Parse(resumed.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.That(resumedAt, Is.GreaterThanOrEqualTo(3).And.LessThan(tokens.Count), $"the retry resumed mid-stream ({reason})");

        var events = await MeshJobs.LedgerEventsAsync(_channel, networkId, job.JobId);
        var burns = events.Where(e => e.EventType == LedgerEventType.CreditsBurned).ToList();
        Assert.That(burns.Select(e => (e.DeviceId, e.ChunkId)), Is.EquivalentTo(new[] { (victim.DeviceId, "attempt-1"), (done.DeviceId, "") }), "one execution record per device that streamed");
        Assert.That(-burns.Sum(e => e.AmountMicro), Is.EqualTo(done.CostMicro), "the job's cost is the sum of what each device ran: billed once");
        Assert.That(events.Select(e => e.IdempotencyKey), Is.Unique);
        Assert.That(events.Where(e => e.EventType == LedgerEventType.CreditsMinted).Select(e => e.DeviceId), Is.SubsetOf(new[] { victim.DeviceId, done.DeviceId }));
        return new ResumedRun(tokens, output, victim, resumedAt);
    }

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..80] + "…";

    private sealed record ResumedRun(IReadOnlyList<string> Tokens, ChatOutput Output, MeshAgent Victim, int ResumedAt);
}

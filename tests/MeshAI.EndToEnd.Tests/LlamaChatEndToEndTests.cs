using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// small_chat through the real LLamaSharp runtime: a real agent started with <c>--chat-model-dir</c> on the generated
/// tiny llama GGUF (random weights) runs llama.cpp in its sandbox worker and streams tokens agent → relay → WatchJob.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class LlamaChatEndToEndTests
{
    private const string AdminEmail = "llama-chat@example.com";

    private LocalMesh _mesh = null!;
    private string _cliConfig = null!;
    private string _networkId = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;
    private MeshAgent _agent = null!;

    /// <summary>Server, sign-in, a network, the tiny GGUF and one agent that serves chat from it.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 10 });
        _cliConfig = Path.Combine(_mesh.DataDirectory, "cli.json");
        var token = await _mesh.SignInWithCliAsync(_cliConfig, AdminEmail);
        _channel = _mesh.Channel(token);
        _networkId = (await CliJsonAsync("net", "create", "Llama Mesh")).GetProperty("networkId").GetString()!;

        var modelDir = await MeshJobs.GenerateTinyChatModelAsync(Path.Combine(_mesh.DataDirectory, "tiny-chat"));

        var link = (await CliJsonAsync("device", "join", "--network", _networkId)).GetProperty("joinLink").GetString()!;
        _agent = await _mesh.StartAgentAsync(link, "llama", ["--chat-model-dir", modelDir], null);
    }

    /// <summary>Stops everything.</summary>
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
    public async Task Llama_chat_tokens_stream_to_watch_job_before_the_result()
    {
        var jobs = new JobService.JobServiceClient(_channel);
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(maxTokens: 24) })).Job;
        var tokens = new List<string>();
        var tokensBeforeResult = -1;
        ChatOutput? output = null;
        using var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = _networkId, JobId = job.JobId });
        await foreach (var frame in watch.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Token)
            {
                tokens.Add(frame.Token.Token.ToStringUtf8());
            }
            else if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                tokensBeforeResult = tokens.Count;
                output = WorkloadOutput.Parser.ParseFrom(frame.Result.Output).Chat;
                break;
            }
            else if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && frame.Status.Job?.State is JobState.Failed or JobState.Cancelled)
            {
                Assert.Fail($"job ended {frame.Status.Job.State}: {frame.Status.Job.ErrorMessage}\n{_agent.Process.Output}");
            }
        }

        TestContext.Out.WriteLine($"{tokens.Count} token frames before the result: \"{string.Concat(tokens)}\"");
        Assert.That(output, Is.Not.Null);
        Assert.That(output!.CompletionTokens, Is.EqualTo(24), "runs to max_tokens");
        Assert.That(output.FinishReason, Is.EqualTo("length"));
        Assert.That(tokensBeforeResult, Is.GreaterThan(1).And.LessThanOrEqualTo(24), "token frames arrive before the result frame");
        Assert.That(string.Concat(tokens), Is.EqualTo(output.Text));
        Assert.That(_agent.Process.Output, Does.Contain("MESHAI_WORKER_STARTED class=small_chat"), "chat ran in the sandbox worker");
    }

    [Test]
    public async Task Cancelling_a_llama_chat_mid_stream_stops_it()
    {
        var jobs = new JobService.JobServiceClient(_channel);
        const int maxTokens = 3500;
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(maxTokens) })).Job;
        var tokens = 0;
        var resultSeen = false;
        JobState? final = null;
        using var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = _networkId, JobId = job.JobId });
        await foreach (var frame in watch.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Token && ++tokens == 3)
            {
                await jobs.CancelJobAsync(new CancelJobRequest { NetworkId = _networkId, JobId = job.JobId });
            }
            else if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                resultSeen = true;
                break;
            }
            else if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && frame.Status.Job?.State is JobState.Failed or JobState.Cancelled or JobState.Completed)
            {
                final = frame.Status.Job.State;
                break;
            }
        }

        var after = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = _networkId, JobId = job.JobId })).Job;
        TestContext.Out.WriteLine($"{tokens} token frames, then {after.State}");
        Assert.That(resultSeen, Is.False, "a cancelled chat delivers no result");
        Assert.That(final ?? after.State, Is.EqualTo(JobState.Cancelled));
        Assert.That(tokens, Is.LessThan(maxTokens));

        var next = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(maxTokens: 4) })).Job;
        using var again = jobs.WatchJob(new WatchJobRequest { NetworkId = _networkId, JobId = next.JobId });
        ChatOutput? output = null;
        await foreach (var frame in again.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                output = WorkloadOutput.Parser.ParseFrom(frame.Result.Output).Chat;
                break;
            }
        }

        Assert.That(output?.CompletionTokens, Is.EqualTo(4), "the agent serves the next chat with a fresh worker");
    }

    private JobEnvelope Envelope(int maxTokens) => new()
    {
        NetworkId = _networkId,
        WorkloadId = WorkloadClass.SmallChat,
        RoutingMode = RoutingMode.PinnedDevice,
        ResourceRequest = new ResourceRequest { RequiresPinnedDeviceIdsOptional = { _agent.DeviceId } },
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

    private async Task<JsonElement> CliJsonAsync(params string[] args)
    {
        var result = await LocalMesh.RunCliAsync(_cliConfig, [.. args, "--json"]);
        Assert.That(result.ExitCode, Is.Zero, $"meshnet {string.Join(' ', args)}\n{result.StandardError}\n{result.StandardOutput}");
        return JsonDocument.Parse(result.StandardOutput).RootElement;
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Real workloads through real processes (server, agents with sandbox workers, CLI): OCR with Tesseract, streaming
/// chat from an OpenAI-compatible server, pocketsphinx transcription, a killed worker, a tampered model, and a
/// mobile-profile device that leaves its charging window mid-job.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed partial class WorkloadsEndToEndTests
{
    private const string AdminEmail = "workloads@example.com";
    private static readonly string[] Sentences =
    [
        "i would like a cup of coffee",
        "the weather is nice today",
        "please open the door",
    ];

    private LocalMesh _mesh = null!;
    private string _cliConfig = null!;
    private string _networkId = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;
    private MeshAgent _desktop = null!;
    private MeshAgent _phone = null!;
    private string _phoneProfile = null!;
    private OpenAiUpstream _chatServer = null!;

    /// <summary>Server, sign-in, network, a desktop agent (all workloads, chat via the fake OpenAI server) and a phone.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _chatServer = OpenAiUpstream.Start(["Hello", ",", " this", " is", " a", " streamed", " answer", " from", " the", " mesh", "."], TimeSpan.FromMilliseconds(200));
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 10 });
        _cliConfig = Path.Combine(_mesh.DataDirectory, "cli.json");
        var token = await _mesh.SignInWithCliAsync(_cliConfig, AdminEmail);
        _channel = _mesh.Channel(token);
        _networkId = (await CliJsonAsync("net", "create", "Workloads Mesh")).GetProperty("networkId").GetString()!;
        _desktop = await _mesh.StartAgentAsync(await JoinLinkAsync(), "desktop", ["--chat-openai-url", _chatServer.Url, "--chat-openai-model", "fake-sse"], null);
        _phoneProfile = Path.Combine(_mesh.DataDirectory, "phone.json");
        WriteProfile(charging: true, wifi: true);
        _phone = await _mesh.StartAgentAsync(await JoinLinkAsync(), "phone", ["--mobile-profile", _phoneProfile], null);
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

        _chatServer?.Dispose();
    }

    [Test]
    public async Task Ocr_of_an_image_rendered_from_a_known_sentence_reads_it_back()
    {
        const string sentence = "The quick brown fox jumps over the lazy dog near the river bank.";
        var image = await File.ReadAllBytesAsync(RenderText(sentence));
        var input = new WorkloadInput { Ocr = new OcrInput { ImageBlob = "image", Language = "eng", Deskew = true, Denoise = false } };
        var envelope = Envelope(WorkloadClass.OcrPreprocess, input, _desktop.DeviceId);
        envelope.InputManifest.Blobs.Add(new Blob { Name = "image", ContentType = "image/tiff", InlineData = ByteString.CopyFrom(image), SizeBytes = image.Length });
        var run = await RunToEndAsync(new JobService.JobServiceClient(_channel), envelope);
        Assert.That(run.Job.State, Is.EqualTo(JobState.Completed), run.Job.ErrorMessage);
        var ocr = run.Output!.Ocr;
        var text = ocr.Text;
        var cer = MeshJobs.ErrorRate(Normalize(sentence).Select(c => c.ToString()).ToArray(), Normalize(text).Select(c => c.ToString()).ToArray());
        TestContext.Out.WriteLine($"OCR: \"{text}\" — character error rate {cer:P1} (tesseract 5 eng, text2image DejaVu Sans 12 pt)");
        TestContext.Out.WriteLine($"{ocr.Words.Count} words, mean confidence {ocr.MeanConfidence:F2}");
        Assert.That(ocr.Words, Has.Count.GreaterThanOrEqualTo(10));
        Assert.That(cer, Is.LessThan(0.1));
    }

    [Test]
    public async Task Chat_tokens_arrive_one_by_one_before_the_result()
    {
        var jobs = new JobService.JobServiceClient(_channel);
        var input = new WorkloadInput { Chat = new ChatInput { MaxTokens = 64, Messages = { new ChatMessage { Role = ChatRole.User, Content = "Say hello" } } } };
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(WorkloadClass.SmallChat, input, _desktop.DeviceId) })).Job;
        var clock = Stopwatch.StartNew();
        var tokens = new List<(string Text, TimeSpan At)>();
        TimeSpan? resultAt = null;
        ChatOutput? output = null;
        using var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = _networkId, JobId = job.JobId });
        await foreach (var frame in watch.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Token)
            {
                tokens.Add((frame.Token.Token.ToStringUtf8(), clock.Elapsed));
            }
            else if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                resultAt = clock.Elapsed;
                output = WorkloadOutput.Parser.ParseFrom(frame.Result.Output).Chat;
                break;
            }
        }

        TestContext.Out.WriteLine($"{tokens.Count} token frames; first at {tokens.FirstOrDefault().At.TotalMilliseconds:F0} ms, result at {resultAt?.TotalMilliseconds:F0} ms");
        Assert.That(output, Is.Not.Null);
        Assert.That(tokens, Has.Count.EqualTo(11));
        Assert.That(string.Concat(tokens.Select(t => t.Text)), Is.EqualTo("Hello, this is a streamed answer from the mesh."));
        Assert.That(output!.Text, Is.EqualTo("Hello, this is a streamed answer from the mesh."));
        Assert.That(tokens[0].At, Is.LessThan(resultAt!.Value - TimeSpan.FromSeconds(1)), "the first token came well before the last was generated");
    }

    [Test]
    public async Task Chat_through_the_cli_prints_the_streamed_text()
    {
        var cli = await LocalMesh.RunCliAsync(_cliConfig, ["run", "chat", "--prompt", "Say hello", "--routing", "pinned_device", "--device", _desktop.DeviceId]);
        Assert.That(cli.ExitCode, Is.Zero, cli.StandardError);
        Assert.That(cli.StandardOutput, Does.Contain("Hello, this is a streamed answer from the mesh."));
    }

    [Test]
    public async Task Chat_max_tokens_limit_stops_the_stream()
    {
        var jobs = new JobService.JobServiceClient(_channel);
        var input = new WorkloadInput { Chat = new ChatInput { MaxTokens = 3, Messages = { new ChatMessage { Role = ChatRole.User, Content = "Say hello" } } } };
        var run = await RunToEndAsync(jobs, Envelope(WorkloadClass.SmallChat, input, _desktop.DeviceId));
        Assert.That(run.Job.State, Is.EqualTo(JobState.Completed), run.Job.ErrorMessage);
        Assert.That(run.Output!.Chat.Text, Is.EqualTo("Hello, this"));
        Assert.That(run.Output.Chat.FinishReason, Is.EqualTo("length"));
    }

    [Test]
    public async Task Transcription_of_espeak_speech_reports_word_error_rate()
    {
        var reference = new List<string>();
        var hypothesis = new List<string>();
        foreach (var sentence in Sentences)
        {
            var wav = Path.Combine(_mesh.DataDirectory, $"speech-{reference.Count}.wav");
            await MeshJobs.RunToolAsync("espeak-ng", ["-v", "en-us+m3", "-s", "140", "-w", wav, sentence]);
            var audio = await File.ReadAllBytesAsync(wav);
            var envelope = Envelope(WorkloadClass.AudioTranscribeChunked, new WorkloadInput { Transcribe = new TranscribeInput { AudioBlob = "audio", Language = "en" } }, _desktop.DeviceId);
            envelope.InputManifest.Blobs.Add(new Blob { Name = "audio", ContentType = "audio/wav", InlineData = ByteString.CopyFrom(audio), SizeBytes = audio.Length });
            var run = await RunToEndAsync(new JobService.JobServiceClient(_channel), envelope);
            Assert.That(run.Job.State, Is.EqualTo(JobState.Completed), run.Job.ErrorMessage);
            var text = run.Output!.Transcribe.Text;
            TestContext.Out.WriteLine($"\"{sentence}\" → \"{text}\"");
            reference.AddRange(sentence.Split(' '));
            hypothesis.AddRange(text.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        }

        var wer = MeshJobs.ErrorRate([.. reference], [.. hypothesis]);
        TestContext.Out.WriteLine($"word error rate {wer:P1} over {reference.Count} words (pocketsphinx 5prealpha en-us, espeak-ng en-us+m3 speech)");
        Assert.That(hypothesis, Is.Not.Empty);
        Assert.That(wer, Is.LessThan(1.0));
    }

    [Test]
    public async Task A_worker_killed_mid_job_fails_the_attempt_with_the_cause_and_the_agent_keeps_serving()
    {
        var jobs = new JobService.JobServiceClient(_channel);
        var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("slow"), DelayMs = 30_000 } };
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(WorkloadClass.DiagnosticEcho, input, _desktop.DeviceId) })).Job;
        await _desktop.Process.WaitForLineAsync(l => l.Contains("MESHAI_WORKER_STARTED class=diagnostic_echo", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        await WaitForStateAsync(jobs, job.JobId, JobState.Running, TimeSpan.FromSeconds(30));
        var started = _desktop.Process.Lines.Last(l => l.Text.Contains("MESHAI_WORKER_STARTED class=diagnostic_echo", StringComparison.Ordinal));
        var pid = int.Parse(WorkerPid().Match(started.Text).Groups["pid"].Value, CultureInfo.InvariantCulture);
        Process.GetProcessById(pid).Kill();

        var attempt = await WaitForAttemptAsync(jobs, job.JobId, a => a.DeviceId == _desktop.DeviceId && a.Detail.Contains("died during the job", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        TestContext.Out.WriteLine($"attempt {attempt.Attempt}: {attempt.Cause} — {attempt.Detail}");
        Assert.That(attempt.Detail, Does.Contain("signal 9"));
        Assert.That(_desktop.Process.HasExited, Is.False, "the agent survives its worker");
        await jobs.CancelJobAsync(new CancelJobRequest { NetworkId = _networkId, JobId = job.JobId });

        var quick = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("after the crash") } };
        var run = await RunToEndAsync(jobs, Envelope(WorkloadClass.DiagnosticEcho, quick, _desktop.DeviceId));
        Assert.That(run.Output!.Echo.Data.ToStringUtf8(), Is.EqualTo("after the crash"), "a fresh worker serves the next job");
    }

    [Test]
    public async Task A_hash_mismatched_model_is_never_loaded_and_its_workload_is_not_advertised()
    {
        var tampered = await _mesh.StartAgentAsync(await JoinLinkAsync(), "tampered", [], state =>
        {
            // A model of the agent's own cache whose weights no longer match its manifest (the shared real models stay intact).
            var dir = Path.Combine(state, "models", "embeddings");
            MeshAI.Agent.Embeddings.TinyModelGenerator.Generate(dir);
            var model = Path.Combine(dir, "model.onnx");
            var bytes = File.ReadAllBytes(model);
            bytes[^1] ^= 0xFF;
            File.WriteAllBytes(model, bytes);
        });
        var device = await WaitForDeviceAsync(tampered.DeviceId, d => d.OnlineStatus == OnlineStatus.Online, TimeSpan.FromSeconds(30));
        Assert.That(device.Capabilities.Models.Select(m => m.Name), Does.Not.Contain(MeshAI.Agent.Embeddings.TinyModelGenerator.ModelName), "the tampered model is not advertised");
        Assert.That(device.Capabilities.Models.Select(m => m.Name), Does.Contain(ProvisionedModels.MiniLm), "the verified ones are");
        Assert.That(device.Capabilities.Workloads, Does.Contain(WorkloadClass.DiagnosticEcho));
        Assert.That(tampered.Process.Output, Does.Contain("REFUSED").And.Contain("SHA-256"));
        var jobs = new JobService.JobServiceClient(_channel);
        var asked = Envelope(WorkloadClass.Embeddings, new WorkloadInput { Embeddings = new EmbeddingsInput { Model = MeshAI.Agent.Embeddings.TinyModelGenerator.ModelName, Texts = { "x" } } }, tampered.DeviceId);
        var refused = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = asked }));
        Assert.That(refused!.StatusCode, Is.AnyOf(Grpc.Core.StatusCode.InvalidArgument, Grpc.Core.StatusCode.FailedPrecondition), "no job is ever routed to the refused model");
        tampered.Process.Kill();
    }

    [Test]
    public async Task A_phone_that_is_unplugged_mid_job_hands_the_job_back_and_declines_new_work()
    {
        var jobs = new JobService.JobServiceClient(_channel);
        WriteProfile(charging: true, wifi: true);
        var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("phone"), DelayMs = 20_000 } };
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(WorkloadClass.DiagnosticEcho, input, _phone.DeviceId) })).Job;
        await WaitForStateAsync(jobs, job.JobId, JobState.Running, TimeSpan.FromSeconds(30));
        WriteProfile(charging: false, wifi: true);
        try
        {
            var attempt = await WaitForAttemptAsync(jobs, job.JobId, a => a.DeviceId == _phone.DeviceId && a.Detail.Contains("handed back", StringComparison.Ordinal), TimeSpan.FromSeconds(20));
            TestContext.Out.WriteLine($"attempt {attempt.Attempt}: {attempt.Cause} — {attempt.Detail}");
            Assert.That(attempt.Detail, Does.Contain("not charging"));
            var now = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = _networkId, JobId = job.JobId })).Job;
            Assert.That(now.State, Is.Not.EqualTo(JobState.Completed), "an unplugged phone does not finish the job");
        }
        finally
        {
            await jobs.CancelJobAsync(new CancelJobRequest { NetworkId = _networkId, JobId = job.JobId });
            WriteProfile(charging: true, wifi: true);
        }
    }

    private void WriteProfile(bool charging, bool wifi)
    {
        var tmp = _phoneProfile + ".tmp";
        File.WriteAllText(tmp, $$"""{"battery_percent": 80, "charging": {{(charging ? "true" : "false")}}, "wifi": {{(wifi ? "true" : "false")}}, "thermal_c": 33}""");
        File.Move(tmp, _phoneProfile, overwrite: true);
    }

    private string RenderText(string sentence)
    {
        var textFile = Path.Combine(_mesh.DataDirectory, "sentence.txt");
        File.WriteAllText(textFile, sentence);
        var outBase = Path.Combine(_mesh.DataDirectory, "sentence");
        MeshJobs.RunToolAsync("text2image", [$"--text={textFile}", $"--outputbase={outBase}", "--font=DejaVu Sans", "--fonts_dir=/usr/share/fonts", "--ptsize=12", "--xsize=1400", "--ysize=300", "--margin=40"]).GetAwaiter().GetResult();
        return outBase + ".tif";
    }

    private static string Normalize(string text) => Regex.Replace(text.ToLowerInvariant(), @"\s+", " ").Trim();

    private JobEnvelope Envelope(WorkloadClass workload, WorkloadInput input, string deviceId) => new()
    {
        NetworkId = _networkId,
        WorkloadId = workload,
        RoutingMode = RoutingMode.PinnedDevice,
        ResourceRequest = new ResourceRequest { RequiresPinnedDeviceIdsOptional = { deviceId } },
        DataSensitivityTag = DataSensitivityTag.Private,
        TimeoutMs = 120_000,
        InputManifest = new InputManifest { Payload = input.ToByteString() },
        PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
    };

    private async Task<(Job Job, WorkloadOutput? Output)> RunToEndAsync(JobService.JobServiceClient jobs, JobEnvelope envelope)
    {
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
        using var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = _networkId, JobId = job.JobId });
        WorkloadOutput? output = null;
        await foreach (var frame in watch.ResponseStream.ReadAllAsync())
        {
            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Result)
            {
                output = WorkloadOutput.Parser.ParseFrom(frame.Result.Output);
                break;
            }

            if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && frame.Status.Job?.State is JobState.Failed or JobState.Cancelled)
            {
                break;
            }
        }

        return ((await jobs.GetJobAsync(new GetJobRequest { NetworkId = _networkId, JobId = job.JobId })).Job, output);
    }

    private async Task WaitForStateAsync(JobService.JobServiceClient jobs, string jobId, JobState state, TimeSpan timeout)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        Job job;
        do
        {
            job = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = _networkId, JobId = jobId })).Job;
            if (job.State == state)
            {
                return;
            }

            await Task.Delay(200);
        }
        while (DateTimeOffset.UtcNow < deadline);
        Assert.Fail($"job {jobId} is {job.State}, expected {state}: {job.ErrorMessage}");
    }

    private async Task<JobAttempt> WaitForAttemptAsync(JobService.JobServiceClient jobs, string jobId, Func<JobAttempt, bool> match, TimeSpan timeout)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        Job job;
        do
        {
            job = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = _networkId, JobId = jobId })).Job;
            if (job.Attempts.FirstOrDefault(match) is { } found)
            {
                return found;
            }

            await Task.Delay(250);
        }
        while (DateTimeOffset.UtcNow < deadline);
        Assert.Fail($"no matching attempt for {jobId} ({job.State}: {job.ErrorMessage}); attempts: " + string.Join(" | ", job.Attempts.Select(a => $"{a.Attempt} {a.DeviceId} {a.Cause} {a.Detail}")));
        throw new InvalidOperationException();
    }

    private async Task<Device> WaitForDeviceAsync(string deviceId, Func<Device, bool> condition, TimeSpan timeout)
    {
        var client = new DeviceService.DeviceServiceClient(_channel);
        var deadline = DateTimeOffset.UtcNow + timeout;
        do
        {
            var device = (await client.ListDevicesAsync(new ListDevicesRequest { NetworkId = _networkId })).Devices.FirstOrDefault(d => d.DeviceId == deviceId);
            if (device is not null && condition(device))
            {
                return device;
            }

            await Task.Delay(250);
        }
        while (DateTimeOffset.UtcNow < deadline);
        Assert.Fail($"device {deviceId} did not reach the expected state");
        throw new InvalidOperationException();
    }

    private async Task<string> JoinLinkAsync() =>
        (await CliJsonAsync("device", "join", "--network", _networkId)).GetProperty("joinLink").GetString()!;

    private async Task<JsonElement> CliJsonAsync(params string[] args)
    {
        var result = await LocalMesh.RunCliAsync(_cliConfig, [.. args, "--json"]);
        Assert.That(result.ExitCode, Is.Zero, $"meshnet {string.Join(' ', args)}\n{result.StandardError}\n{result.StandardOutput}");
        return JsonDocument.Parse(result.StandardOutput).RootElement;
    }

    [GeneratedRegex(@"pid=(?<pid>\d+)")]
    private static partial Regex WorkerPid();
}

using System.Text.Json;
using Google.Protobuf;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Issue 5's last "done when": real espeak-ng speech split into chunks, transcribed by pocketsphinx on three real agents,
/// one of them killed while its chunks run; every chunk is in the result and in the ledger exactly once.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class ChunkedTranscriptionEndToEndTests
{
    private const string AdminEmail = "chunked-transcription@example.com";
    private const int ChunkMs = 2_500;
    private static readonly string[] Sentences =
    [
        "i would like a cup of coffee",
        "the weather is nice today",
        "please open the door",
        "we are going to the market this afternoon",
        "my brother reads a book every night",
        "turn left at the next traffic light",
    ];

    private LocalMesh _mesh = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;

    /// <summary>Server and an admin session.</summary>
    [OneTimeSetUp]
    public async Task StartMeshAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 10 });
        var cliConfig = Path.Combine(_mesh.DataDirectory, "cli.json");
        var token = await _mesh.SignInWithCliAsync(cliConfig, AdminEmail);
        _channel = _mesh.Channel(token);
    }

    /// <summary>Stops every process.</summary>
    [OneTimeTearDown]
    public async Task StopMeshAsync()
    {
        _channel?.Dispose();
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task A_chunked_transcription_over_three_agents_survives_a_killed_agent_with_every_chunk_once_in_result_and_ledger()
    {
        var (networkId, agents) = await MeshJobs.NetworkWithAgentsAsync(_mesh, _channel, "transcribe");
        var wav = Path.Combine(_mesh.DataDirectory, "speech.wav");
        await MeshJobs.RunToolAsync("espeak-ng", ["-v", "en-us+m3", "-s", "140", "-w", wav, string.Join(". ", Sentences) + "."]);
        var audio = await File.ReadAllBytesAsync(wav);
        var envelope = new JobEnvelope
        {
            NetworkId = networkId,
            WorkloadId = WorkloadClass.AudioTranscribeChunked,
            RoutingMode = RoutingMode.Auto,
            DataSensitivityTag = DataSensitivityTag.Private,
            TimeoutMs = 60_000,
            InputManifest = new InputManifest
            {
                Payload = new WorkloadInput { Transcribe = new TranscribeInput { AudioBlob = "audio", Language = "en", ChunkMs = ChunkMs } }.ToByteString(),
                Blobs = { new Blob { Name = "audio", ContentType = "audio/wav", InlineData = ByteString.CopyFrom(audio), SizeBytes = audio.Length } },
            },
            PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None }, // chunking needs a plaintext payload
        };
        var jobs = new JobService.JobServiceClient(_channel);
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
        var chunkIds = Enumerable.Range(0, job.ChunkCount).Select(i => $"c{i:D4}").ToList();
        TestContext.Out.WriteLine($"{audio.Length} bytes of speech → {job.ChunkCount} chunk(s) of {ChunkMs} ms");
        Assert.That(job.ChunkCount, Is.GreaterThanOrEqualTo(4));

        // Kill an agent that holds a chunk still running (no attempt of it has ended yet).
        var running = await MeshJobs.WaitForJobAsync(jobs, networkId, job.JobId, j => j.Attempts.Select(a => a.DeviceId).Distinct().Count() == 3);
        var open = running.Attempts.First(a => a.Cause == AttemptCause.Unspecified);
        var victim = agents.Single(a => a.DeviceId == open.DeviceId);
        victim.Process.Kill();
        TestContext.Out.WriteLine($"killed {victim.DeviceId} while it ran chunk {open.ChunkId}");

        var done = await MeshJobs.WaitForJobAsync(jobs, networkId, job.JobId, j => j.State is JobState.Completed or JobState.Failed or JobState.Cancelled, TimeSpan.FromSeconds(180));
        Assert.That(done.State, Is.EqualTo(JobState.Completed), done.ErrorMessage);
        Assert.That(done.ChunksCompleted, Is.EqualTo(job.ChunkCount));
        Assert.That(done.Attempts.Where(a => a.Cause == AttemptCause.Disconnect).Select(a => a.DeviceId), Is.Not.Empty.And.All.EqualTo(victim.DeviceId), "the killed agent's chunk was retried");
        Assert.That(done.Attempts.Where(a => a.Cause == AttemptCause.Succeeded).Select(a => a.ChunkId), Is.EquivalentTo(chunkIds));

        var result = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = job.JobId })).Result;
        var transcript = WorkloadOutput.Parser.ParseFrom(result.Output).Transcribe;
        Assert.That(transcript.Segments.Select(s => s.ChunkIndex), Is.EqualTo(Enumerable.Range(0, job.ChunkCount)), "every chunk exactly once, in order");
        Assert.That(transcript.Segments.Select(s => s.StartMs), Is.Ordered.Ascending);

        var events = await MeshJobs.LedgerEventsAsync(_channel, networkId, job.JobId);
        var burns = events.Where(e => e.EventType == LedgerEventType.CreditsBurned).ToList();
        Assert.That(burns.Select(e => e.ChunkId), Is.EquivalentTo(chunkIds), "each chunk burned exactly once");
        Assert.That(burns.Select(e => e.IdempotencyKey), Is.Unique);
        Assert.That(events.Select(e => e.IdempotencyKey), Is.Unique);
        Assert.That(-burns.Sum(b => b.AmountMicro), Is.EqualTo(done.CostMicro));
        var reconciled = await new LedgerService.LedgerServiceClient(_channel).ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = networkId });
        Assert.That(reconciled.Balanced, Is.True, string.Join("; ", reconciled.Mismatches.Select(m => $"{m.Subject}: {m.Detail}")));

        var reference = Sentences.SelectMany(s => s.Split(' ')).ToArray();
        var hypothesis = transcript.Text.ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var wer = MeshJobs.ErrorRate(reference, hypothesis);
        TestContext.Out.WriteLine($"transcript: \"{transcript.Text}\"");
        TestContext.Out.WriteLine($"word error rate {wer:P1} over {reference.Length} words in {job.ChunkCount} chunks (pocketsphinx en-us generic model, espeak-ng en-us+m3 speech cut every {ChunkMs} ms)");
        Assert.That(wer, Is.LessThan(1.0));
    }
}

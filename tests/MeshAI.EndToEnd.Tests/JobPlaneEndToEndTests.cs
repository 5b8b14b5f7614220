using Google.Protobuf;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Durable jobs through real processes (issue 10): the embedded server is restarted while an agent runs a job; the
/// restarted server resumes the job from the store instead of failing it, the agent keeps running it across the dropped
/// stream and re-sends its result on the new stream, and the job completes on its first attempt, billed once.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class JobPlaneEndToEndTests
{
    private LocalMesh _mesh = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;

    [OneTimeSetUp]
    public async Task StartMeshAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions());
        var token = await _mesh.SignInAsync("restart@example.com");
        _channel = _mesh.Channel(token);
    }

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
    public async Task Restarting_the_embedded_server_mid_job_resumes_the_job_and_it_completes_on_its_first_attempt_billed_once()
    {
        var (networkId, agents) = await MeshJobs.NetworkWithAgentsAsync(_mesh, _channel, "restart", count: 1);
        var jobs = new JobService.JobServiceClient(_channel);
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest
        {
            Envelope = new JobEnvelope
            {
                NetworkId = networkId,
                WorkloadId = WorkloadClass.DiagnosticEcho,
                RoutingMode = RoutingMode.Auto,
                TimeoutMs = 120_000,
                InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("survives"), DelayMs = 8_000 } }.ToByteString() },
                PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
            },
        })).Job;
        await MeshJobs.WaitForJobAsync(jobs, networkId, job.JobId, j => j.State == JobState.Running);

        await _mesh.RestartServerAsync();

        var done = await MeshJobs.WaitForJobAsync(jobs, networkId, job.JobId, j => j.State is JobState.Completed or JobState.Failed or JobState.Cancelled, TimeSpan.FromSeconds(90));
        Assert.That(done.State, Is.EqualTo(JobState.Completed), done.ErrorMessage);
        Assert.That(done.Attempts.Select(a => (a.Attempt, a.DeviceId, a.Cause)), Is.EqualTo(new[] { (1, agents[0].DeviceId, AttemptCause.Succeeded) }), "no retry: the restart did not fail the attempt");
        var result = await jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = job.JobId });
        Assert.That(WorkloadOutput.Parser.ParseFrom(result.Result.Output).Echo.Data.ToStringUtf8(), Is.EqualTo("survives"));

        var events = await MeshJobs.LedgerEventsAsync(_channel, networkId, job.JobId);
        Assert.That(events.Count(e => e.EventType == LedgerEventType.CreditsBurned), Is.EqualTo(1), "billed once");
        Assert.That(events.Select(e => e.IdempotencyKey), Is.Unique);
    }
}

using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Agent.Device;
using MeshAI.Agent.Jobs;
using MeshAI.Agent.State;
using MeshAI.Agent.Workloads;
using MeshAI.Common.Crypto;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Relay.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Relay;

/// <summary>
/// The relay stream's delivery guarantees (protocol 2) with the real agent session against the real relay: terminal frames
/// are numbered and acknowledged only once handled, an unacknowledged result survives the stream and is re-sent on the next
/// one, and a token stream faster than the reader is back-pressured instead of losing the result.
/// </summary>
[Category("Integration")]
[NonParallelizable]
public sealed class RelayGuaranteesTests
{
    private static readonly string[] ResendJob = ["job_resend"];
    private readonly SigningKeyPair _control = SigningKeyPair.Generate();
    private RelayTestHost _host = null!;

    [OneTimeSetUp]
    public async Task StartRelay() => _host = await RelayTestHost.StartAsync();

    [OneTimeTearDown]
    public async Task StopRelay() => await _host.DisposeAsync();

    /// <summary>Emits a token stream as fast as the stream lets it, then answers the echo.</summary>
    private sealed class FastTokenHandler(int tokens) : IWorkloadHandler
    {
        public WorkloadClass Workload => WorkloadClass.DiagnosticEcho;

        public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Echo;

        public async Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
        {
            for (var i = 0; i < tokens; i++)
            {
                await context.EmitTokenAsync("t" + i, i, cancellationToken);
            }

            await Task.Delay(input.Echo.DelayMs, cancellationToken);
            return new WorkloadOutput { Echo = new EchoOutput { Data = input.Echo.Data } };
        }
    }

    [Test]
    public async Task A_token_stream_faster_than_the_reader_is_back_pressured_and_never_loses_its_result()
    {
        const int Tokens = 3000;
        var (deviceId, session, jobs, stop, run) = await OnlineAsync(new FastTokenHandler(Tokens));
        _host.Sink.TokenDelay = TimeSpan.FromMilliseconds(1);
        try
        {
            await WaitUntil(() => session.Protocol == RelaySession.ProtocolVersion); // Welcome carries the negotiated protocol version
            Assert.That(session.HeartbeatAckEvery, Is.EqualTo(2), "protocol 4: the real agent learns the sparse acknowledgements (5 s / 20 s)");
            Assert.That(Dispatcher.TryOffer(deviceId, EchoOffer(deviceId, "job_fast", 1, 0)), Is.True);
            Assert.That((await _host.Sink.NextAsync(deviceId)).Kind, Is.EqualTo("accept"));
            var indices = new List<int>();
            (string Kind, DeviceIdentity Device, IMessage? Frame, long RelayBytes) next;
            while ((next = await _host.Sink.NextAsync(deviceId, TimeSpan.FromSeconds(60))).Kind == "token")
            {
                indices.Add(((JobToken)next.Frame!).Index);
            }

            Assert.That(next.Kind, Is.EqualTo("result"), "the result arrives after the last token");
            Assert.That(indices, Is.EqualTo(Enumerable.Range(0, Tokens).ToList()), "every token, in order: the agent waited instead of dropping");
            await WaitUntil(() => jobs.UnackedCount == 0);
        }
        finally
        {
            _host.Sink.TokenDelay = TimeSpan.Zero;
            await StopAsync(jobs, stop, run);
        }
    }

    [Test]
    public async Task A_result_finished_while_the_stream_was_down_is_resent_on_the_next_stream_and_acknowledged_only_once_handled()
    {
        var (deviceId, _, jobs, stop, run) = await OnlineAsync(new EchoHandler());
        try
        {
            Assert.That(Dispatcher.TryOffer(deviceId, EchoOffer(deviceId, "job_resend", 1, 1500)), Is.True);
            Assert.That((await _host.Sink.NextAsync(deviceId)).Kind, Is.EqualTo("accept"));
            await WaitUntil(() => jobs.UnackedCount == 0);

            // The stream drops mid-job; the job keeps running on the device.
            Assert.That(Dispatcher.Cut(deviceId, CutReason.Shutdown, "relay restarting"), Is.True);
            var end = await run.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.That(end.Cut, Is.EqualTo(CutReason.Shutdown));
            while ((await _host.Sink.NextAsync(deviceId)).Kind == "progress")
            {
                // the echo's progress frames came first
            }

            await WaitUntil(() => jobs.Running.IsEmpty);
            Assert.That(jobs.UnackedCount, Is.EqualTo(1), "the result waits for the next stream");

            // Control refuses the result twice (not handled yet): the relay retries and only then acknowledges it.
            _host.Sink.RefuseResults = 2;
            var (enrollment, keys) = Enroll(deviceId);
            var session = NewSession(enrollment, keys, new EchoHandler(), jobs);
            run = session.RunAsync(new RelayService.RelayServiceClient(_channel!), stop.Token);
            var held = await _host.Sink.NextConnectedAsync(deviceId);
            Assert.That(held!.Select(h => h.JobId), Is.EqualTo(ResendJob), "the hello names the attempt whose result is unacknowledged");
            var result = await _host.Sink.NextAsync(deviceId);
            while (result.Kind == "progress")
            {
                result = await _host.Sink.NextAsync(deviceId);
            }

            Assert.That(result.Kind, Is.EqualTo("result"));
            Assert.That(((JobResult)result.Frame!).JobId, Is.EqualTo("job_resend"));
            await WaitUntil(() => jobs.UnackedCount == 0);
            Assert.That(_host.Sink.RefuseResults, Is.LessThan(0), "the refused attempts were retried by the relay");
        }
        finally
        {
            _host.Sink.RefuseResults = 0;
            await StopAsync(jobs, stop, run);
        }
    }

    private Grpc.Net.Client.GrpcChannel? _channel;

    private RelayHub Dispatcher => _host.Services.GetRequiredService<RelayHub>();

    private async Task<(string DeviceId, RelaySession Session, AgentJobs Jobs, CancellationTokenSource Stop, Task<SessionEnd> Run)> OnlineAsync(IWorkloadHandler handler)
    {
        var deviceId = "dev_" + Guid.NewGuid().ToString("N")[..20];
        var (enrollment, keys) = Enroll(deviceId);
        var jobs = new AgentJobs();
        var session = NewSession(enrollment, keys, handler, jobs);
        _channel ??= _host.CreateChannel();
        var stop = new CancellationTokenSource();
        var run = session.RunAsync(new RelayService.RelayServiceClient(_channel), stop.Token);
        Assert.That(await _host.Sink.NextConnectedAsync(deviceId), Is.Empty);
        return (deviceId, session, jobs, stop, run);
    }

    private static RelaySession NewSession(AgentEnrollment enrollment, AgentKeys keys, IWorkloadHandler handler, AgentJobs jobs) =>
        new(enrollment, keys, new LinuxDeviceStateProvider(), new WorkloadRegistry([handler]),
            new OfferVerifier(enrollment.ControlKeys, enrollment.DeviceId, enrollment.NetworkId), NullLogger.Instance, _ => { }, jobs: jobs);

    private static async Task StopAsync(AgentJobs jobs, CancellationTokenSource stop, Task<SessionEnd> run)
    {
        await stop.CancelAsync();
        try
        {
            await run.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception ex) when (ex is OperationCanceledException or Grpc.Core.RpcException)
        {
            // the session ends with the cancellation
        }

        await jobs.DisposeAsync();
        stop.Dispose();
    }

    private (AgentEnrollment Enrollment, AgentKeys Keys) Enroll(string deviceId)
    {
        _devices.TryGetValue(deviceId, out var device);
        device ??= _devices[deviceId] = _host.Authority.Issue(deviceId);
        var keys = new AgentKeys("inst_test", device.Keys.PrivateKey, device.Keys.PublicKey, new byte[32], new byte[32]);
        var enrollment = new AgentEnrollment(_host.Url, _host.Fingerprint, _host.Url, "relay-test", deviceId, _host.Authority.NetworkId, "test", device.Certificate.ToByteArray(),
            [new TrustedKey(SigningKeyPair.KeyId(_control.PublicKey), _control.PublicKey, nameof(NetworkKeyPurpose.ControlSigning), null)]);
        return (enrollment, keys);
    }

    private readonly Dictionary<string, TestDevice> _devices = new(StringComparer.Ordinal);

    private JobOffer EchoOffer(string deviceId, string jobId, int attempt, int delayMs)
    {
        var envelope = new JobEnvelope
        {
            JobId = jobId,
            NetworkId = _host.Authority.NetworkId,
            WorkloadId = WorkloadClass.DiagnosticEcho,
            InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8(jobId), DelayMs = delayMs } }.ToByteString() },
        }.ToByteString();
        var details = new PlacementTicketDetails
        {
            JobId = jobId, Attempt = attempt, DeviceId = deviceId, NetworkId = _host.Authority.NetworkId,
            EnvelopeSha256 = Secrets.Sha256Hex(envelope.Span), ExpireTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddMinutes(1)),
        };
        return new JobOffer { Ticket = PlacementTickets.Sign(details, _control), Envelope = envelope };
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!condition())
        {
            await Task.Delay(20, cts.Token);
        }
    }
}

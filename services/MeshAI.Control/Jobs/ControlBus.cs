using Google.Protobuf;
using MeshAI.Common.Bus;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Bus.V1;
using MeshAI.Contracts.Relay.V1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Jobs;

/// <summary>This control instance's identity: the owner id written into the jobs it runs, and its bus channel.</summary>
public sealed class ControlInstance(IOptions<ControlPlaneOptions> options)
{
    /// <summary>The instance id (configured, or generated per process).</summary>
    public string Id { get; } = string.IsNullOrWhiteSpace(options.Value.Jobs.InstanceId)
        ? $"ctl-{Environment.MachineName}-{Environment.ProcessId}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3))}"
        : options.Value.Jobs.InstanceId;
}

/// <summary>
/// Control's side of <see cref="IJobDispatcher"/> over the bus: an offer goes to the relay instance that holds the device's
/// stream (presence: device → relay), tagged with this instance as the job's owner; cuts go to every relay. False when the
/// device has no live stream anywhere. When that relay is the one in this process (<see cref="ILocalRelay"/>: the embedded
/// server) the offer or cancel is handed to it directly instead (issue #11: no serialise, queue hop and parse); its answer is
/// the relay's own (false when the stream is gone: the caller records the offer undeliverable, as the relay's bus reply did).
/// </summary>
public sealed class BusJobDispatcher(IMeshBus bus, BusNames names, IPresenceDirectory presence, ControlInstance instance, TimeProvider clock, IServiceProvider services) : IJobDispatcher
{
    // Resolved on first use: the relay's hub depends (lazily) on the control plane's services.
    private readonly Lazy<ILocalRelay?> _local = new(() => (ILocalRelay?)services.GetService(typeof(ILocalRelay)));

    /// <inheritdoc />
    public bool TryOffer(string deviceId, JobOffer offer)
    {
        if (presence.GetOnline(deviceId, clock.GetUtcNow()) is not { } online)
        {
            return false;
        }

        if (LocalRelay(online.RelayId) is { } local)
        {
            return local.TryOffer(deviceId, offer);
        }

        bus.Post(names.Relay(online.RelayId), new RelayCommand { DeviceId = deviceId, Offer = offer, FromInstance = instance.Id }.ToByteArray());
        return true;
    }

    /// <inheritdoc />
    public bool TryCancel(string deviceId, JobCancel cancel)
    {
        var online = presence.GetOnline(deviceId, clock.GetUtcNow());
        if (online is not null && LocalRelay(online.RelayId) is { } local)
        {
            local.TryCancel(deviceId, cancel);
            return true;
        }

        var channel = online is not null ? names.Relay(online.RelayId) : names.AllRelays;
        bus.Post(channel, new RelayCommand { DeviceId = deviceId, Cancel = cancel, FromInstance = instance.Id }.ToByteArray());
        return true;
    }

    private ILocalRelay? LocalRelay(string relayId) => _local.Value is { } local && string.Equals(local.RelayId, relayId, StringComparison.Ordinal) ? local : null;

    /// <inheritdoc />
    public bool Cut(string deviceId, CutReason reason, string detail)
    {
        bus.Post(names.AllRelays, new RelayCommand { DeviceId = deviceId, Cut = new Cut { Reason = reason, Detail = detail }, FromInstance = instance.Id }.ToByteArray());
        return true;
    }
}

/// <summary>
/// Control's door on the bus: reports for jobs this instance owns (its own channel) and reports whose owner the relay does
/// not know, device events and undeliverable offers (the all-control channel) are handed to <see cref="JobRunner"/>; a
/// terminal report is answered once handled. A report for a job run elsewhere is answered "not handled" on the direct
/// channel (the relay then asks everyone) and not at all on the broadcast one (its owner answers).
/// </summary>
public sealed partial class ControlBusEndpoint(IMeshBus bus, BusNames names, ControlInstance instance, JobRunner runner, ILogger<ControlBusEndpoint> logger) : IHostedService, IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _subscriptions = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Task, byte> _inFlight = new();

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _subscriptions.Add(await bus.SubscribeAsync(names.Control(instance.Id), m => OnMessageAsync(m, direct: true), cancellationToken));
        _subscriptions.Add(await bus.SubscribeAsync(names.AllControl, m => OnMessageAsync(m, direct: false), cancellationToken));
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var subscription in _subscriptions)
        {
            await subscription.DisposeAsync();
        }

        await Task.WhenAll(_inFlight.Keys);
    }

    private async Task OnMessageAsync(byte[] message, bool direct)
    {
        var m = ControlMessage.Parser.ParseFrom(message);
        switch (m.KindCase)
        {
            case ControlMessage.KindOneofCase.Report:
                await OnReportAsync(m.Report, direct);
                break;
            case ControlMessage.KindOneofCase.Device when m.Device.Connected:
                await runner.OnConnectedAsync(BusMessages.FromRef(m.Device.Device), m.Device.HeldKnown ? m.Device.Held : null, CancellationToken.None);
                break;
            case ControlMessage.KindOneofCase.Device:
                await runner.OnDisconnectedAsync(BusMessages.FromRef(m.Device.Device), CancellationToken.None);
                break;
            case ControlMessage.KindOneofCase.Undeliverable:
                runner.OnOfferUndeliverable(m.Undeliverable.JobId, m.Undeliverable.Attempt, m.Undeliverable.Reason);
                break;
        }
    }

    private async Task OnReportAsync(JobReport report, bool direct)
    {
        var device = BusMessages.FromRef(report.Device);
        var ct = CancellationToken.None;
        // Posting into the job's mailbox happens here, in bus order; waiting for the job to handle it does not hold up the
        // reports of other jobs behind it.
        var handling = report.FrameCase switch
        {
            JobReport.FrameOneofCase.Accept => runner.OnAcceptedAsync(device, report.Accept, ct),
            JobReport.FrameOneofCase.Decline => runner.OnDeclinedAsync(device, report.Decline, ct),
            JobReport.FrameOneofCase.Progress => runner.OnProgressAsync(device, report.Progress, ct),
            JobReport.FrameOneofCase.Token => runner.OnTokenAsync(device, report.Token, ct),
            JobReport.FrameOneofCase.Log => runner.OnLogAsync(device, report.Log, ct),
            JobReport.FrameOneofCase.Result => runner.OnResultAsync(device, report.Result, report.RelayBytes, ct),
            JobReport.FrameOneofCase.Failure => runner.OnFailureAsync(device, report.Failure, report.RelayBytes, ct),
            _ => Task.CompletedTask,
        };
        if (report.ReplyTo.Length == 0)
        {
            await handling;
            return;
        }

        var answering = AnswerAsync(handling, report, device.DeviceId, direct, MeshAI.Common.Observability.MeshTelemetry.StartJobReportSpan(
            JobIdOf(report), report.FrameCase.ToString(), device.DeviceId, report.Traceparent)); // tracing hook (#17)
        _inFlight[answering] = 0;
        _ = answering.ContinueWith(t => _inFlight.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task AnswerAsync(Task handling, JobReport report, string deviceId, bool direct, System.Diagnostics.Activity? span)
    {
        using var reportSpan = span;
        try
        {
            await handling;
            Answer(report, handled: true, "");
        }
        catch (JobNotOwnedException ex)
        {
            if (direct)
            {
                Answer(report, handled: false, ex.Message);
            }
        }
#pragma warning disable CA1031 // any failure (store outage) is answered: the relay retries the frame
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogReportFailed(ex, report.FrameCase.ToString(), deviceId);
            Answer(report, handled: false, ex.Message);
        }
    }

    private static string JobIdOf(JobReport report) => report.FrameCase switch
    {
        JobReport.FrameOneofCase.Accept => report.Accept.JobId,
        JobReport.FrameOneofCase.Decline => report.Decline.JobId,
        JobReport.FrameOneofCase.Result => report.Result.JobId,
        JobReport.FrameOneofCase.Failure => report.Failure.JobId,
        _ => "",
    };

    private void Answer(JobReport report, bool handled, string error)
    {
        if (report.ReplyTo.Length > 0)
        {
            bus.Post(report.ReplyTo, new Reply { CorrelationId = report.CorrelationId, Handled = handled, Error = error }.ToByteArray());
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Handling a {Kind} report from {DeviceId} failed; the relay retries it")]
    private partial void LogReportFailed(Exception exception, string kind, string deviceId);
}

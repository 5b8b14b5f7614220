using System.Collections.Concurrent;
using Google.Protobuf;
using MeshAI.Common.Bus;
using MeshAI.Common.Observability;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Bus.V1;
using MeshAI.Contracts.Relay.V1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MeshAI.Relay.Core;

/// <summary>
/// The relay's uplink to control over the bus. Reports go to the job's owner (learned from its offers) or, when unknown, to
/// every control instance (only the owner answers). Terminal reports wait for the owner's Reply: a report nobody answers
/// within <see cref="RelayOptions.ForwardTimeoutMs"/> (the owner died, its lease is not claimed yet) throws, so
/// <see cref="RelayHub"/> retries it — broadcast next time — and acknowledges it to the agent only once handled.
/// Also the relay's command endpoint: offers, cancels, cuts and network updates published for this relay are handed to the hub.
/// A job that a control plane in this same process runs (<see cref="ILocalJobOwner"/>) skips the bus (issue #11,
/// docs/job-plane.md "Reports and offers in one process"): its reports are handed to that runner directly, in the order the
/// relay forwards them, with the same contract (a terminal report completes once handled; one the runner does not take
/// throws, and the relay retries it, over the bus once the job is no longer run here).
/// </summary>
public sealed class BusJobEventSink(IMeshBus bus, BusNames names, IOptions<RelayOptions> options, Lazy<RelayHub> hub, TimeProvider clock, IServiceProvider services) : IJobEventSink, IHostedService, IAsyncDisposable
{
    // Resolved on first use: the runner depends (through the dispatcher) on the relay's own services.
    private readonly Lazy<ILocalJobOwner?> _local = new(() => (ILocalJobOwner?)services.GetService(typeof(ILocalJobOwner)));

    private readonly ConcurrentDictionary<string, TaskCompletionSource<Reply>> _pending = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _owners = new(StringComparer.Ordinal);
    private readonly List<IAsyncDisposable> _subscriptions = [];
    private readonly string _relayId = options.Value.RelayId;

    /// <inheritdoc />
    public Task OnAcceptedAsync(DeviceIdentity device, JobAccept accept, CancellationToken cancellationToken) =>
        LocalOwner(accept.JobId) is { } local
            ? LocalTerminalAsync(accept.JobId, "Accept", device, closes: false, () => local.OnAcceptedAsync(device, accept, cancellationToken))
            : TerminalAsync(accept.JobId, new JobReport { Device = BusMessages.ToRef(device), Accept = accept }, cancellationToken);

    /// <inheritdoc />
    public Task OnDeclinedAsync(DeviceIdentity device, JobDecline decline, CancellationToken cancellationToken) =>
        LocalOwner(decline.JobId) is { } local
            ? LocalTerminalAsync(decline.JobId, "Decline", device, closes: true, () => local.OnDeclinedAsync(device, decline, cancellationToken))
            : TerminalAsync(decline.JobId, new JobReport { Device = BusMessages.ToRef(device), Decline = decline }, cancellationToken);

    /// <inheritdoc />
    public Task OnProgressAsync(DeviceIdentity device, JobProgress progress, CancellationToken cancellationToken) =>
        LocalOwner(progress.JobId) is { } local
            ? local.OnProgressAsync(device, progress, cancellationToken)
            : Stream(progress.JobId, new JobReport { Device = BusMessages.ToRef(device), Progress = progress });

    /// <inheritdoc />
    public Task OnTokenAsync(DeviceIdentity device, JobToken token, CancellationToken cancellationToken) =>
        LocalOwner(token.JobId) is { } local
            ? local.OnTokenAsync(device, token, cancellationToken)
            : Stream(token.JobId, new JobReport { Device = BusMessages.ToRef(device), Token = token });

    /// <inheritdoc />
    public Task OnLogAsync(DeviceIdentity device, JobLog log, CancellationToken cancellationToken) =>
        LocalOwner(log.JobId) is { } local
            ? local.OnLogAsync(device, log, cancellationToken)
            : Stream(log.JobId, new JobReport { Device = BusMessages.ToRef(device), Log = log });

    /// <inheritdoc />
    public Task OnResultAsync(DeviceIdentity device, JobResult result, long relayBytes, CancellationToken cancellationToken) =>
        LocalOwner(result.JobId) is { } local
            ? LocalTerminalAsync(result.JobId, "Result", device, closes: true, () => local.OnResultAsync(device, result, relayBytes, cancellationToken))
            : TerminalAsync(result.JobId, new JobReport { Device = BusMessages.ToRef(device), Result = result, RelayBytes = relayBytes }, cancellationToken);

    /// <inheritdoc />
    public Task OnFailureAsync(DeviceIdentity device, JobFailure failure, long relayBytes, CancellationToken cancellationToken) =>
        LocalOwner(failure.JobId) is { } local
            ? LocalTerminalAsync(failure.JobId, "Failure", device, closes: true, () => local.OnFailureAsync(device, failure, relayBytes, cancellationToken))
            : TerminalAsync(failure.JobId, new JobReport { Device = BusMessages.ToRef(device), Failure = failure, RelayBytes = relayBytes }, cancellationToken);

    /// <inheritdoc />
    public Task OnDisconnectedAsync(DeviceIdentity device, CancellationToken cancellationToken) =>
        bus.PublishAsync(names.AllControl, new ControlMessage { Device = new DeviceEvent { Device = BusMessages.ToRef(device), Connected = false } }.ToByteArray(), cancellationToken);

    /// <inheritdoc />
    public Task OnConnectedAsync(DeviceIdentity device, IReadOnlyCollection<HeldAttempt>? held, CancellationToken cancellationToken)
    {
        var e = new DeviceEvent { Device = BusMessages.ToRef(device), Connected = true, HeldKnown = held is not null };
        e.Held.AddRange(held ?? []);
        return bus.PublishAsync(names.AllControl, new ControlMessage { Device = e }.ToByteArray(), cancellationToken);
    }

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _subscriptions.Add(await bus.SubscribeAsync(names.Reply(_relayId), message =>
        {
            var reply = Reply.Parser.ParseFrom(message);
            if (_pending.TryRemove(reply.CorrelationId, out var waiting))
            {
                waiting.TrySetResult(reply);
            }

            return Task.CompletedTask;
        }, cancellationToken));
        _subscriptions.Add(await bus.SubscribeAsync(names.Relay(_relayId), OnCommand, cancellationToken));
        _subscriptions.Add(await bus.SubscribeAsync(names.AllRelays, OnCommand, cancellationToken));
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
    }

    private Task OnCommand(byte[] message)
    {
        var command = RelayCommand.Parser.ParseFrom(message);
        switch (command.KindCase)
        {
            case RelayCommand.KindOneofCase.Offer:
                var details = PlacementTicketDetails.Parser.ParseFrom(command.Offer.Ticket?.Details ?? ByteString.Empty);
                if (command.FromInstance.Length > 0)
                {
                    _owners[details.JobId] = command.FromInstance;
                }

                if (!hub.Value.TryOffer(command.DeviceId, command.Offer) && command.FromInstance.Length > 0)
                {
                    bus.Post(names.Control(command.FromInstance), new ControlMessage
                    {
                        Undeliverable = new OfferUndeliverable { JobId = details.JobId, Attempt = details.Attempt, Reason = $"device has no live stream on relay {_relayId}" },
                    }.ToByteArray());
                }

                break;
            case RelayCommand.KindOneofCase.Cancel:
                hub.Value.TryCancel(command.DeviceId, command.Cancel);
                break;
            case RelayCommand.KindOneofCase.Cut:
                hub.Value.Cut(command.DeviceId, command.Cut.Reason, command.Cut.Detail);
                break;
            case RelayCommand.KindOneofCase.NetworkUpdate:
                hub.Value.PushNetworkUpdate(command.NetworkId, command.NetworkUpdate);
                break;
        }

        return Task.CompletedTask;
    }

    /// <summary>The runner in this process when it runs the job now (its reports skip the bus), else null.</summary>
    private ILocalJobOwner? LocalOwner(string jobId) => _local.Value is { } local && local.Runs(jobId) ? local : null;

    /// <summary>
    /// A terminal report handed to the runner in this process: the same span the bus path's control side opens
    /// (meshai.job.report, a child of the relay's forwarding span, #17); the owner learned from offers is forgotten when the
    /// report closes the attempt, as on the bus path. A failure (the job ended here meanwhile and another instance owns it, a
    /// store outage) propagates: the relay retries.
    /// </summary>
    private async Task LocalTerminalAsync(string jobId, string frame, DeviceIdentity device, bool closes, Func<Task> handle)
    {
        using var span = MeshTelemetry.StartJobReportSpan(jobId, frame, device.DeviceId, MeshTelemetry.CurrentTraceParent());
        await handle();
        if (closes)
        {
            _owners.TryRemove(jobId, out _);
        }
    }

    private Task Stream(string jobId, JobReport report)
    {
        bus.Post(Target(jobId), new ControlMessage { Report = report }.ToByteArray());
        return Task.CompletedTask;
    }

    private string Target(string jobId) => _owners.TryGetValue(jobId, out var owner) ? names.Control(owner) : names.AllControl;

    private async Task TerminalAsync(string jobId, JobReport report, CancellationToken cancellationToken)
    {
        report.ReplyTo = names.Reply(_relayId);
        report.CorrelationId = Guid.NewGuid().ToString("N");
        report.Traceparent = MeshAI.Common.Observability.MeshTelemetry.CurrentTraceParent(); // the relay's forwarding span (#17)
        var waiting = new TaskCompletionSource<Reply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[report.CorrelationId] = waiting;
        try
        {
            await bus.PublishAsync(Target(jobId), new ControlMessage { Report = report }.ToByteArray(), cancellationToken);
            var reply = await waiting.Task.WaitAsync(TimeSpan.FromMilliseconds(options.Value.ForwardTimeoutMs), clock, cancellationToken);
            if (!reply.Handled)
            {
                _owners.TryRemove(jobId, out _); // maybe no longer the owner: ask everyone next time
                throw new InvalidOperationException("control did not handle the report: " + reply.Error);
            }

            if (report.FrameCase is JobReport.FrameOneofCase.Result or JobReport.FrameOneofCase.Failure or JobReport.FrameOneofCase.Decline)
            {
                _owners.TryRemove(jobId, out _);
            }
        }
        catch (TimeoutException)
        {
            _owners.TryRemove(jobId, out _);
            throw new TimeoutException($"no control instance handled the {report.FrameCase} of job {jobId} within {options.Value.ForwardTimeoutMs} ms");
        }
        finally
        {
            _pending.TryRemove(report.CorrelationId, out _);
        }
    }
}

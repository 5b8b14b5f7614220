using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Control.Jobs.Execution;

/// <summary>
/// What single, chunked and spot-check jobs share: an attempt that times out, goes unanswered, cannot be delivered or
/// loses its device ends with a cause and is handed to the strategy's <see cref="AttemptLostAsync"/>; a device that drops
/// gets <see cref="Options.ReconnectGraceMs"/> to come back (on any relay) before its attempts count as lost, unless the
/// strategy hedges (<see cref="HedgeAsync"/>: re-offers elsewhere at once).
/// </summary>
internal abstract class PlacementStrategy : IJobStrategy
{
    public async Task HandleAsync(JobExecution job, JobEvent e, CancellationToken ct)
    {
        switch (e)
        {
            case AttemptTimedOut t when job.Open.TryGetValue(t.Attempt, out var p):
                job.CancelOnDevice(p, "timeout");
                await AttemptLostAsync(job, p, AttemptCause.Timeout, $"no result within {job.TimeoutMs} ms", ct);
                break;
            case OfferUnanswered u when job.Open.TryGetValue(u.Attempt, out var p) && !p.Answered:
                job.CancelOnDevice(p, "offer unanswered");
                await AttemptLostAsync(job, p, AttemptCause.Disconnect, $"no answer to the offer within {job.S.Options.OfferAnswerTimeoutMs} ms", ct);
                break;
            case OfferUndeliverable u when job.Open.TryGetValue(u.Attempt, out var p):
                await AttemptLostAsync(job, p, AttemptCause.Disconnect, u.Reason, ct);
                break;
            case DeviceDisconnected d:
                foreach (var p in job.Open.Values.Where(p => p.DeviceId == d.DeviceId).ToList())
                {
                    if (job.S.Options.ReconnectGraceMs == 0)
                    {
                        await AttemptLostAsync(job, p, AttemptCause.Disconnect, "device disconnected", ct);
                    }
                    else if (await HedgeAsync(job, p, ct))
                    {
                        // re-offered at once elsewhere; a late result of this attempt still counts (first result wins)
                    }
                    else
                    {
                        p.GraceTimer?.Dispose();
                        p.GraceTimer = job.Schedule(TimeSpan.FromMilliseconds(job.S.Options.ReconnectGraceMs), new ReconnectGraceOver(p.Attempt));
                    }
                }

                break;
            case DeviceConnected c:
                foreach (var p in job.Open.Values.Where(p => p.DeviceId == c.DeviceId).ToList())
                {
                    if (c.Held is not null && !c.Held.Contains((p.Attempt, p.ChunkId)))
                    {
                        // It came back without the attempt (a restarted agent): no point waiting for its result.
                        await AttemptLostAsync(job, p, AttemptCause.Disconnect, "device reconnected without the job", ct);
                    }
                    else
                    {
                        p.GraceTimer?.Dispose();
                        p.GraceTimer = null;
                    }
                }

                break;
            case ReconnectGraceOver g when job.Open.TryGetValue(g.Attempt, out var p):
                p.GraceTimer?.Dispose();
                p.GraceTimer = null;
                if (!job.S.IsOnline(p.DeviceId))
                {
                    await AttemptLostAsync(job, p, AttemptCause.Disconnect, "device disconnected", ct);
                }

                break;
            case AgentReport r when r.Kind is AgentReport.Accept or AgentReport.Decline && job.TryGetOpen(r.Device, r.Attempt, out var p):
                p.Answered = true;
                p.AnswerTimer?.Dispose();
                p.AnswerTimer = null;
                p.GraceTimer?.Dispose();
                p.GraceTimer = null;
                if (r.Kind == AgentReport.Decline)
                {
                    var decline = (JobDecline)r.Frame;
                    await AttemptLostAsync(job, p, AttemptCause.NodeDecline, DeclineDetail(decline), ct);
                }
                else
                {
                    await AcceptedAsync(job, p, ct);
                }

                break;
            case CancelRequested c:
                c.Done?.TrySetResult(await CancelAsync(job, c, ct));
                break;
            default:
                await OnEventAsync(job, e, ct);
                break;
        }
    }

    /// <summary>
    /// The submitter or an admin cancels: a running job ends CANCELLED with every open attempt stopped; a finished one (a
    /// spot-check may still run: it finishes on its own) is not cancelled. True when this cancelled the job.
    /// </summary>
    protected virtual async Task<bool> CancelAsync(JobExecution job, CancelRequested c, CancellationToken ct) =>
        !job.Finished && await job.FinishUnsuccessfullyAsync(JobState.Cancelled, c.Reason, AttemptCause.Cancelled, c.Reason, ct);

    /// <summary>The detail recorded for a decline.</summary>
    protected virtual string DeclineDetail(JobDecline decline) => $"declined: {decline.Reason} {decline.Detail}".Trim();

    /// <summary>The attempt is over without a result (already stopped on the device where that applies).</summary>
    protected abstract Task AttemptLostAsync(JobExecution job, Placement placement, AttemptCause cause, string detail, CancellationToken ct);

    /// <summary>
    /// The device of <paramref name="placement"/> dropped its stream: true when the strategy re-offered the job elsewhere at
    /// once instead of waiting <see cref="Options.ReconnectGraceMs"/> (docs/job-plane.md, "A killed agent"). By default it
    /// waits (chunks and spot-checks keep the grace).
    /// </summary>
    protected virtual Task<bool> HedgeAsync(JobExecution job, Placement placement, CancellationToken ct) => Task.FromResult(false);

    /// <summary>The device accepted the offer.</summary>
    protected abstract Task AcceptedAsync(JobExecution job, Placement placement, CancellationToken ct);

    /// <summary>Every other event.</summary>
    protected abstract Task OnEventAsync(JobExecution job, JobEvent e, CancellationToken ct);

    /// <summary>Publishes a stream frame (progress, token, log) of an open attempt to the job's watchers.</summary>
    protected static void PublishStream(JobExecution job, AgentReport r, Func<WatchJobResponse?> frame)
    {
        if (job.TryGetOpen(r.Device, r.Attempt, out _) && frame() is { } f)
        {
            job.S.Hub.Publish(job.JobId, f);
        }
    }
}

using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Ledger;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Jobs.Execution;

/// <summary>
/// Anti-abuse v1 spot-check of a settled job (docs/ledger.md "Spot checks"): the job's mint is held; it is re-run on a
/// second eligible device as its own attempt (no metering, no ledger events) and the outputs are compared. Match or
/// inconclusive releases the mint, a mismatch flags the original device and withholds it — once, in one transaction.
/// </summary>
internal sealed class SpotCheckStrategy(string originalDeviceId, int originalAttempt, byte[] originalOutput) : PlacementStrategy
{
    private Placement? _check;

    /// <summary>Places the re-run (called by the single-job strategy right after the settlement).</summary>
    public async Task StartAsync(JobExecution job, CancellationToken ct)
    {
        var excluded = new HashSet<string>(StringComparer.Ordinal) { originalDeviceId };
        var decision = await job.S.Placer.PlanAsync(job, excluded, ct);
        if (decision.Selected is not { } selected)
        {
            await ResolveAsync(job, SpotCheckVerdict.Inconclusive, null, "no second eligible device: " + decision.Reason, ct);
            return;
        }

        var attempts = await job.S.Jobs.ListAttemptsAsync(job.JobId, ct);
        var attempt = Math.Max(job.LastAttempt, attempts.Select(a => a.Attempt).DefaultIfEmpty(0).Max()) + 1;
        _check = await job.S.Placer.OfferAsync(job, attempt, selected, JobPlacer.AttemptKind.SpotCheck, null, null,
            $"{SpotCheck.AttemptDetailPrefix}: re-run of attempt {originalAttempt} ({originalDeviceId}), running", ct);
        if (_check is null)
        {
            await ResolveAsync(job, SpotCheckVerdict.Inconclusive, null, "attempt number taken", ct);
            return;
        }

        job.Log.LogInformation("Job {JobId} spot-check attempt {Attempt} offered to {DeviceId} (original {OriginalDeviceId})", job.JobId, attempt, selected.Device.DeviceId, originalDeviceId);
    }

    /// <summary>
    /// Carries on a check whose owner died (the job was claimed with its mint held): the dead owner's re-run attempts are
    /// ended (their results would reach nobody: a finished job's reports are answered "nothing to do") and stopped on their
    /// devices, then the check is placed again. The verdict is still written once (<see cref="JobSettler.ResolveSpotCheckAsync"/>
    /// resolves a held mint only while it is held).
    /// </summary>
    private async Task ResumeAsync(JobExecution job, SpotCheckResumeRequested r, CancellationToken ct)
    {
        job.LastAttempt = r.Attempts.Select(a => a.Attempt).DefaultIfEmpty(0).Max();
        foreach (var orphan in r.Attempts.Where(a => a.EndTimeMs is null))
        {
            var placement = new Placement(orphan.Attempt, orphan.DeviceId, null, orphan.StartTimeMs);
            job.CancelOnDevice(placement, "spot-check re-run abandoned: its control instance stopped");
            await job.S.Settler.EndAttemptAsync(job.JobId, orphan.Attempt, AttemptCause.Cancelled,
                $"{SpotCheck.AttemptDetailPrefix}: re-run abandoned (its control instance stopped); checked again", job.NowMs, ct);
        }

        job.Log.LogWarning("Job {JobId}: spot-check of attempt {Attempt} ({DeviceId}) claimed with its mint held; re-running it", job.JobId, originalAttempt, originalDeviceId);
        await StartAsync(job, ct);
    }

    protected override string DeclineDetail(JobDecline decline) => $"re-run declined: {decline.Reason} {decline.Detail}".Trim();

    protected override Task AttemptLostAsync(JobExecution job, Placement placement, AttemptCause cause, string detail, CancellationToken ct) =>
        ResolveAsync(job, SpotCheckVerdict.Inconclusive, cause, cause == AttemptCause.Disconnect && detail == "device disconnected" ? "second device disconnected" : detail, ct);

    protected override Task AcceptedAsync(JobExecution job, Placement placement, CancellationToken ct) => Task.CompletedTask;

    protected override async Task OnEventAsync(JobExecution job, JobEvent e, CancellationToken ct)
    {
        switch (e)
        {
            case AgentReport { Kind: AgentReport.Result } r when _check is not null && job.TryGetOpen(r.Device, r.Attempt, out _):
                var result = (JobResult)r.Frame;
                if (result.Encrypted)
                {
                    await ResolveAsync(job, SpotCheckVerdict.Inconclusive, AttemptCause.Succeeded, "the re-run returned an encrypted output", ct);
                    break;
                }

                var comparison = SpotCheck.Compare(originalOutput, result.Output.Span);
                await ResolveAsync(job, comparison.Verdict, AttemptCause.Succeeded, comparison.Detail, ct);
                break;
            case AgentReport { Kind: AgentReport.Failure } r when job.TryGetOpen(r.Device, r.Attempt, out var p):
                await AttemptLostAsync(job, p, AttemptCause.WorkloadError, "re-run failed: " + ((JobFailure)r.Frame).Error, ct);
                break;
            case SpotCheckResumeRequested resume:
                await ResumeAsync(job, resume, ct);
                break;
            default:
                break; // duplicates of the original result, stream frames of the re-run: nothing to do
        }
    }

    private async Task ResolveAsync(JobExecution job, SpotCheckVerdict verdict, AttemptCause? cause, string detail, CancellationToken ct)
    {
        if (_check is { } check)
        {
            check.StopTimers();
            job.Open.Remove(check.Attempt);
        }

        var outcome = verdict switch
        {
            SpotCheckVerdict.Match => "outputs match",
            SpotCheckVerdict.Mismatch => "MISMATCH",
            _ => "inconclusive",
        };
        var secondDevice = _check?.DeviceId ?? "";
        var minted = await job.S.Settler.ResolveSpotCheckAsync(new SpotCheckVerdictRecord(
            job.NetworkId, job.JobId, _check?.Attempt ?? 0, originalDeviceId, verdict, cause ?? AttemptCause.Cancelled,
            $"{SpotCheck.AttemptDetailPrefix} of attempt {originalAttempt} ({originalDeviceId}): {outcome} — {detail}",
            detail, $"spot-check mismatch on job {job.JobId} (re-run on {secondDevice}): {detail}", job.NowMs), ct);
        if (verdict == SpotCheckVerdict.Mismatch)
        {
            job.Log.LogWarning("Job {JobId} spot-check MISMATCH: device {DeviceId} flagged, mint withheld ({Detail})", job.JobId, originalDeviceId, detail);
        }
        else
        {
            job.Log.LogInformation("Job {JobId} spot-check {Outcome}: released {MintMicro} µ to {DeviceId} ({Detail})", job.JobId, outcome, minted, originalDeviceId, detail);
        }

        job.End();
    }
}

using System.Collections.Concurrent;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common;
using MeshAI.Common.Crypto;
using MeshAI.Common.Domain;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Jobs;

/// <summary>
/// Anti-abuse v1 spot-checks (docs/ledger.md "Spot checks"): a sampled plaintext, unchunked job is settled with its mint
/// held, re-run on a second eligible device as its own attempt (no metering, no ledger events), and the outputs are
/// compared per workload. Match or inconclusive releases the held mint; a mismatch flags the original device and withholds
/// it — each in one transaction with the spot-check attempt's end, so the ledger always equals the execution records.
/// </summary>
public sealed partial class JobRunner
{
    private readonly ConcurrentDictionary<string, SpotCheckRun> _spotChecks = new(StringComparer.Ordinal);

    /// <summary>An in-flight spot-check of a settled job (one per job).</summary>
    private sealed class SpotCheckRun(string jobId, string networkId, string originalDeviceId, int originalAttempt, byte[] originalOutput)
    {
        public string JobId { get; } = jobId;
        public string NetworkId { get; } = networkId;
        public string OriginalDeviceId { get; } = originalDeviceId;
        public int OriginalAttempt { get; } = originalAttempt;
        public byte[] OriginalOutput { get; } = originalOutput;
        public int Attempt { get; set; }
        public string DeviceId { get; set; } = "";
        public CancellationTokenSource? Timer { get; set; }
        private int _resolved;

        /// <summary>True for the first caller only: a spot-check resolves once.</summary>
        public bool TryResolve() => Interlocked.Exchange(ref _resolved, 1) == 0;
    }

    /// <summary>Starts the spot-check of a job just settled with a held mint; any failure to start it releases the mint (inconclusive).</summary>
    private void StartSpotCheckInBackground(ActiveJob job, string originalDeviceId, int originalAttempt, byte[] originalOutput)
    {
        var check = new SpotCheckRun(job.JobId, job.NetworkId, originalDeviceId, originalAttempt, originalOutput);
        if (!_spotChecks.TryAdd(job.JobId, check))
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                await StartSpotCheckAsync(job, check, _stopping.Token);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                logger.LogError(e, "Spot-check of job {JobId} could not start", job.JobId);
                await ResolveSpotCheckSafelyAsync(check, SpotCheckVerdict.Inconclusive, AttemptCause.Cancelled, "could not start: " + e.Message);
            }
        });
    }

    private async Task StartSpotCheckAsync(ActiveJob job, SpotCheckRun check, CancellationToken ct)
    {
        var excluded = new HashSet<string>(StringComparer.Ordinal) { check.OriginalDeviceId };
        var decision = await planner.PlanAsync(job.Envelope, job.Settings, excluded, job.Context, ct);
        if (decision.Selected is not { } selected)
        {
            await ResolveSpotCheckAsync(check, SpotCheckVerdict.Inconclusive, null, "no second eligible device: " + decision.Reason, ct);
            return;
        }

        var now = clock.GetUtcNow();
        var attempts = await jobs.ListAttemptsAsync(job.JobId, ct);
        check.Attempt = Math.Max(job.Attempt, attempts.Select(a => a.Attempt).DefaultIfEmpty(0).Max()) + 1;
        check.DeviceId = selected.Device.DeviceId;
        if (!await jobs.InsertSpotCheckAttemptAsync(new JobAttemptRow
        {
            JobId = job.JobId,
            Attempt = check.Attempt,
            DeviceId = check.DeviceId,
            Cause = (int)AttemptCause.Unspecified,
            StartTimeMs = now.ToUnixTimeMilliseconds(),
            Detail = $"{SpotCheck.AttemptDetailPrefix}: re-run of attempt {check.OriginalAttempt} ({check.OriginalDeviceId}), running",
        }, ct))
        {
            check.Attempt = 0;
            await ResolveSpotCheckAsync(check, SpotCheckVerdict.Inconclusive, null, "attempt number taken", ct);
            return;
        }

        var ticketKey = await keys.TicketKeyAsync(job.NetworkId, check.DeviceId, ct);
        var ticket = PlacementTickets.Sign(new PlacementTicketDetails
        {
            JobId = job.JobId,
            Attempt = check.Attempt,
            DeviceId = check.DeviceId,
            NetworkId = job.NetworkId,
            EnvelopeSha256 = Secrets.Sha256Hex(job.EnvelopeBytes),
            ExpireTime = Timestamp.FromDateTimeOffset(now.AddMilliseconds(job.TimeoutMs)),
        }, ticketKey);

        var timer = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        check.Timer = timer;
        var attempt = check.Attempt;
        _ = Task.Delay(TimeSpan.FromMilliseconds(job.TimeoutMs), clock, timer.Token).ContinueWith(
            t =>
            {
                if (!t.IsCanceled)
                {
                    dispatcher.TryCancel(check.DeviceId, new JobCancel { JobId = check.JobId, Attempt = attempt, Reason = "spot-check timeout" });
                    _ = ResolveSpotCheckSafelyAsync(check, SpotCheckVerdict.Inconclusive, AttemptCause.Timeout, $"no result within {job.TimeoutMs} ms");
                }
            },
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        logger.LogInformation("Job {JobId} spot-check attempt {Attempt} offered to {DeviceId} (original {OriginalDeviceId})", job.JobId, attempt, check.DeviceId, check.OriginalDeviceId);
        if (!dispatcher.TryOffer(check.DeviceId, new JobOffer { Ticket = ticket, Envelope = ByteString.CopyFrom(job.EnvelopeBytes) }))
        {
            await ResolveSpotCheckAsync(check, SpotCheckVerdict.Inconclusive, AttemptCause.Disconnect, "second device has no live relay stream", ct);
        }
    }

    /// <summary>The spot-check this report belongs to, when it comes from the spot-check device and attempt.</summary>
    private bool TryGetSpotCheck(DeviceIdentity device, string jobId, int attempt, out SpotCheckRun check) =>
        _spotChecks.TryGetValue(jobId, out check!) && check.Attempt == attempt && check.Attempt > 0 &&
        check.DeviceId == device.DeviceId && check.NetworkId == device.NetworkId;

    private async Task OnSpotCheckResultAsync(SpotCheckRun check, JobResult result, CancellationToken ct)
    {
        if (result.Encrypted)
        {
            await ResolveSpotCheckAsync(check, SpotCheckVerdict.Inconclusive, AttemptCause.Succeeded, "the re-run returned an encrypted output", ct);
            return;
        }

        var comparison = SpotCheck.Compare(check.OriginalOutput, result.Output.Span);
        await ResolveSpotCheckAsync(check, comparison.Verdict, AttemptCause.Succeeded, comparison.Detail, ct);
    }

    private void OnSpotCheckEnded(SpotCheckRun check, AttemptCause cause, string detail) =>
        _ = ResolveSpotCheckSafelyAsync(check, SpotCheckVerdict.Inconclusive, cause, detail);

    private async Task ResolveSpotCheckSafelyAsync(SpotCheckRun check, SpotCheckVerdict verdict, AttemptCause? cause, string detail)
    {
        try
        {
            await ResolveSpotCheckAsync(check, verdict, cause, detail, _stopping.Token);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            logger.LogError(e, "Resolving the spot-check of job {JobId} failed", check.JobId);
        }
    }

    /// <summary>
    /// Applies a verdict once, in one transaction: ends the spot-check attempt (when one was recorded) and releases the held
    /// mint (match, inconclusive) or flags the original device and withholds it (mismatch).
    /// </summary>
    private async Task ResolveSpotCheckAsync(SpotCheckRun check, SpotCheckVerdict verdict, AttemptCause? cause, string detail, CancellationToken ct)
    {
        if (!check.TryResolve())
        {
            return;
        }

        check.Timer?.Cancel();
        check.Timer?.Dispose();
        check.Timer = null;
        try
        {
            var now = NowMs;
            var outcome = verdict switch
            {
                SpotCheckVerdict.Match => "outputs match",
                SpotCheckVerdict.Mismatch => "MISMATCH",
                _ => "inconclusive",
            };
            var attemptDetail = $"{SpotCheck.AttemptDetailPrefix} of attempt {check.OriginalAttempt} ({check.OriginalDeviceId}): {outcome} — {detail}";
            var minted = await database.InTransactionAsync(async (c, tx) =>
            {
                if (check.Attempt > 0)
                {
                    await JobRepository.EndAttemptAsync(c, tx, check.JobId, check.Attempt, (int)(cause ?? AttemptCause.Cancelled), attemptDetail, now, ct);
                }

                if (verdict == SpotCheckVerdict.Mismatch)
                {
                    await LedgerRepository.FlagDeviceAsync(c, tx, new DeviceFlagRow
                    {
                        FlagId = Ids.New("flg"),
                        NetworkId = check.NetworkId,
                        DeviceId = check.OriginalDeviceId,
                        JobId = check.JobId,
                        Reason = $"spot-check mismatch on job {check.JobId} (re-run on {check.DeviceId}): {detail}",
                        CreateTimeMs = now,
                    }, ct);
                }

                return await LedgerWriter.ResolveHeldMintAsync(c, tx, check.NetworkId, check.JobId, "", verdict != SpotCheckVerdict.Mismatch, detail, now, ct);
            }, ct);

            if (verdict == SpotCheckVerdict.Mismatch)
            {
                logger.LogWarning("Job {JobId} spot-check MISMATCH: device {DeviceId} flagged, mint withheld ({Detail})", check.JobId, check.OriginalDeviceId, detail);
            }
            else
            {
                logger.LogInformation("Job {JobId} spot-check {Outcome}: released {MintMicro} µ to {DeviceId} ({Detail})", check.JobId, outcome, minted, check.OriginalDeviceId, detail);
            }
        }
        finally
        {
            _spotChecks.TryRemove(new KeyValuePair<string, SpotCheckRun>(check.JobId, check));
        }
    }

    private void StopSpotCheckTimers()
    {
        foreach (var check in _spotChecks.Values)
        {
            check.Timer?.Cancel();
        }
    }
}

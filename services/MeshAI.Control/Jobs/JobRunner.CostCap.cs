using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Jobs;

/// <summary>
/// max_cost_credits as a hard cap during execution (spec credits_and_accounting, issue 7): when an attempt is accepted,
/// a timer is set for the runtime at which the job's burn would pass the cap (<see cref="JobBudget.CapRuntimeMs"/> at the
/// tier it runs on). When it fires before a result arrives, the agent gets a JobCancel, the attempt ends COST_CAP, the
/// job ends CANCELLED and is billed exactly up to the cap through <see cref="LedgerWriter"/>, in one transaction.
/// </summary>
public sealed partial class JobRunner
{
    private async Task StartCostCapTimerAsync(ActiveJob job, int attempt, CancellationToken ct)
    {
        var row = await jobs.GetJobByIdAsync(job.JobId, ct);
        if (row is null || row.MaxCostCredits <= 0 || row.DeviceId is null)
        {
            return;
        }

        var network = await networks.GetNetworkAsync(job.NetworkId, ct);
        var deviceRow = await devices.GetDeviceByIdAsync(row.DeviceId, ct);
        if (network is null || deviceRow is null)
        {
            return;
        }

        var credits = NetworkDefaults.FromJson(network.SettingsJson).Credits;
        if (JobBudget.CapRuntimeMs(row.MaxCostCredits, LedgerWriter.TierOf(row, deviceRow), credits) is not { } capMs)
        {
            return; // a free tier never reaches the cap
        }

        var startedMs = NowMs;
        await job.Gate.WaitAsync(ct);
        try
        {
            if (job.Finished || job.Attempt != attempt)
            {
                return;
            }

            job.StopCostCapTimer();
            var timer = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            job.CostCapTimer = timer;

            // One millisecond past the longest runtime whose burn fits the cap: the first moment the job would owe more.
            _ = Task.Delay(TimeSpan.FromMilliseconds(capMs + 1), clock, timer.Token).ContinueWith(
                t =>
                {
                    if (!t.IsCanceled)
                    {
                        CostCapInBackground(job, attempt, startedMs, capMs);
                    }
                },
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        finally
        {
            job.Gate.Release();
        }
    }

    private void CostCapInBackground(ActiveJob job, int attempt, long startedMs, long capMs) =>
        _ = Task.Run(async () =>
        {
            try
            {
                await StopAtCostCapAsync(job, attempt, startedMs, capMs, _stopping.Token);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                logger.LogError(e, "Stopping job {JobId} at its cost cap failed", job.JobId);
            }
        });

    private async Task StopAtCostCapAsync(ActiveJob job, int attempt, long startedMs, long capMs, CancellationToken ct)
    {
        await job.Gate.WaitAsync(ct);
        try
        {
            if (job.Finished || job.Attempt != attempt)
            {
                return; // a result, a retry or a cancel got there first
            }

            var row = await jobs.GetJobByIdAsync(job.JobId, ct);
            if (row is null || JobViews.IsTerminal((JobState)row.State))
            {
                return;
            }

            var deviceId = job.DeviceId;
            dispatcher.TryCancel(deviceId, new JobCancel { JobId = job.JobId, Attempt = attempt, Reason = "max_cost_micro reached" });
            job.StopTimer();
            job.Finished = true;
            _active.TryRemove(job.JobId, out _);

            var network = await networks.GetNetworkAsync(job.NetworkId, ct);
            var deviceRow = await devices.GetDeviceByIdAsync(deviceId, ct);
            if (network is null || deviceRow is null)
            {
                await FinishRowAsync(row, JobState.Cancelled, "max_cost_micro reached", (attempt, AttemptCause.CostCap), ct);
                return;
            }

            var now = NowMs;
            var runtime = Math.Max(capMs + 1, now - startedMs);
            var credits = NetworkDefaults.FromJson(network.SettingsJson).Credits;
            var metering = await ledgerWriter.MeterCappedAsync(row, attempt, deviceRow, runtime, credits, now, ct);
            var priced = LedgerPricing.Price(metering);
            var message = $"cost cap max_cost_micro {MeshAI.Common.Domain.Money.CreditsWithMicro(row.MaxCostCredits)} reached after {runtime} ms: cancelled, billed {MeshAI.Common.Domain.Money.CreditsWithMicro(priced.BurnMicro)}";
            row.State = (int)JobState.Cancelled;
            row.EndTimeMs = now;
            row.StartTimeMs ??= row.PlacementTimeMs;
            row.RuntimeMs = metering.RuntimeMs;
            row.BilledRuntimeMs = priced.BilledMs;
            row.CostMicro = priced.BurnMicro;
            row.ErrorMessage = message;
            var finished = await database.InTransactionAsync(async (c, tx) =>
            {
                if (!await JobRepository.FinishAsync(c, tx, row, JobViews.TerminalStates, ct))
                {
                    return false;
                }

                await JobRepository.EndAttemptAsync(c, tx, row.JobId, attempt, (int)AttemptCause.CostCap, message, now, ct);
                await LedgerWriter.AppendCappedAsync(c, tx, metering, row.StartTimeMs ?? now, ct);
                return true;
            }, ct);
            if (finished)
            {
                logger.LogInformation("Job {JobId} stopped at its cost cap on {DeviceId}: {RuntimeMs} ms, burned {BurnMicro} µ", row.JobId, deviceId, runtime, priced.BurnMicro);
                await PublishStatusAsync(row.JobId, ct);
            }
        }
        finally
        {
            job.Gate.Release();
        }
    }
}

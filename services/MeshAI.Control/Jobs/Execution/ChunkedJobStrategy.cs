using Google.Protobuf;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Jobs.Chunking;
using MeshAI.Control.Networks;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Jobs.Execution;

/// <summary>
/// A chunked job (spec retries_and_chunking): every chunk is its own unit of placement with its own attempts (numbered
/// across the whole job), retries and backoff, spread over the best-ranked devices least-loaded first. The first result per
/// chunk wins (job_id + chunk_id, settled with its ledger events in one transaction); the job completes when every chunk
/// has a result, assembled in chunk order.
/// </summary>
internal sealed class ChunkedJobStrategy(IReadOnlyList<JobChunk> chunks) : PlacementStrategy
{
    private sealed class Work(JobChunk chunk)
    {
        public JobChunk Chunk { get; } = chunk;
        public HashSet<string> Tried { get; } = new(StringComparer.Ordinal);
        public int AttemptsUsed { get; set; }
        public bool Done { get; set; }
    }

    private readonly List<Work> _work = chunks.Select(c => new Work(c)).ToList();
    private readonly HashSet<string> _disconnected = new(StringComparer.Ordinal);
    private int _completed;

    protected override async Task OnEventAsync(JobExecution job, JobEvent e, CancellationToken ct)
    {
        switch (e)
        {
            case StartRequested s:
                foreach (var work in _work)
                {
                    if (job.Finished)
                    {
                        break;
                    }

                    await PlaceAsync(job, work, s.Decision, ct);
                }

                break;
            case ResumeRequested r:
                await ResumeAsync(job, r, ct);
                break;
            case RetryDue r when !job.Finished && _work.FirstOrDefault(w => w.Chunk.ChunkId == r.ChunkId) is { Done: false } work && job.Open.Values.All(p => p.ChunkId != r.ChunkId):
                var excluded = new HashSet<string>(work.Tried, StringComparer.Ordinal);
                excluded.UnionWith(_disconnected);
                await PlaceAsync(job, work, await job.S.Placer.PlanAsync(job, excluded, ct), ct);
                break;
            case AgentReport { Kind: AgentReport.Progress } r:
                var progress = (JobProgress)r.Frame;
                PublishStream(job, r, () => new WatchJobResponse
                {
                    Progress = new JobProgressFrame
                    {
                        Fraction = (_completed + Math.Clamp(progress.Fraction, 0, 1)) / _work.Count, Message = progress.Message, ChunkId = progress.ChunkId,
                        ChunksCompleted = _completed, ChunkCount = _work.Count,
                    },
                });
                break;
            case AgentReport { Kind: AgentReport.Result } r:
                await OnResultAsync(job, r, (JobResult)r.Frame, ct);
                break;
            case AgentReport { Kind: AgentReport.Failure } r when job.TryGetOpen(r.Device, r.Attempt, out var p):
                var failure = (JobFailure)r.Frame;
                if (failure.Retryable)
                {
                    await AttemptLostAsync(job, p, AttemptCause.WorkloadError, failure.Error, ct);
                }
                else
                {
                    await job.EndAttemptAsync(p, AttemptCause.WorkloadError, failure.Error, ct);
                    await FailAsync(job, $"chunk {p.ChunkId} failed: {failure.Error}", ct);
                }

                break;
            default:
                job.Log.LogDebug("Job {JobId}: ignoring {Event} (not about an open chunk attempt)", job.JobId, e.GetType().Name);
                break;
        }
    }

    protected override async Task AttemptLostAsync(JobExecution job, Placement placement, AttemptCause cause, string detail, CancellationToken ct)
    {
        if (cause == AttemptCause.Disconnect)
        {
            _disconnected.Add(placement.DeviceId);
        }

        var work = _work.First(w => w.Chunk.ChunkId == placement.ChunkId);
        if (job.Finished || !await job.EndAttemptAsync(placement, cause, detail, ct) || work.Done)
        {
            return;
        }

        if (work.AttemptsUsed >= Math.Max(1, job.Retry.MaxAttempts))
        {
            await FailAsync(job, $"chunk {work.Chunk.ChunkId} gave up after {work.AttemptsUsed} attempt(s); last: {detail}", ct);
            return;
        }

        var delay = job.Backoff(work.AttemptsUsed);
        job.Log.LogInformation("Job {JobId} chunk {ChunkId} attempt {Attempt} ended ({Cause}: {Detail}); retrying in {DelayMs} ms", job.JobId, work.Chunk.ChunkId, placement.Attempt, cause, detail, delay.TotalMilliseconds);
        job.ScheduleDetached(delay, new RetryDue(placement.Attempt, work.Chunk.ChunkId));
    }

    protected override async Task AcceptedAsync(JobExecution job, Placement placement, CancellationToken ct)
    {
        if (await job.S.Jobs.MarkRunningAsync(job.JobId, (int)JobState.Placed, (int)JobState.Running, job.NowMs, ct) > 0)
        {
            await job.PublishStatusAsync(ct);
        }
    }

    private async Task PlaceAsync(JobExecution job, Work work, PlacementDecision decision, CancellationToken ct)
    {
        var load = job.Open.Values.GroupBy(p => p.DeviceId, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var usable = decision.RankedCandidates
            .Select((c, rank) => (Candidate: c, Rank: rank))
            .Where(x => !work.Tried.Contains(x.Candidate.Device.DeviceId) && !_disconnected.Contains(x.Candidate.Device.DeviceId))
            .ToList();
        if (usable.Count == 0)
        {
            await FailAsync(job, $"no eligible device for chunk {work.Chunk.ChunkId}: {decision.Reason}", ct);
            return;
        }

        var pick = usable.OrderBy(x => load.GetValueOrDefault(x.Candidate.Device.DeviceId)).ThenBy(x => x.Rank).First();
        var selected = pick.Candidate;
        work.AttemptsUsed++;
        var reason = $"chunk {work.Chunk.ChunkId} ({work.Chunk.Index + 1}/{_work.Count}), attempt {work.AttemptsUsed} of the chunk: " +
                     $"least-loaded of the top {usable.Count} candidate(s) (rank {pick.Rank + 1}, {load.GetValueOrDefault(selected.Device.DeviceId)} chunk(s) already running there); {decision.Reason}";
        var debugView = JobPlacer.DebugView(job.JobId, decision, reason);
        debugView.SelectedDeviceId = selected.Device.DeviceId;
        var placement = await job.S.Placer.OfferAsync(job, job.LastAttempt + 1, selected, JobPlacer.AttemptKind.Chunk, work.Chunk, debugView, "", ct);
        if (placement is null)
        {
            job.Finished = true;
            job.End();
            return;
        }

        work.Tried.Add(selected.Device.DeviceId);
        await job.PublishStatusAsync(ct);
    }

    private async Task ResumeAsync(JobExecution job, ResumeRequested r, CancellationToken ct)
    {
        foreach (var result in r.ChunkResults)
        {
            if (_work.FirstOrDefault(w => w.Chunk.ChunkId == result.ChunkId) is { Done: false } done)
            {
                done.Done = true;
                _completed++;
            }
        }

        foreach (var a in r.Attempts)
        {
            job.Placed[a.Attempt] = (a.DeviceId, a.ChunkId);
            job.LastAttempt = Math.Max(job.LastAttempt, a.Attempt);
            if (_work.FirstOrDefault(w => w.Chunk.ChunkId == a.ChunkId) is not { } work)
            {
                continue;
            }

            work.Tried.Add(a.DeviceId);
            work.AttemptsUsed++;
            if (a.EndTimeMs is null && !work.Done)
            {
                var placement = new Placement(a.Attempt, a.DeviceId, work.Chunk, a.StartTimeMs) { Answered = true };
                job.Open[a.Attempt] = placement;
                job.S.Placer.Arm(job, placement, TimeSpan.FromMilliseconds(a.StartTimeMs + job.TimeoutMs - job.NowMs));
                if (!job.S.IsOnline(a.DeviceId))
                {
                    placement.GraceTimer = job.Schedule(TimeSpan.FromMilliseconds(job.S.Options.ResumeGraceMs), new ReconnectGraceOver(a.Attempt));
                }
            }
        }

        job.Log.LogInformation("Job {JobId} resumed: {Done}/{Chunks} chunk(s) done, {Open} open attempt(s)", job.JobId, _completed, _work.Count, job.Open.Count);
        if (_completed == _work.Count)
        {
            await CompleteAsync(job, job.Placed.Values.LastOrDefault().DeviceId ?? "", ct);
            return;
        }

        foreach (var work in _work.Where(w => !w.Done && job.Open.Values.All(p => p.ChunkId != w.Chunk.ChunkId)))
        {
            job.Post(new RetryDue(job.LastAttempt, work.Chunk.ChunkId));
        }
    }

    private async Task OnResultAsync(JobExecution job, AgentReport r, JobResult result, CancellationToken ct)
    {
        if (!job.Placed.TryGetValue(result.Attempt, out var placed) || placed.DeviceId != r.Device.DeviceId || placed.ChunkId != result.ChunkId || r.Device.NetworkId != job.NetworkId)
        {
            job.Log.LogWarning("Ignoring result for job {JobId} chunk {ChunkId} attempt {Attempt} from {DeviceId}: not placed there", job.JobId, result.ChunkId, result.Attempt, r.Device.DeviceId);
            return;
        }

        var work = _work.FirstOrDefault(w => w.Chunk.ChunkId == result.ChunkId);
        if (job.Finished || work is null || work.Done)
        {
            return; // duplicate or late: the first result for this chunk already won
        }

        var (row, network, deviceRow) = await job.S.Jobs.GetSettlementInputsAsync(job.JobId, job.NetworkId, r.Device.DeviceId, ct);
        if (row is null || JobViews.IsTerminal((JobState)row.State) || network is null || deviceRow is null)
        {
            return;
        }

        var credits = ParsedCredits.Of(network.SettingsJson);
        var now = job.NowMs;
        row.DeviceId = r.Device.DeviceId;
        row.Tier = 0; // classify the chunk's own device, not the job's last placement
        var metering = await job.S.LedgerWriter.MeterAsync(row, result, deviceRow, r.RelayBytes, credits, now, ct);
        var chunkRow = new JobChunkRow
        {
            JobId = job.JobId, ChunkId = work.Chunk.ChunkId, ChunkIndex = work.Chunk.Index, Attempt = result.Attempt, DeviceId = r.Device.DeviceId,
            Output = result.Output.ToByteArray(), RuntimeMs = metering.RuntimeMs, CostMicro = Ledger.LedgerPricing.Price(metering).BurnMicro, EndTimeMs = now,
        };
        if (!await job.S.Settler.CompleteChunkAsync(chunkRow, metering, row.StartTimeMs ?? now, ct))
        {
            return;
        }

        work.Done = true;
        _completed++;
        foreach (var open in job.Open.Values.Where(p => p.ChunkId == work.Chunk.ChunkId).ToList())
        {
            open.StopTimers();
            job.Open.Remove(open.Attempt);
            if (open.Attempt != result.Attempt)
            {
                job.CancelOnDevice(open, "chunk completed elsewhere");
                await job.S.Settler.EndAttemptAsync(job.JobId, open.Attempt, AttemptCause.Cancelled, "chunk completed elsewhere", now, ct);
            }
        }

        job.S.Hub.Publish(job.JobId, new WatchJobResponse
        {
            Progress = new JobProgressFrame
            {
                Fraction = _completed / (double)_work.Count, Message = $"chunk {work.Chunk.ChunkId} done on {r.Device.DeviceId}", ChunkId = work.Chunk.ChunkId,
                ChunksCompleted = _completed, ChunkCount = _work.Count,
            },
        });
        if (_completed == _work.Count)
        {
            await CompleteAsync(job, r.Device.DeviceId, ct);
        }
    }

    private async Task CompleteAsync(JobExecution job, string lastDeviceId, CancellationToken ct)
    {
        var results = (await job.S.Jobs.ListChunkResultsAsync(job.JobId, ct)).ToList();
        var outputs = results.Select(r => WorkloadOutput.Parser.ParseFrom(r.Output)).ToList();
        var output = JobChunker.Assemble(job.Envelope.WorkloadId, _work.Select(w => w.Chunk).ToList(), outputs);
        var row = await job.S.Jobs.GetJobByIdAsync(job.JobId, ct);
        if (row is null)
        {
            job.End();
            return;
        }

        var now = job.NowMs;
        row.State = (int)JobState.Completed;
        row.DeviceId = lastDeviceId;
        row.EndTimeMs = now;
        row.StartTimeMs ??= row.PlacementTimeMs;
        row.Output = output.ToByteArray();
        row.OutputNonce = [];
        row.OutputEncrypted = false;
        row.ErrorMessage = "";
        job.Finished = true;
        if (await job.S.Settler.CompleteChunkedAsync(row, ct))
        {
            job.Log.LogInformation("Job {JobId} completed: {Chunks} chunk(s) assembled", job.JobId, _work.Count);
            var view = JobViews.ToProto(row, await job.S.Jobs.ListAttemptsAsync(row.JobId, ct));
            job.S.Hub.Publish(row.JobId, new WatchJobResponse { Result = JobViews.Result(row, view) });
        }

        job.End();
    }

    private static Task<bool> FailAsync(JobExecution job, string message, CancellationToken ct) =>
        job.FinishUnsuccessfullyAsync(JobState.Failed, message, AttemptCause.Cancelled, "job failed: " + message, ct);
}

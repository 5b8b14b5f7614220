using System.Collections.Concurrent;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Crypto;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Jobs.Chunking;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;

namespace MeshAI.Control.Jobs;

/// <summary>
/// Chunked jobs (spec retries_and_chunking): every chunk is its own unit of placement, with its own attempts (numbered
/// across the whole job, so each attempt has its own placement ticket), retries and backoff. Chunks spread over the
/// best-ranked devices (least loaded first). The first result per chunk wins (job_chunks primary key job_id + chunk_id,
/// written in the same transaction as the chunk's ledger events), later duplicates are ignored, and the job completes
/// when every chunk has a result, assembled in chunk order.
/// </summary>
public sealed partial class JobRunner
{
    private readonly ConcurrentDictionary<string, ChunkedJob> _chunked = new(StringComparer.Ordinal);

    private sealed class ChunkedJob(string jobId, string networkId, JobEnvelope envelope, byte[] chunkEnvelopeBytes, long timeoutMs, NetworkSettings settings, JobPlacementContext context)
    {
        public string JobId { get; } = jobId;
        public string NetworkId { get; } = networkId;
        public JobEnvelope Envelope { get; } = envelope;
        public byte[] ChunkEnvelopeBytes { get; } = chunkEnvelopeBytes;
        public long TimeoutMs { get; } = timeoutMs;
        public NetworkSettings Settings { get; } = settings;
        public JobPlacementContext Context { get; } = context;
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public List<ChunkWork> Work { get; } = [];
        public ConcurrentDictionary<int, ChunkPlacement> Open { get; } = new();
        public HashSet<string> Disconnected { get; } = new(StringComparer.Ordinal);
        public int LastAttempt { get; set; }
        public int Completed { get; set; }
        public bool Finished { get; set; }
    }

    private sealed class ChunkWork(JobChunk chunk)
    {
        public JobChunk Chunk { get; } = chunk;
        public HashSet<string> Tried { get; } = new(StringComparer.Ordinal);
        public int AttemptsUsed { get; set; }
        public bool Done { get; set; }
        public bool Retrying { get; set; }
    }

    private sealed class ChunkPlacement(int attempt, string deviceId, ChunkWork work)
    {
        public int Attempt { get; } = attempt;
        public string DeviceId { get; } = deviceId;
        public ChunkWork Work { get; } = work;
        public CancellationTokenSource? Timer { get; set; }

        public void StopTimer()
        {
            Timer?.Cancel();
            Timer?.Dispose();
            Timer = null;
        }
    }

    private async Task StartChunkedAsync(JobRow row, JobEnvelope envelope, NetworkSettings settings, PlacementDecision decision, JobPlacementContext context, CancellationToken ct)
    {
        var job = new ChunkedJob(row.JobId, row.NetworkId, envelope, JobChunker.ChunkEnvelope(envelope).ToByteArray(), row.TimeoutMs, settings, context);
        job.Work.AddRange(context.Chunks!.Select(c => new ChunkWork(c)));
        _chunked[row.JobId] = job;
        await job.Gate.WaitAsync(ct);
        try
        {
            foreach (var work in job.Work)
            {
                if (job.Finished)
                {
                    break;
                }

                await PlaceChunkLockedAsync(job, work, decision, ct);
            }
        }
        finally
        {
            job.Gate.Release();
        }
    }

    private async Task PlaceChunkLockedAsync(ChunkedJob job, ChunkWork work, PlacementDecision decision, CancellationToken ct)
    {
        var load = job.Open.Values.GroupBy(p => p.DeviceId, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var usable = decision.RankedCandidates
            .Select((c, rank) => (Candidate: c, Rank: rank))
            .Where(x => !work.Tried.Contains(x.Candidate.Device.DeviceId) && !job.Disconnected.Contains(x.Candidate.Device.DeviceId))
            .ToList();
        if (usable.Count == 0)
        {
            await FailChunkedLockedAsync(job, $"no eligible device for chunk {work.Chunk.ChunkId}: {decision.Reason}", ct);
            return;
        }

        var pick = usable.OrderBy(x => load.GetValueOrDefault(x.Candidate.Device.DeviceId)).ThenBy(x => x.Rank).First();
        var selected = pick.Candidate;
        var attempt = ++job.LastAttempt;
        work.AttemptsUsed++;
        var now = clock.GetUtcNow();
        var reason = $"chunk {work.Chunk.ChunkId} ({work.Chunk.Index + 1}/{job.Work.Count}), attempt {work.AttemptsUsed} of the chunk: " +
                     $"least-loaded of the top {usable.Count} candidate(s) (rank {pick.Rank + 1}, {load.GetValueOrDefault(selected.Device.DeviceId)} chunk(s) already running there); {decision.Reason}";
        var debugView = new JobDebugView
        {
            JobId = job.JobId,
            Eligibility = { decision.Eligibility },
            TopCandidates = { decision.Ranked.Take(5) },
            SelectedDeviceId = selected.Device.DeviceId,
            SelectionReason = reason,
        };
        var placed = await jobs.RecordChunkPlacementAsync(new JobAttemptRow
        {
            JobId = job.JobId,
            Attempt = attempt,
            DeviceId = selected.Device.DeviceId,
            Cause = (int)AttemptCause.Unspecified,
            StartTimeMs = now.ToUnixTimeMilliseconds(),
            ChunkId = work.Chunk.ChunkId,
        }, (int)JobState.Queued, (int)JobState.Placed, (int)selected.Tier, debugView.ToByteArray(), JobViews.TerminalStates, ct);
        if (!placed)
        {
            job.Finished = true;
            _chunked.TryRemove(job.JobId, out _);
            return;
        }

        work.Tried.Add(selected.Device.DeviceId);
        var placement = new ChunkPlacement(attempt, selected.Device.DeviceId, work);
        job.Open[attempt] = placement;
        var keySet = await keys.GetKeysAsync(job.NetworkId, ct);
        var chunkBytes = work.Chunk.Payload.ToByteArray();
        var ticket = PlacementTickets.Sign(new PlacementTicketDetails
        {
            JobId = job.JobId,
            Attempt = attempt,
            DeviceId = selected.Device.DeviceId,
            NetworkId = job.NetworkId,
            EnvelopeSha256 = Secrets.Sha256Hex(job.ChunkEnvelopeBytes),
            ExpireTime = Timestamp.FromDateTimeOffset(now.AddMilliseconds(job.TimeoutMs)),
            ChunkId = work.Chunk.ChunkId,
            ChunkSha256 = Secrets.Sha256Hex(chunkBytes),
        }, keySet.Control);

        StartChunkTimer(job, placement);
        await PublishStatusAsync(job.JobId, ct);
        logger.LogInformation("Job {JobId} chunk {ChunkId} attempt {Attempt} offered to {DeviceId}", job.JobId, work.Chunk.ChunkId, attempt, selected.Device.DeviceId);
        var offer = new JobOffer { Ticket = ticket, Envelope = ByteString.CopyFrom(job.ChunkEnvelopeBytes), Chunk = work.Chunk.Payload };
        if (!dispatcher.TryOffer(selected.Device.DeviceId, offer))
        {
            ChunkRetryInBackground(job, selected.Device.DeviceId, attempt, AttemptCause.Disconnect, "device has no live relay stream");
        }
    }

    private void StartChunkTimer(ChunkedJob job, ChunkPlacement placement)
    {
        var timer = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        placement.Timer = timer;
        _ = Task.Delay(TimeSpan.FromMilliseconds(job.TimeoutMs), clock, timer.Token).ContinueWith(
            t =>
            {
                if (!t.IsCanceled)
                {
                    dispatcher.TryCancel(placement.DeviceId, new JobCancel { JobId = job.JobId, Attempt = placement.Attempt, Reason = "timeout" });
                    ChunkRetryInBackground(job, placement.DeviceId, placement.Attempt, AttemptCause.Timeout, $"no result within {job.TimeoutMs} ms");
                }
            },
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void ChunkRetryInBackground(ChunkedJob job, string deviceId, int attempt, AttemptCause cause, string detail) =>
        _ = Task.Run(async () =>
        {
            try
            {
                await ChunkRetryAsync(job, deviceId, attempt, cause, detail, _stopping.Token);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                logger.LogError(e, "Retrying a chunk of job {JobId} failed", job.JobId);
            }
        });

    private async Task ChunkRetryAsync(ChunkedJob job, string deviceId, int attempt, AttemptCause cause, string detail, CancellationToken ct)
    {
        ChunkWork work;
        int delayMs;
        await job.Gate.WaitAsync(ct);
        try
        {
            if (job.Finished || !job.Open.TryGetValue(attempt, out var placement) || placement.DeviceId != deviceId)
            {
                return;
            }

            job.Open.TryRemove(attempt, out _);
            placement.StopTimer();
            work = placement.Work;
            if (cause == AttemptCause.Disconnect)
            {
                job.Disconnected.Add(deviceId);
            }

            if (!await jobs.EndAttemptAsync(job.JobId, attempt, (int)cause, detail, NowMs, ct) || work.Done)
            {
                return;
            }

            var retry = job.Settings.RetryPolicy ?? new RetryPolicy { MaxAttempts = 1 };
            if (work.AttemptsUsed >= Math.Max(1, retry.MaxAttempts))
            {
                await FailChunkedLockedAsync(job, $"chunk {work.Chunk.ChunkId} gave up after {work.AttemptsUsed} attempt(s); last: {detail}", ct);
                return;
            }

            work.Retrying = true;
            delayMs = retry.BackoffMs.Count == 0 ? 0 : retry.BackoffMs[Math.Min(work.AttemptsUsed - 1, retry.BackoffMs.Count - 1)];
            logger.LogInformation("Job {JobId} chunk {ChunkId} attempt {Attempt} ended ({Cause}: {Detail}); retrying in {DelayMs} ms", job.JobId, work.Chunk.ChunkId, attempt, cause, detail, delayMs);
        }
        finally
        {
            job.Gate.Release();
        }

        await Task.Delay(TimeSpan.FromMilliseconds(delayMs), clock, ct);
        await job.Gate.WaitAsync(ct);
        try
        {
            work.Retrying = false;
            if (job.Finished || work.Done)
            {
                return;
            }

            var excluded = new HashSet<string>(work.Tried, StringComparer.Ordinal);
            excluded.UnionWith(job.Disconnected);
            var decision = await planner.PlanAsync(job.Envelope, job.Settings, excluded, job.Context, ct);
            await PlaceChunkLockedAsync(job, work, decision, ct);
        }
        finally
        {
            job.Gate.Release();
        }
    }

    private async Task OnChunkAcceptedAsync(ChunkedJob job, DeviceIdentity device, JobAccept accept, CancellationToken ct)
    {
        if (!IsOpen(job, device, accept.Attempt))
        {
            return;
        }

        if (await jobs.MarkRunningAsync(job.JobId, (int)JobState.Placed, (int)JobState.Running, NowMs, ct) > 0)
        {
            await PublishStatusAsync(job.JobId, ct);
        }
    }

    private void OnChunkProgress(ChunkedJob job, DeviceIdentity device, JobProgress progress)
    {
        if (IsOpen(job, device, progress.Attempt))
        {
            hub.Publish(job.JobId, new WatchJobResponse
            {
                Progress = new JobProgressFrame
                {
                    Fraction = (job.Completed + Math.Clamp(progress.Fraction, 0, 1)) / job.Work.Count, Message = progress.Message, ChunkId = progress.ChunkId,
                    ChunksCompleted = job.Completed, ChunkCount = job.Work.Count,
                },
            });
        }
    }

    private async Task OnChunkFailureAsync(ChunkedJob job, DeviceIdentity device, JobFailure failure, CancellationToken ct)
    {
        if (failure.Retryable)
        {
            ChunkRetryInBackground(job, device.DeviceId, failure.Attempt, AttemptCause.WorkloadError, failure.Error);
            return;
        }

        await job.Gate.WaitAsync(ct);
        try
        {
            if (!job.Finished && job.Open.TryGetValue(failure.Attempt, out var placement) && placement.DeviceId == device.DeviceId)
            {
                job.Open.TryRemove(failure.Attempt, out _);
                placement.StopTimer();
                await jobs.EndAttemptAsync(job.JobId, failure.Attempt, (int)AttemptCause.WorkloadError, failure.Error, NowMs, ct);
                await FailChunkedLockedAsync(job, $"chunk {placement.Work.Chunk.ChunkId} failed: {failure.Error}", ct);
            }
        }
        finally
        {
            job.Gate.Release();
        }
    }

    private void OnChunkDeviceDisconnected(string deviceId)
    {
        foreach (var job in _chunked.Values)
        {
            var attempts = job.Open.Values.Where(p => p.DeviceId == deviceId).Select(p => p.Attempt).ToList();
            foreach (var attempt in attempts)
            {
                ChunkRetryInBackground(job, deviceId, attempt, AttemptCause.Disconnect, "device disconnected");
            }
        }
    }

    private async Task OnChunkResultAsync(JobRow row, DeviceIdentity device, JobResult result, long relayBytes, CancellationToken ct)
    {
        var attempts = await jobs.ListAttemptsAsync(row.JobId, ct);
        if (!attempts.Any(a => a.Attempt == result.Attempt && a.DeviceId == device.DeviceId && a.ChunkId == result.ChunkId))
        {
            logger.LogWarning("Ignoring result for job {JobId} chunk {ChunkId} attempt {Attempt} from {DeviceId}: not placed there", row.JobId, result.ChunkId, result.Attempt, device.DeviceId);
            return;
        }

        _chunked.TryGetValue(row.JobId, out var job);
        if (job is null)
        {
            logger.LogWarning("Ignoring result for job {JobId} chunk {ChunkId}: the job is no longer running", row.JobId, result.ChunkId);
            return;
        }

        await job.Gate.WaitAsync(ct);
        try
        {
            var work = job.Work.FirstOrDefault(w => w.Chunk.ChunkId == result.ChunkId);
            if (job.Finished || work is null || work.Done)
            {
                return; // duplicate or late: the first result for this chunk already won
            }

            if (!await SettleChunkAsync(job, work, device, result, relayBytes, ct))
            {
                return;
            }

            work.Done = true;
            job.Completed++;
            foreach (var open in job.Open.Values.Where(p => p.Work == work).ToList())
            {
                job.Open.TryRemove(open.Attempt, out _);
                open.StopTimer();
                if (open.Attempt != result.Attempt)
                {
                    dispatcher.TryCancel(open.DeviceId, new JobCancel { JobId = job.JobId, Attempt = open.Attempt, Reason = "chunk completed elsewhere" });
                    await jobs.EndAttemptAsync(job.JobId, open.Attempt, (int)AttemptCause.Cancelled, "chunk completed elsewhere", NowMs, ct);
                }
            }

            hub.Publish(job.JobId, new WatchJobResponse
            {
                Progress = new JobProgressFrame
                {
                    Fraction = job.Completed / (double)job.Work.Count, Message = $"chunk {work.Chunk.ChunkId} done on {device.DeviceId}", ChunkId = work.Chunk.ChunkId,
                    ChunksCompleted = job.Completed, ChunkCount = job.Work.Count,
                },
            });
            if (job.Completed == job.Work.Count)
            {
                await CompleteChunkedLockedAsync(job, device.DeviceId, ct);
            }
        }
        finally
        {
            job.Gate.Release();
        }
    }

    private async Task<bool> SettleChunkAsync(ChunkedJob job, ChunkWork work, DeviceIdentity device, JobResult result, long relayBytes, CancellationToken ct)
    {
        var row = await jobs.GetJobByIdAsync(job.JobId, ct);
        var network = await networks.GetNetworkAsync(job.NetworkId, ct);
        var deviceRow = await devices.GetDeviceByIdAsync(device.DeviceId, ct);
        if (row is null || JobViews.IsTerminal((JobState)row.State) || network is null || deviceRow is null)
        {
            return false;
        }

        var credits = NetworkDefaults.FromJson(network.SettingsJson).Credits;
        var now = NowMs;
        row.DeviceId = device.DeviceId;
        row.Tier = 0; // classify the chunk's own device, not the job's last placement
        var metering = await ledgerWriter.MeterAsync(row, result, deviceRow, relayBytes, credits, now, ct);
        var priced = LedgerPricing.Price(metering);
        return await database.InTransactionAsync(async (c, tx) =>
        {
            if (!await JobRepository.InsertChunkResultAsync(c, tx, new JobChunkRow
                {
                    JobId = job.JobId, ChunkId = work.Chunk.ChunkId, ChunkIndex = work.Chunk.Index, Attempt = result.Attempt, DeviceId = device.DeviceId,
                    Output = result.Output.ToByteArray(), RuntimeMs = metering.RuntimeMs, CostMicro = priced.BurnMicro, EndTimeMs = now,
                }, ct))
            {
                return false;
            }

            await JobRepository.EndAttemptAsync(c, tx, job.JobId, result.Attempt, (int)AttemptCause.Succeeded, "", now, ct);
            await LedgerWriter.AppendCompletedAsync(c, tx, metering, row.StartTimeMs ?? now, ct);
            await JobRepository.AddChunkCompletionAsync(c, tx, job.JobId, metering.RuntimeMs, priced.BilledMs, priced.BurnMicro, relayBytes, ct);
            return true;
        }, ct);
    }

    private async Task CompleteChunkedLockedAsync(ChunkedJob job, string lastDeviceId, CancellationToken ct)
    {
        var results = (await jobs.ListChunkResultsAsync(job.JobId, ct)).ToList();
        var outputs = results.Select(r => WorkloadOutput.Parser.ParseFrom(r.Output)).ToList();
        var output = JobChunker.Assemble(job.Envelope.WorkloadId, job.Work.Select(w => w.Chunk).ToList(), outputs);
        var row = await jobs.GetJobByIdAsync(job.JobId, ct);
        if (row is null)
        {
            return;
        }

        var now = NowMs;
        row.State = (int)JobState.Completed;
        row.DeviceId = lastDeviceId;
        row.EndTimeMs = now;
        row.StartTimeMs ??= row.PlacementTimeMs;
        row.Output = output.ToByteArray();
        row.OutputNonce = [];
        row.OutputEncrypted = false;
        row.ErrorMessage = "";
        var finished = await database.InTransactionAsync((c, tx) => JobRepository.FinishAsync(c, tx, row, JobViews.TerminalStates, ct), ct);
        job.Finished = true;
        StopChunkTimers(job);
        _chunked.TryRemove(job.JobId, out _);
        if (finished)
        {
            logger.LogInformation("Job {JobId} completed: {Chunks} chunk(s) assembled", job.JobId, job.Work.Count);
            var view = JobViews.ToProto(row, await jobs.ListAttemptsAsync(row.JobId, ct));
            hub.Publish(row.JobId, new WatchJobResponse { Result = JobViews.Result(row, view) });
        }
    }

    private async Task FailChunkedLockedAsync(ChunkedJob job, string message, CancellationToken ct)
    {
        job.Finished = true;
        _chunked.TryRemove(job.JobId, out _);
        foreach (var open in job.Open.Values.ToList())
        {
            open.StopTimer();
            dispatcher.TryCancel(open.DeviceId, new JobCancel { JobId = job.JobId, Attempt = open.Attempt, Reason = "job failed" });
            await jobs.EndAttemptAsync(job.JobId, open.Attempt, (int)AttemptCause.Cancelled, "job failed: " + message, NowMs, ct);
        }

        job.Open.Clear();
        var row = await jobs.GetJobByIdAsync(job.JobId, ct);
        if (row is not null)
        {
            await FinishRowAsync(row, JobState.Failed, message, null, ct);
        }
    }

    private async Task<bool> CancelChunkedAsync(ChunkedJob job, string reason, CancellationToken ct)
    {
        await job.Gate.WaitAsync(ct);
        try
        {
            if (job.Finished)
            {
                return false;
            }

            job.Finished = true;
            _chunked.TryRemove(job.JobId, out _);
            foreach (var open in job.Open.Values.ToList())
            {
                open.StopTimer();
                dispatcher.TryCancel(open.DeviceId, new JobCancel { JobId = job.JobId, Attempt = open.Attempt, Reason = reason });
                await jobs.EndAttemptAsync(job.JobId, open.Attempt, (int)AttemptCause.Cancelled, reason, NowMs, ct);
            }

            job.Open.Clear();
            var row = await jobs.GetJobByIdAsync(job.JobId, ct);
            return row is not null && await FinishRowAsync(row, JobState.Cancelled, reason, null, ct);
        }
        finally
        {
            job.Gate.Release();
        }
    }

    private static bool IsOpen(ChunkedJob job, DeviceIdentity device, int attempt) =>
        !job.Finished && job.Open.TryGetValue(attempt, out var p) && p.DeviceId == device.DeviceId;

    private void StopChunkTimers()
    {
        foreach (var job in _chunked.Values)
        {
            StopChunkTimers(job);
        }
    }

    private static void StopChunkTimers(ChunkedJob job)
    {
        foreach (var open in job.Open.Values.ToList())
        {
            open.StopTimer();
        }
    }
}

using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Jobs;

/// <summary>Reading jobs: get (with result), list, watch (replay + live frames), explain; and cancelling.</summary>
public sealed class JobQueries(JobRepository jobs, NetworkAccess access, JobWatchHub hub, JobRunner runner, IOptions<ControlPlaneOptions> options)
{
    /// <summary>The job and, once completed, its result.</summary>
    public async Task<GetJobResponse> GetAsync(Caller caller, string networkId, string jobId, CancellationToken ct)
    {
        var row = await RequireJobAsync(caller, networkId, jobId, ct);
        var job = JobViews.ToProto(row, await jobs.ListAttemptsAsync(row.JobId, ct));
        return new GetJobResponse { Job = job, Result = JobViews.Result(row, job) };
    }

    /// <summary>Jobs of the network, newest first.</summary>
    public async Task<ListJobsResponse> ListAsync(Caller caller, ListJobsRequest request, CancellationToken ct)
    {
        var membership = await access.RequireMemberAsync(caller, request.NetworkId, ct);
        var size = PageTokens.Size(request.PageSize, options.Value.Limits);
        var (beforeTime, beforeId) = PageTokens.DecodeTimeId(request.PageToken, long.MaxValue, "");
        var onlyOwn = JobVisibility.SeesEveryonesJobs(membership) ? null : caller.UserId;
        var rows = (await jobs.ListJobsAsync(request.NetworkId, request.States.Select(s => (int)s).ToList(), beforeTime, beforeId, size + 1, ct, onlyOwn)).ToList();
        var response = new ListJobsResponse();
        foreach (var row in rows.Take(size))
        {
            response.Jobs.Add(JobViews.ToProto(row, await jobs.ListAttemptsAsync(row.JobId, ct)));
        }

        if (rows.Count > size)
        {
            response.NextPageToken = PageTokens.EncodeTimeId(rows[size - 1].CreateTimeMs, rows[size - 1].JobId);
        }

        return response;
    }

    /// <summary>Streams the current status, then live frames, ending after the terminal frame.</summary>
    public async Task WatchAsync(Caller caller, WatchJobRequest request, IServerStreamWriter<WatchJobResponse> stream, CancellationToken ct)
    {
        var row = await RequireJobAsync(caller, request.NetworkId, request.JobId, ct);
        using var subscription = hub.Subscribe(request.JobId);
        await subscription.Ready.WaitAsync(ct); // frames from the job's owner on another instance reach us from here on
        var current = await GetAsync(caller, request.NetworkId, request.JobId, ct);

        // A late watcher on another instance than the owner: the owner's kept frames come first (see FollowAsync).
        var replayed = JobViews.IsTerminal(current.Job.State) || runner.Runs(request.JobId)
            ? null
            : await hub.RequestReplayAsync(request.JobId, row.OwnerInstance, ct);
        await FollowAsync(subscription, current, stream, ct, replayed);
    }

    /// <summary>
    /// The rest of a watch once <paramref name="subscription"/> is ready: the job's status <paramref name="current"/> as the
    /// first frame (and its result when it already ended), then the live frames until the terminal one. WatchJob and RunJob
    /// (which subscribes before the job exists, so its first frame is the job SubmitJob returns) both end here.
    /// <paramref name="replayed"/> is the owner's kept frames for a watcher on another instance (WatchJob only): they are
    /// written after the status frame, before the live ones.
    /// </summary>
    public static async Task FollowAsync(JobWatchHub.Subscription subscription, GetJobResponse current, IServerStreamWriter<WatchJobResponse> stream, CancellationToken ct, IReadOnlyList<WatchJobResponse>? replayed = null)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(stream);
        await stream.WriteAsync(new WatchJobResponse { Status = new JobStatusFrame { Job = current.Job } }, ct);
        if (JobViews.IsTerminal(current.Job.State))
        {
            if (current.Result is not null)
            {
                await stream.WriteAsync(new WatchJobResponse { Result = current.Result }, ct);
            }

            return;
        }

        // The owner's kept frames first. Live frames that arrived while the replay was asked for may be in it too; each
        // replayed frame suppresses one equal live frame read before it came.
        var overlap = new List<WatchJobResponse>();
        foreach (var frame in replayed ?? [])
        {
            await stream.WriteAsync(frame, ct);
            overlap.Add(frame);
        }

        while (overlap.Count > 0 && subscription.Frames.TryRead(out var early))
        {
            var index = overlap.IndexOf(early);
            if (index >= 0)
            {
                overlap.RemoveAt(index);
            }
            else if (await WriteAsync(early))
            {
                return;
            }
        }

        await foreach (var frame in subscription.Frames.ReadAllAsync(ct))
        {
            if (await WriteAsync(frame))
            {
                return;
            }
        }

        async Task<bool> WriteAsync(WatchJobResponse frame)
        {
            await stream.WriteAsync(frame, ct);
            return frame.FrameCase == WatchJobResponse.FrameOneofCase.Result ||
                   (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && JobViews.IsTerminal(frame.Status.Job.State));
        }
    }

    /// <summary>The debug view of the last placement plus every attempt.</summary>
    public async Task<ExplainJobResponse> ExplainAsync(Caller caller, string networkId, string jobId, CancellationToken ct)
    {
        var row = await RequireJobAsync(caller, networkId, jobId, ct);
        var view = row.DebugView is { Length: > 0 } bytes ? JobDebugView.Parser.ParseFrom(bytes) : new JobDebugView { JobId = row.JobId, SelectionReason = "not placed yet" };
        view.Retries.Clear();
        view.Retries.AddRange((await jobs.ListAttemptsAsync(row.JobId, ct)).Select(JobViews.ToProto));
        var response = new ExplainJobResponse { DebugView = view };
        if (row.PlacementTimeMs is { } placed)
        {
            response.PlacementTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(placed));
        }

        return response;
    }

    /// <summary>Cancels the job (submitter or admin); returns its current state.</summary>
    public async Task<Job> CancelAsync(Caller caller, string networkId, string jobId, CancellationToken ct)
    {
        var membership = await access.RequireMemberAsync(caller, networkId, ct);
        var row = await RequireJobAsync(caller, networkId, jobId, ct);
        if (row.SubmittedByUserId != caller.UserId && membership.Role != Role.Admin)
        {
            throw RpcErrors.PermissionDenied("only the submitter or an admin can cancel this job", ErrorReasons.OwnerOrAdminRequired);
        }

        await runner.CancelAsync(row.JobId, "cancelled by " + caller.UserId, ct);
        return (await GetAsync(caller, networkId, jobId, ct)).Job;
    }

    private async Task<JobRow> RequireJobAsync(Caller caller, string networkId, string jobId, CancellationToken ct)
    {
        var membership = await access.RequireMemberCachedAsync(caller, networkId, ct);
        if (string.IsNullOrEmpty(jobId))
        {
            throw RpcErrors.Required("job_id");
        }

        var row = await jobs.GetJobAsync(networkId, jobId, ct);
        return row is not null && JobVisibility.CanSee(membership, caller.UserId, row.SubmittedByUserId) ? row : throw RpcErrors.NotFound("job", jobId);
    }
}

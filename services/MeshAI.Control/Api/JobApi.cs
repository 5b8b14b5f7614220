using Grpc.Core;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Jobs;
using MeshAI.Control.Security;

namespace MeshAI.Control.Api;

/// <summary>meshai.job.v1.JobService: plan (recipient keys for end-to-end encryption), estimate, submit, run (submit + watch in one call), watch, get, list, cancel, explain.</summary>
public sealed class JobApi(JobSubmission submission, JobQueries queries, SessionAuthenticator auth, RecipientPlanner recipients) : JobService.JobServiceBase
{
    /// <inheritdoc />
    public override async Task<PlanJobResponse> PlanJob(PlanJobRequest request, ServerCallContext context) =>
        await recipients.PlanAsync(await auth.RequireAsync(context), request, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<EstimateJobResponse> EstimateJob(EstimateJobRequest request, ServerCallContext context) =>
        await submission.EstimateAsync(await auth.RequireAsync(context), request.Envelope, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<SubmitJobResponse> SubmitJob(SubmitJobRequest request, ServerCallContext context)
    {
        var caller = await auth.RequireAsync(context);
        if (request.Envelope is { } envelope)
        {
            await recipients.ValidateEncryptedAsync(envelope, context.CancellationToken);
        }

        return new SubmitJobResponse { Job = await submission.SubmitAsync(caller, request, context.Peer, context.CancellationToken) };
    }

    /// <inheritdoc />
    public override async Task RunJob(RunJobRequest request, IServerStreamWriter<RunJobResponse> responseStream, ServerCallContext context)
    {
        var caller = await auth.RequireAsync(context);
        if (request.Envelope is { } envelope)
        {
            await recipients.ValidateEncryptedAsync(envelope, context.CancellationToken);
        }

        var submit = new SubmitJobRequest { Envelope = request.Envelope, IdempotencyKey = request.IdempotencyKey };
        await submission.RunAsync(caller, submit, context.Peer, new RunFrames(responseStream), context.CancellationToken);
    }

    /// <inheritdoc />
    public override async Task WatchJob(WatchJobRequest request, IServerStreamWriter<WatchJobResponse> responseStream, ServerCallContext context) =>
        await queries.WatchAsync(await auth.RequireAsync(context), request, responseStream, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<GetJobResponse> GetJob(GetJobRequest request, ServerCallContext context) =>
        await queries.GetAsync(await auth.RequireAsync(context), request.NetworkId, request.JobId, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<ListJobsResponse> ListJobs(ListJobsRequest request, ServerCallContext context) =>
        await queries.ListAsync(await auth.RequireAsync(context), request, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<CancelJobResponse> CancelJob(CancelJobRequest request, ServerCallContext context) =>
        new() { Job = await queries.CancelAsync(await auth.RequireAsync(context), request.NetworkId, request.JobId, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<ExplainJobResponse> ExplainJob(ExplainJobRequest request, ServerCallContext context) =>
        await queries.ExplainAsync(await auth.RequireAsync(context), request.NetworkId, request.JobId, context.CancellationToken);

    /// <summary>Writes WatchJob frames as RunJob frames.</summary>
    private sealed class RunFrames(IServerStreamWriter<RunJobResponse> stream) : IServerStreamWriter<WatchJobResponse>
    {
        /// <inheritdoc />
        public WriteOptions? WriteOptions { get => stream.WriteOptions; set => stream.WriteOptions = value; }

        /// <inheritdoc />
        public Task WriteAsync(WatchJobResponse message) => stream.WriteAsync(new RunJobResponse { Frame = message });

        /// <inheritdoc />
        public Task WriteAsync(WatchJobResponse message, CancellationToken cancellationToken) => stream.WriteAsync(new RunJobResponse { Frame = message }, cancellationToken);
    }
}

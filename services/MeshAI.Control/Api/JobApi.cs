using Grpc.Core;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Jobs;

namespace MeshAI.Control.Api;

/// <summary>meshai.job.v1.JobService: estimate, submit, watch, get, list, cancel, explain (PlanJob arrives with end-to-end encryption).</summary>
public sealed class JobApi(JobSubmission submission, JobQueries queries, SessionAuthenticator auth) : JobService.JobServiceBase
{
    /// <inheritdoc />
    public override async Task<EstimateJobResponse> EstimateJob(EstimateJobRequest request, ServerCallContext context) =>
        await submission.EstimateAsync(await auth.RequireAsync(context), request.Envelope, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<SubmitJobResponse> SubmitJob(SubmitJobRequest request, ServerCallContext context) =>
        new() { Job = await submission.SubmitAsync(await auth.RequireAsync(context), request, context.CancellationToken) };

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
}

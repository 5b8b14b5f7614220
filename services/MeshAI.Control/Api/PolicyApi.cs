using Grpc.Core;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Scheduling;

namespace MeshAI.Control.Api;

/// <summary>meshai.network.v1.PolicyService: get, update (stored tests must pass), evaluate.</summary>
public sealed class PolicyApi(PolicyStore store, SessionAuthenticator auth) : PolicyService.PolicyServiceBase
{
    /// <inheritdoc />
    public override async Task<GetPolicyResponse> GetPolicy(GetPolicyRequest request, ServerCallContext context) =>
        new() { Policy = await store.GetAsync(await auth.RequireAsync(context), request.NetworkId, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<UpdatePolicyResponse> UpdatePolicy(UpdatePolicyRequest request, ServerCallContext context) =>
        new() { Policy = await store.UpdateAsync(await auth.RequireAsync(context), request, context.CancellationToken) };

    /// <inheritdoc />
    public override async Task<EvaluatePolicyResponse> EvaluatePolicy(EvaluatePolicyRequest request, ServerCallContext context) =>
        await store.EvaluateAsync(await auth.RequireAsync(context), request, context.CancellationToken);
}

using Google.Protobuf;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Scheduling;

/// <summary>
/// Policies as data: get (the spec defaults until an admin saves one), update (validated, every stored test must pass,
/// optimistic version check), evaluate (a hypothetical query against the stored or a proposed policy).
/// </summary>
public sealed class PolicyStore(PolicyRepository policies, NetworkAccess access, ModelAvailability models, TimeProvider clock)
{
    /// <summary>The policy placement uses for the network.</summary>
    public async Task<Policy> LoadAsync(string networkId, CancellationToken ct)
    {
        var row = await policies.GetAsync(networkId, ct);
        if (row is null)
        {
            return PolicyEngine.Defaults(networkId);
        }

        var policy = Policy.Parser.ParseFrom(row.Policy);
        policy.NetworkId = networkId;
        policy.Version = row.Version;
        return policy;
    }

    /// <summary>The compiled policy placement uses for the network.</summary>
    public async Task<CompiledPolicy> LoadCompiledAsync(string networkId, CancellationToken ct) => new(await LoadAsync(networkId, ct));

    /// <summary>GetPolicy: any member.</summary>
    public async Task<Policy> GetAsync(Caller caller, string networkId, CancellationToken ct)
    {
        await access.RequireMemberAsync(caller, networkId, ct);
        return await LoadAsync(networkId, ct);
    }

    /// <summary>UpdatePolicy: admins only; rejected unless valid and every stored test passes.</summary>
    public async Task<Policy> UpdateAsync(Caller caller, UpdatePolicyRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var proposed = request.Policy ?? throw RpcErrors.Required("policy");
        var membership = await access.RequireMemberAsync(caller, proposed.NetworkId, ct);
        if (!membership.IsAdmin)
        {
            throw RpcErrors.PermissionDenied("only admins can change the network policy", ErrorReasons.AdminRequired);
        }

        var problems = PolicyEngine.Validate(proposed);
        if (problems.Count > 0)
        {
            throw Invalid(problems[0].Field, problems[0].Problem);
        }

        var failed = PolicyEngine.RunTests(proposed).Where(t => !t.Passed).ToList();
        if (failed.Count > 0)
        {
            throw RpcErrors.FailedPrecondition("POLICY_TESTS", "policy.tests",
                $"{failed.Count} policy test(s) fail: " + string.Join("; ", failed.Select(f => $"'{f.Name}' expected {f.Expected} but got {f.Actual} ({f.Reason})")), ErrorReasons.PolicyTestsFailed);
        }

        var current = await LoadAsync(proposed.NetworkId, ct);
        if (request.ExpectedVersion != current.Version)
        {
            throw RpcErrors.FailedPrecondition("POLICY_VERSION", "expected_version",
                $"the stored policy is version {current.Version}, not {request.ExpectedVersion}; get it again and reapply your change", ErrorReasons.PolicyVersionMismatch);
        }

        var saved = proposed.Clone();
        saved.Version = current.Version + 1;
        var row = new PolicyRow
        {
            NetworkId = proposed.NetworkId,
            Version = saved.Version,
            Policy = saved.ToByteArray(),
            UpdateTimeMs = clock.GetUtcNow().ToUnixTimeMilliseconds(),
            UpdatedBy = caller.UserId,
        };
        if (!await policies.SaveAsync(row, current.Version, ct))
        {
            throw RpcErrors.FailedPrecondition("POLICY_VERSION", "expected_version", "the policy changed concurrently; get it again and reapply your change", ErrorReasons.PolicyVersionMismatch);
        }

        return saved;
    }

    /// <summary>EvaluatePolicy: any member; against the proposed policy when given. A query naming a model gets model_public from the network's manifests.</summary>
    public async Task<EvaluatePolicyResponse> EvaluateAsync(Caller caller, EvaluatePolicyRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        await access.RequireMemberAsync(caller, request.NetworkId, ct);
        var policy = request.ProposedPolicy ?? await LoadAsync(request.NetworkId, ct);
        if (request.ProposedPolicy is not null && PolicyEngine.Validate(policy) is { Count: > 0 } problems)
        {
            throw Invalid("proposed_" + problems[0].Field, problems[0].Problem);
        }

        var query = request.Query ?? throw RpcErrors.Required("query");
        if (query.Model.Length > 0)
        {
            // A named model is judged by the network's manifests, not by what the caller claims.
            query = query.Clone();
            query.ModelPublic = (await models.PublicModelsAsync(request.NetworkId, ct)).ContainsName(query.Model);
        }

        return PolicyEngine.Evaluate(policy, query);
    }

    private static Grpc.Core.RpcException Invalid(string field, string problem) =>
        problem == "required" ? RpcErrors.Required(field) : RpcErrors.InvalidArgument(field, problem);
}

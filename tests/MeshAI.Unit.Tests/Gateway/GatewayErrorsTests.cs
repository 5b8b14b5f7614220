using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Gateway;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Gateway;

/// <summary>The job plane's refusals become OpenAI-shaped errors with the status codes client libraries understand.</summary>
[TestFixture]
[Category("Unit")]
public sealed class GatewayErrorsTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        yield return new TestCaseData(RpcErrors.Unauthenticated("API key is unknown or revoked"), 401, "authentication_error", "invalid_api_key").SetName("Unauthenticated_is_401");
        yield return new TestCaseData(RpcErrors.PermissionDenied("this API key lacks the 'jobs' scope"), 403, "permission_error", "permission_denied").SetName("Permission_denied_is_403");
        yield return new TestCaseData(RpcErrors.NotFound("network", "net_x"), 404, "invalid_request_error", "not_found").SetName("Hidden_network_is_404");
        yield return new TestCaseData(RpcErrors.InvalidArgument("envelope.resource_request.model", "model 'x' is not available", "MODEL_NOT_AVAILABLE"), 404, "invalid_request_error", "model_not_found").SetName("Unknown_model_is_404_model_not_found");
        yield return new TestCaseData(RpcErrors.InvalidArgument("envelope.timeout_ms", "too long"), 400, "invalid_request_error", "invalid_value").SetName("Invalid_argument_is_400");
        yield return new TestCaseData(RpcErrors.FailedPrecondition("CREDITS", "pool:net_x", "insufficient credits"), 402, "insufficient_quota", "insufficient_credits").SetName("Credits_are_402");
        yield return new TestCaseData(RpcErrors.FailedPrecondition("INSUFFICIENT_CREDITS", "pool:net_x", "insufficient credits"), 402, "insufficient_quota", "insufficient_credits").SetName("Credits_new_reason_are_402");
        yield return new TestCaseData(RpcErrors.FailedPrecondition("COST_CAP", "envelope.max_cost_credits", "over the cap"), 402, "insufficient_quota", "cost_cap_exceeded").SetName("Cost_cap_is_402");
        yield return new TestCaseData(RpcErrors.FailedPrecondition("PLACEMENT", "net_x", "no eligible device is online"), 503, "service_unavailable", "no_eligible_device").SetName("No_device_is_503");
        yield return new TestCaseData(RpcErrors.FailedPrecondition("NO_ELIGIBLE_DEVICE", "net_x", "no eligible device is online"), 503, "service_unavailable", "no_eligible_device").SetName("No_device_new_reason_is_503");
        yield return new TestCaseData(RpcErrors.ResourceExhausted("gateway:key_1", "too many requests"), 429, "rate_limit_error", "rate_limit_exceeded").SetName("Rate_limit_is_429");
        yield return new TestCaseData(RpcErrors.Unavailable("store is down"), 503, "service_unavailable", "unavailable").SetName("Unavailable_is_503");
        yield return new TestCaseData(new RpcException(new Status(StatusCode.Internal, "boom")), 500, "server_error", "internal_error").SetName("Internal_is_500");
    }

    [TestCaseSource(nameof(Cases))]
    public void Rpc_errors_map_to_openai_errors(RpcException rpc, int status, string type, string code)
    {
        var error = GatewayErrors.FromRpc(rpc);
        Assert.That((error.Status, error.Type, error.Code), Is.EqualTo((status, type, code)));
        var body = error.ToJson()["error"]!;
        Assert.That(body["message"]!.GetValue<string>(), Is.Not.Empty);
        Assert.That(body["type"]!.GetValue<string>(), Is.EqualTo(type));
        Assert.That(body["code"]!.GetValue<string>(), Is.EqualTo(code));
    }

    [Test]
    public void A_missing_model_error_names_the_model_parameter_not_the_envelope_field()
    {
        var error = GatewayErrors.FromRpc(RpcErrors.InvalidArgument("envelope.resource_request.model", "model 'gpt-4o' is not available in this network for Embeddings; available: all-minilm-l6-v2", "MODEL_NOT_AVAILABLE"));
        Assert.That(error.Param, Is.EqualTo("model"));
        Assert.That(error.Message, Does.StartWith("model 'gpt-4o' is not available"));
    }

    [Test]
    public void Rate_limits_say_when_to_retry()
    {
        var error = GatewayErrors.FromRpc(RpcErrors.ResourceExhausted("gateway:key_1", "too many requests"));
        Assert.That(error.RetryAfterSeconds, Is.InRange(1, 60));
    }

    [Test]
    public void A_job_that_ended_without_result_is_400_for_bad_input_503_when_devices_ran_out_and_402_at_the_cap()
    {
        static Job Job(JobState state, string message, params AttemptCause[] causes)
        {
            var job = new Job { JobId = "job_1", State = state, ErrorMessage = message };
            job.Attempts.AddRange(causes.Select((c, i) => new JobAttempt { Attempt = i + 1, Cause = c, StartTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch) }));
            return job;
        }

        Assert.That(GatewayErrors.FromJob(Job(JobState.Failed, "workload failed: prompt does not fit", AttemptCause.WorkloadError)).Status, Is.EqualTo(400));
        Assert.That(GatewayErrors.FromJob(Job(JobState.Failed, "gave up after 3 attempt(s)", AttemptCause.Timeout, AttemptCause.Disconnect, AttemptCause.Timeout)).Status, Is.EqualTo(503));
        Assert.That(GatewayErrors.FromJob(Job(JobState.Cancelled, "max_cost_credits reached", AttemptCause.CostCap)).Status, Is.EqualTo(402));
    }
}

using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Rpc;
using MeshAI.Integration.Tests.Control;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Hardening;

/// <summary>
/// The input contract, proven over the descriptors: every string, bytes, repeated, map and number field reachable from
/// every request message of every service (and from the workload input inside a job payload) has an explicit bound in
/// <see cref="RequestBoundsTable"/>, and the real server (real Kestrel) refuses each field one step past its bound with
/// INVALID_ARGUMENT, the specific reason and the field's path, refuses NUL and escape sequences in every string and undefined
/// values in every enum, and accepts each field exactly at its bound. A field added to a proto without a bound fails here.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class RequestBoundsContractTests
{
    private static readonly RequestBounds Bounds = RequestBounds.Default;
    private static readonly string[] BoundReasons =
        [ErrorReasons.FieldTooLong, ErrorReasons.TooManyItems, ErrorReasons.UnknownEnumValue, ErrorReasons.InvalidCharacters, ErrorReasons.ValueOutOfRange];

    private static IEnumerable<MethodDescriptor> Methods() => RequestProbes.Services().SelectMany(s => s.Methods);

    private static IEnumerable<FieldPath> RequestFields() =>
        Methods().Select(m => m.InputType).Append(WorkloadInput.Descriptor).DistinctBy(t => t.FullName).SelectMany(RequestProbes.Fields);

    [Test]
    public void Every_string_bytes_repeated_map_and_number_field_of_every_request_has_an_explicit_bound()
    {
        var missing = RequestFields().Select(p => p.Field).Where(RequestBounds.NeedsBound).Select(f => f.FullName)
            .Where(name => !Bounds.Table.ContainsKey(name)).Distinct().Order(StringComparer.Ordinal).ToList();
        Assert.That(missing, Is.Empty, "add a bound for these fields to RequestBoundsTable (a named option in InputLimits or ControlLimits)");

        var known = RequestFields().Select(p => p.Field.FullName).ToHashSet(StringComparer.Ordinal);
        var stale = Bounds.Table.Keys.Where(k => !known.Contains(k)).Order(StringComparer.Ordinal).ToList();
        Assert.That(stale, Is.Empty, "these bounds name fields no request reaches (renamed or removed?)");
        TestContext.Out.WriteLine($"{known.Count} request fields, {Bounds.Table.Count} explicit bounds, {Methods().Count()} RPCs");
    }

    [Test]
    public async Task The_real_server_refuses_every_field_one_past_its_bound_and_accepts_it_at_the_bound()
    {
        await using var server = await ControlTestServer.StartAsync("sqlite");
        var anonymous = server.Channel();
        var failures = new List<string>();
        var probes = 0;
        var atBound = new HashSet<string>(StringComparer.Ordinal);
        foreach (var method in Methods())
        {
            foreach (var path in RequestProbes.Fields(method.InputType))
            {
                var bound = Bounds.Table.GetValueOrDefault(path.Field.FullName);
                foreach (var probe in RequestProbes.OverBound(path, bound))
                {
                    probes++;
                    var error = await RequestProbes.CallAsync(anonymous, method, probe.Request);
                    Check(method.Name, probe, error, failures);
                }

                if (atBound.Add(path.Field.FullName) && RequestProbes.AtBound(path, bound) is { } at)
                {
                    probes++;
                    var error = await RequestProbes.CallAsync(anonymous, method, at.Request);
                    CheckAccepted(method.Name, at, error, failures);
                }
            }
        }

        // The workload input travels inside the envelope's payload; the envelope validator holds it to the same table.
        var token = await server.SignInAsync("bounds@example.com");
        var networkId = (await new NetworkService.NetworkServiceClient(server.Channel(token)).CreateNetworkAsync(new CreateNetworkRequest { Name = "bounds" })).Network.NetworkId;
        var signedIn = server.Channel(token);
        var estimate = MeshAI.Contracts.Job.V1.JobService.Descriptor.FindMethodByName("EstimateJob");
        foreach (var path in RequestProbes.Fields(WorkloadInput.Descriptor))
        {
            var bound = Bounds.Table.GetValueOrDefault(path.Field.FullName);
            var probesOfField = RequestProbes.OverBound(path, bound).ToList();
            if (RequestProbes.AtBound(path, bound) is { } at)
            {
                probesOfField.Add(at);
            }

            foreach (var probe in probesOfField)
            {
                probes++;
                var payload = probe.Request.ToByteString();
                var envelope = new JobEnvelope
                {
                    NetworkId = networkId,
                    WorkloadId = WorkloadOf((WorkloadInput)probe.Request),
                    InputManifest = new InputManifest { Payload = payload },
                };
                var error = await RequestProbes.CallAsync(signedIn, estimate, new EstimateJobRequest { Envelope = envelope });
                var wrapped = probe with { ExpectedField = "envelope.input_manifest.payload." + probe.ExpectedField };
                if (probe.ExpectedReason is null)
                {
                    CheckAccepted("EstimateJob", wrapped, error, failures);
                }
                else if (payload.Length > new MeshAI.Control.ControlLimits().MaxPayloadBytes)
                {
                    // One past the echo data bound is one past the payload bound too: the outer bound answers first.
                    Check("EstimateJob", probe with { ExpectedField = "envelope.input_manifest.payload", ExpectedReason = ErrorReasons.FieldTooLong }, error, failures);
                }
                else
                {
                    Check("EstimateJob", wrapped, error, failures);
                }
            }
        }

        TestContext.Out.WriteLine($"{probes} probes through real Kestrel; {failures.Count} failures");
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(60)));
    }

    private static void Check(string method, Probe probe, RpcException? error, List<string> failures)
    {
        var where = $"{method} {probe.Path} ({probe.Kind})";
        if (error is null)
        {
            failures.Add($"{where}: accepted");
            return;
        }

        var reason = RpcErrors.ReasonOf(error);
        var fields = RequestProbes.Violations(error).Select(v => v.Field).ToList();
        if (error.StatusCode != StatusCode.InvalidArgument || reason != probe.ExpectedReason || !fields.Any(f => f.StartsWith(probe.ExpectedField, StringComparison.Ordinal)))
        {
            failures.Add($"{where}: expected INVALID_ARGUMENT {probe.ExpectedReason} at {probe.ExpectedField}, got {error.StatusCode} {reason} at [{string.Join(", ", fields)}]: {error.Status.Detail}");
        }
    }

    private static void CheckAccepted(string method, Probe probe, RpcException? error, List<string> failures)
    {
        if (error is null)
        {
            return;
        }

        if (error.StatusCode is StatusCode.Unknown or StatusCode.Internal || RpcErrors.ReasonOf(error) is null)
        {
            failures.Add($"{method} {probe.Path} at its bound: {error.StatusCode} without a specific reason: {error.Status.Detail}");
            return;
        }

        var refused = RequestProbes.Violations(error).Where(v => v.Field.StartsWith(probe.ExpectedField, StringComparison.Ordinal) && BoundReasons.Contains(RpcErrors.ReasonOf(error))).ToList();
        if (refused.Count > 0)
        {
            failures.Add($"{method} {probe.Path} at its bound was refused: {refused[0].Field}: {refused[0].Description}");
        }
    }

    private static WorkloadClass WorkloadOf(WorkloadInput input) => input.InputCase switch
    {
        WorkloadInput.InputOneofCase.Embeddings => WorkloadClass.Embeddings,
        WorkloadInput.InputOneofCase.Ocr => WorkloadClass.OcrPreprocess,
        WorkloadInput.InputOneofCase.Chat => WorkloadClass.SmallChat,
        WorkloadInput.InputOneofCase.Transcribe => WorkloadClass.AudioTranscribeChunked,
        WorkloadInput.InputOneofCase.Batch => WorkloadClass.BatchJobsEvalOrSynth,
        _ => WorkloadClass.DiagnosticEcho,
    };
}

#pragma warning disable CA1861 // expected values read best inline
using System.Diagnostics;
using MeshAI.Common.Observability;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Observability;

/// <summary>W3C trace-context propagation helpers: every hop of a job lands in the job's trace.</summary>
[TestFixture]
[Category("Unit")]
[NonParallelizable]
public sealed class MeshTelemetryTests : IDisposable
{
    private ActivityListener? _listener;
    private readonly List<Activity> _stopped = [];

    [SetUp]
    public void Listen()
    {
        _stopped.Clear();
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == MeshTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => _stopped.Add(a),
        };
        ActivitySource.AddActivityListener(_listener);
    }

    [TearDown]
    public void Stop() => Dispose();

    /// <inheritdoc />
    public void Dispose()
    {
        _listener?.Dispose();
        _listener = null;
    }

    [Test]
    public void A_span_started_from_a_traceparent_is_its_child_and_formats_back_to_w3c()
    {
        const string parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        using (var span = MeshTelemetry.StartJobSpan("meshai.agent.job", ActivityKind.Consumer, "job_1", parent))
        {
            Assert.That(span, Is.Not.Null);
            Assert.That(span!.TraceId.ToHexString(), Is.EqualTo("4bf92f3577b34da6a3ce929d0e0e4736"));
            Assert.That(span.ParentSpanId.ToHexString(), Is.EqualTo("00f067aa0ba902b7"));
            Assert.That(span.GetTagItem(MeshTelemetry.JobIdKey), Is.EqualTo("job_1"));
            Assert.That(span.GetBaggageItem(MeshTelemetry.JobIdKey), Is.EqualTo("job_1"), "logs inside the span carry the job id");
            Assert.That(MeshTelemetry.TraceParent(span), Does.Match("^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$"));
            Assert.That(MeshTelemetry.CurrentTraceParent(), Is.EqualTo(MeshTelemetry.TraceParent(span)));
        }

        Assert.That(_stopped.Select(a => a.OperationName), Is.EqualTo(new[] { "meshai.agent.job" }));
    }

    [Test]
    public void Without_a_traceparent_a_span_joins_the_jobs_trace_id_and_links_a_foreign_caller()
    {
        const string traceId = "0af7651916cd43dd8448eb211c80319c";
        using var caller = MeshTelemetry.Source.StartActivity("caller");
        using var span = MeshTelemetry.StartJobSpan("meshai.job.submit", ActivityKind.Internal, "job_2", traceId: traceId);
        Assert.That(span!.TraceId.ToHexString(), Is.EqualTo(traceId));
        Assert.That(span.Links.Select(l => l.Context.TraceId), Is.EqualTo(new[] { caller!.TraceId }), "the caller's own trace is linked");
    }

    [Test]
    public void A_span_in_the_callers_trace_is_its_child()
    {
        using var caller = MeshTelemetry.Source.StartActivity("http");
        using var span = MeshTelemetry.StartJobSpan("meshai.job.submit", ActivityKind.Internal, "job_3", traceId: caller!.TraceId.ToHexString());
        Assert.That(span!.ParentSpanId, Is.EqualTo(caller.SpanId));
        Assert.That(MeshTelemetry.CurrentOrNewTraceId(), Is.EqualTo(caller.TraceId.ToHexString()));
    }

    [TestCase("4bf92f3577b34da6a3ce929d0e0e4736", true)]
    [TestCase("00000000000000000000000000000000", false)]
    [TestCase("4BF92F3577B34DA6A3CE929D0E0E4736", false)]
    [TestCase("trace-1", false)]
    [TestCase("", false)]
    public void Trace_ids_are_32_lower_hex_digits_not_all_zero(string value, bool valid) =>
        Assert.That(MeshTelemetry.IsTraceId(value), Is.EqualTo(valid));

    [Test]
    public void Nothing_is_recorded_when_nobody_listens()
    {
        Dispose();
        Assert.That(MeshTelemetry.StartJobSpan("meshai.job.offer", ActivityKind.Producer, "job_4", traceId: "4bf92f3577b34da6a3ce929d0e0e4736"), Is.Null);
        Assert.That(MeshTelemetry.TraceParent(null), Is.Empty);
    }
}

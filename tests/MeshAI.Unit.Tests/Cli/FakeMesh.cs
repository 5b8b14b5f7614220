using Grpc.Core;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Unit.Tests.Cli;

/// <summary>An in-memory gRPC call invoker: unary and server-streaming handlers keyed by method name, with a log of calls.</summary>
internal sealed class FakeMesh : CallInvoker
{
    private readonly Dictionary<string, Func<object, object>> unary = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Func<object, IEnumerable<object>>> streaming = new(StringComparer.Ordinal);

    /// <summary>Method name and authorization header of every call, in order.</summary>
    public List<(string Method, object Request, string? Authorization)> Calls { get; } = [];

    public FakeMesh OnUnary<TRequest, TResponse>(string method, Func<TRequest, TResponse> handler)
    {
        unary[method] = request => handler((TRequest)request)!;
        return this;
    }

    public FakeMesh OnStream<TRequest, TResponse>(string method, Func<TRequest, IEnumerable<TResponse>> handler)
    {
        streaming[method] = request => handler((TRequest)request).Cast<object>();
        return this;
    }

    public T Request<T>(string method) => (T)Calls.Last(c => c.Method == method).Request;

    public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
        (TResponse)Handle(method, options, request);

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        Task<TResponse> response;
        try
        {
            response = Task.FromResult((TResponse)Handle(method, options, request));
        }
        catch (RpcException ex)
        {
            response = Task.FromException<TResponse>(ex);
        }

        return new AsyncUnaryCall<TResponse>(response, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
    }

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(
        Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        Record(method, options, request!);
        if (method.Name == "RunJob" && !streaming.ContainsKey("RunJob") && request is RunJobRequest run)
        {
            var composed = new ListReader<TResponse>(SubmitThenWatch(run, options).Cast<TResponse>());
            return new AsyncServerStreamingCall<TResponse>(composed, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
        }

        if (!streaming.TryGetValue(method.Name, out var handler))
        {
            throw new RpcException(new Status(StatusCode.Unimplemented, "fake: no handler for " + method.Name));
        }

        var reader = new ListReader<TResponse>(handler(request!).Cast<TResponse>());
        return new AsyncServerStreamingCall<TResponse>(reader, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
    }

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
        throw new NotSupportedException();

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
        throw new NotSupportedException();

    private object Handle<TRequest, TResponse>(Method<TRequest, TResponse> method, CallOptions options, TRequest request)
    {
        Record(method, options, request!);
        return unary.TryGetValue(method.Name, out var handler)
            ? handler(request!)
            : throw new RpcException(new Status(StatusCode.Unimplemented, "fake: no handler for " + method.Name));
    }

    private void Record(IMethod method, CallOptions options, object request) =>
        Calls.Add((method.Name, request, options.Headers?.GetValue("authorization")));

    // RunJob without its own handler is what the server composes it from: the SubmitJob handler's job as the first frame,
    // then the WatchJob handler's frames (both recorded as calls, so tests can read the submitted envelope). An error of the
    // SubmitJob handler surfaces at the first MoveNext, as a server-streaming call's would.
    private IEnumerable<object> SubmitThenWatch(RunJobRequest run, CallOptions options)
    {
        var submit = new SubmitJobRequest { Envelope = run.Envelope, IdempotencyKey = run.IdempotencyKey };
        Calls.Add(("SubmitJob", submit, options.Headers?.GetValue("authorization")));
        var job = unary.TryGetValue("SubmitJob", out var submitHandler)
            ? ((SubmitJobResponse)submitHandler(submit)).Job
            : throw new RpcException(new Status(StatusCode.Unimplemented, "fake: no handler for SubmitJob"));
        yield return new RunJobResponse { Frame = new WatchJobResponse { Status = new JobStatusFrame { Job = job } } };
        var watch = new WatchJobRequest { NetworkId = run.Envelope.NetworkId, JobId = job.JobId };
        Calls.Add(("WatchJob", watch, options.Headers?.GetValue("authorization")));
        if (!streaming.TryGetValue("WatchJob", out var watchHandler))
        {
            throw new RpcException(new Status(StatusCode.Unimplemented, "fake: no handler for WatchJob"));
        }

        foreach (var frame in watchHandler(watch))
        {
            yield return new RunJobResponse { Frame = (WatchJobResponse)frame };
        }
    }

    private sealed class ListReader<T>(IEnumerable<T> items) : IAsyncStreamReader<T>
    {
        private readonly IEnumerator<T> enumerator = items.GetEnumerator();

        public T Current => enumerator.Current;

        public Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return Task.FromResult(enumerator.MoveNext());
        }
    }
}

using Grpc.Core;

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

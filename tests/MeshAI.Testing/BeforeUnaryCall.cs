using Grpc.Core;
using Grpc.Core.Interceptors;

namespace MeshAI.Testing;

/// <summary>
/// A client interceptor that runs <paramref name="action"/> just before each unary call of the gRPC method named
/// <paramref name="method"/> (e.g. "SubmitJob") is sent: a test or bench does something at that moment (stamp a clock,
/// tamper with stored bytes) while the product's client runs unchanged.
/// </summary>
public sealed class BeforeUnaryCall(string method, Action action) : Interceptor
{
    /// <inheritdoc />
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        if (context.Method.Name == method)
        {
            action();
        }

        return continuation(request, context);
    }
}

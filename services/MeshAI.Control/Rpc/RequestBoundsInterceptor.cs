using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace MeshAI.Control.Rpc;

/// <summary>
/// Runs <see cref="RequestBounds"/> on every request message before authorisation and service code: the single request of
/// unary and server-streaming calls, and each message of client and duplex streams as it is read (the relay's agent frames).
/// </summary>
public sealed class RequestBoundsInterceptor(RequestBounds bounds) : Interceptor
{
    /// <inheritdoc />
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Check(request);
        return continuation(request, context);
    }

    /// <inheritdoc />
    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Check(request);
        return continuation(request, responseStream, context);
    }

    /// <inheritdoc />
    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        return continuation(new BoundedReader<TRequest>(requestStream, bounds), context);
    }

    /// <inheritdoc />
    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        return continuation(new BoundedReader<TRequest>(requestStream, bounds), responseStream, context);
    }

    private void Check<TRequest>(TRequest request)
    {
        if (request is IMessage message)
        {
            bounds.Validate(message);
        }
    }

    /// <summary>A request stream whose every message is checked as it arrives; an undecodable one is MALFORMED_REQUEST.</summary>
    private sealed class BoundedReader<T>(IAsyncStreamReader<T> inner, RequestBounds bounds) : IAsyncStreamReader<T>
    {
        public T Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            bool more;
            try
            {
                more = await inner.MoveNext(cancellationToken);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw RequestDecoding.Malformed(typeof(T), e);
            }

            if (more && inner.Current is IMessage message)
            {
                bounds.Validate(message);
            }

            return more;
        }
    }
}

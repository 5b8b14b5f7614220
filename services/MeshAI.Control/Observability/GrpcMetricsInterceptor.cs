using System.Diagnostics;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace MeshAI.Control.Observability;

/// <summary>
/// gRPC server metrics in the names Prometheus users know from go-grpc-prometheus: grpc_server_handled_total by status code
/// and grpc_server_handling_seconds, per service and method. Registered first, so refusals by the authorisation layer count.
/// </summary>
public sealed class GrpcMetricsInterceptor(MeshMetrics metrics) : Interceptor
{
    /// <inheritdoc />
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation) =>
        ObserveAsync(context, () => continuation(request, context));

    /// <inheritdoc />
    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation) =>
        ObserveAsync(context, () => continuation(requestStream, context));

    /// <inheritdoc />
    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation) =>
        ObserveAsync(context, async () =>
        {
            await continuation(request, responseStream, context);
            return true;
        });

    /// <inheritdoc />
    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        ObserveAsync(context, async () =>
        {
            await continuation(requestStream, responseStream, context);
            return true;
        });

    private async Task<T> ObserveAsync<T>(ServerCallContext context, Func<Task<T>> call)
    {
        var (service, method) = Split(context.Method);
        var started = Stopwatch.GetTimestamp();
        var code = StatusCode.OK;
        try
        {
            return await call();
        }
        catch (RpcException ex)
        {
            code = ex.StatusCode;
            throw;
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            code = StatusCode.Cancelled;
            throw;
        }
        catch (Exception)
        {
            code = StatusCode.Unknown;
            throw;
        }
        finally
        {
            metrics.GrpcHandled.WithLabels(service, method, code.ToString()).Inc();
            metrics.GrpcHandling.WithLabels(service, method).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    // "/meshai.job.v1.JobService/SubmitJob" → ("meshai.job.v1.JobService", "SubmitJob").
    private static (string Service, string Method) Split(string fullMethod)
    {
        var slash = fullMethod.LastIndexOf('/');
        return slash > 0 ? (fullMethod[1..slash], fullMethod[(slash + 1)..]) : (fullMethod, "");
    }
}

using Grpc.AspNetCore.Server;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Rpc;

/// <summary>Composition of the RPC edge: the error mapper (outermost) and the bounds layer (before authorisation).</summary>
public static class RpcLayerExtensions
{
    /// <summary>Registers <see cref="InputLimits"/>, <see cref="RequestBounds"/> and both interceptors, ordered first whatever registers later.</summary>
    public static IServiceCollection AddRpcLayer(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<InputLimits>().Bind(configuration.GetSection(InputLimits.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton(sp => new RequestBounds(sp.GetRequiredService<IOptions<InputLimits>>().Value, sp.GetRequiredService<IOptions<ControlPlaneOptions>>().Value.Limits));
        services.TryAddSingleton<RpcExceptionMapper>();
        services.TryAddSingleton<ErrorMappingInterceptor>();
        services.TryAddSingleton<RequestBoundsInterceptor>();
        services.AddGrpc();
        services.PostConfigure<GrpcServiceOptions>(o =>
        {
            // Interceptors run in list order: errors outermost, then bounds, then whatever the host and authorisation added.
            var own = new[] { typeof(ErrorMappingInterceptor), typeof(RequestBoundsInterceptor) };
            foreach (var registration in o.Interceptors.Where(r => own.Contains(r.Type)).ToList())
            {
                o.Interceptors.Remove(registration);
            }

            o.Interceptors.Insert(0, InterceptorRegistrationOf<ErrorMappingInterceptor>());
            o.Interceptors.Insert(1, InterceptorRegistrationOf<RequestBoundsInterceptor>());
        });
        return services;
    }

    private static InterceptorRegistration InterceptorRegistrationOf<T>() where T : Grpc.Core.Interceptors.Interceptor
    {
        var scratch = new InterceptorCollection();
        scratch.Add<T>();
        return scratch[0];
    }
}

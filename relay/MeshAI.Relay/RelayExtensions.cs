using MeshAI.Common.Bus;
using MeshAI.Common.Seams;
using MeshAI.Relay.Api;
using MeshAI.Relay.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace MeshAI.Relay;

/// <summary>Composition of the relay into any ASP.NET Core host (alone, or beside the control plane).</summary>
public static class RelayExtensions
{
    /// <summary>
    /// Registers the relay: <see cref="RelayHub"/> as <see cref="IJobDispatcher"/>, <see cref="InMemoryPresenceDirectory"/> as
    /// <see cref="IPresenceDirectory"/> (unless one is registered already) and <see cref="RelayOptions"/> from section <c>Relay</c>.
    /// A top-level <c>heartbeat-grace-seconds</c> (the server's command-line option) fills in the grace when the section does not set it.
    /// The host must register <see cref="IDeviceAuthority"/>, <see cref="IJobEventSink"/> and <see cref="IDeviceStatusSource"/> (the control plane does).
    /// </summary>
    public static IServiceCollection AddRelay(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddMeshBus(configuration);
        services.TryAddSingleton<RelayHub>();
        services.TryAddSingleton(sp => new Lazy<RelayHub>(sp.GetRequiredService<RelayHub>));
        services.TryAddSingleton<BusJobEventSink>();
        services.AddHostedService(sp => sp.GetRequiredService<BusJobEventSink>());
        services.TryAddSingleton<IJobEventSink>(sp => sp.GetRequiredService<BusJobEventSink>());
        services.TryAddSingleton(sp => new Lazy<IJobEventSink>(sp.GetRequiredService<IJobEventSink>));
        services.TryAddSingleton<IJobDispatcher>(sp => sp.GetRequiredService<RelayHub>());
        services.TryAddSingleton<ILocalRelay>(sp => sp.GetRequiredService<RelayHub>()); // a control plane in this process offers through it (#11)
        services.TryAddSingleton<WebRelaySessions>();
        services.TryAddSingleton<INetworkUpdateSource, NoNetworkUpdates>(); // the control plane registers the real one first

        services.AddGrpc();
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions<RelayServiceImpl>>()
            .Configure<IOptions<RelayOptions>>((grpc, relay) =>
            {
                grpc.MaxReceiveMessageSize = relay.Value.MaxFrameBytes;
                grpc.MaxSendMessageSize = relay.Value.MaxFrameBytes;
            });
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions<WebRelayServiceImpl>>()
            .Configure<IOptions<RelayOptions>>((grpc, relay) =>
            {
                grpc.MaxReceiveMessageSize = relay.Value.MaxFrameBytes;
                grpc.MaxSendMessageSize = relay.Value.MaxFrameBytes;
            });
        return services;
    }

    /// <summary>
    /// Registers what every instance shares through the bus (any role): <see cref="IMeshBus"/> (in-process unless the host
    /// registered Redis first), <see cref="BusNames"/> (prefix <c>Bus:Prefix</c>), <see cref="RelayOptions"/> and the
    /// presence directory (<see cref="BusPresenceDirectory"/>: a local mirror fed by the bus).
    /// </summary>
    public static IServiceCollection AddMeshBus(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        if (services.Any(d => d.ServiceType == typeof(BusNames)))
        {
            return services;
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IMeshBus>(sp => new InProcessMeshBus(sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(new BusNames(configuration["Bus:Prefix"] is { Length: > 0 } prefix ? prefix : "meshai:"));
        services.TryAddSingleton<BusPresenceDirectory>();
        services.TryAddSingleton<IPresenceDirectory>(sp => sp.GetRequiredService<BusPresenceDirectory>());
        services.AddHostedService(sp => sp.GetRequiredService<BusPresenceDirectory>());
        var section = configuration.GetSection(RelayOptions.SectionName);
        services.AddOptions<RelayOptions>()
            .Bind(section)
            .Configure(o =>
            {
                if (section[nameof(RelayOptions.HeartbeatGraceSeconds)] is null &&
                    int.TryParse(configuration["heartbeat-grace-seconds"] ?? configuration["HeartbeatGraceSeconds"], out var grace))
                {
                    o.HeartbeatGraceSeconds = grace;
                }
            })
            .ValidateDataAnnotations()
            .ValidateOnStart();

        return services;
    }

    /// <summary>
    /// Maps the relay's gRPC services: <c>meshai.relay.v1.RelayService</c> (native agents, bidi) and
    /// <c>meshai.relay.v1.WebRelayService</c> (browser devices over gRPC-Web; the host registers <see cref="IDeviceStatusSource"/>).
    /// </summary>
    public static IEndpointRouteBuilder MapRelay(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGrpcService<RelayServiceImpl>();
        endpoints.MapGrpcService<WebRelayServiceImpl>();
        return endpoints;
    }
}

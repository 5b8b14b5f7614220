using MeshAI.Common.Seams;
using MeshAI.Control.Api;
using MeshAI.Control.Devices;
using MeshAI.Control.Gateway;
using MeshAI.Control.Identity;
using MeshAI.Control.Jobs;
using MeshAI.Control.Ledger;
using MeshAI.Control.Networks;
using MeshAI.Control.Rpc;
using MeshAI.Control.Scheduling;
using MeshAI.Control.Security;
using MeshAI.Control.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace MeshAI.Control;

/// <summary>Composition of the control plane into any ASP.NET Core host.</summary>
public static class ControlPlaneExtensions
{
    /// <summary>
    /// Registers the control plane from configuration section <c>Control</c> (<see cref="ControlPlaneOptions"/>): the store
    /// (SQLite or PostgreSQL, migrated at start), identity, networks, devices, jobs, ledger, the placement policy, and the
    /// relay seams it implements (<see cref="IDeviceAuthority"/>, <see cref="IJobEventSink"/>). The host must provide
    /// <see cref="IJobDispatcher"/> and <see cref="IPresenceDirectory"/> (AddRelay does) and set <see cref="ServerEndpoint"/> once bound.
    /// </summary>
    public static IServiceCollection AddControlPlane(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<ControlPlaneOptions>()
            .Bind(configuration.GetSection(ControlPlaneOptions.Section))
            .ValidateDataAnnotations()
            .Validate(o => o.Store != "postgres" || !string.IsNullOrWhiteSpace(o.PostgresConnectionString), "Control:PostgresConnectionString is required when Store is postgres")
            .ValidateOnStart();

        services.TryAddSingleton(TimeProvider.System);
        // The bus (the host registers Redis for scale-out; AddMeshBus of the relay registers presence over it).
        services.TryAddSingleton<MeshAI.Common.Bus.IMeshBus>(sp => new MeshAI.Common.Bus.InProcessMeshBus(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(new MeshAI.Common.Bus.BusNames(configuration["Bus:Prefix"] is { Length: > 0 } prefix ? prefix : "meshai:"));
        services.TryAddSingleton<ServerEndpoint>();
        services.TryAddSingleton<ISqlDialect>(sp =>
        {
            var o = sp.GetRequiredService<IOptions<ControlPlaneOptions>>().Value;
            if (o.Store == "postgres")
            {
                return new PostgresDialect(o.PostgresConnectionString!);
            }

            // The database file is created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
            var path = Path.Combine(MeshAI.Common.PrivateFiles.CreateDirectory(o.DataDir), "meshai.db");
            MeshAI.Common.PrivateFiles.EnsureFile(path);
            return new SqliteDialect(path);
        });
        services.TryAddSingleton(sp => MasterKey.LoadOrCreate(Path.Combine(sp.GetRequiredService<IOptions<ControlPlaneOptions>>().Value.DataDir, "master.key")));
        services.TryAddSingleton<Database>();
        services.TryAddSingleton<Migrator>();
        services.AddHostedService<StoreStartup>();

        services.TryAddSingleton<IdentityRepository>();
        services.TryAddSingleton<NetworkRepository>();
        services.TryAddSingleton<DeviceRepository>();
        services.TryAddSingleton<JobRepository>();
        services.TryAddSingleton<LedgerRepository>();

        services.TryAddSingleton<SessionAuthenticator>();
        services.TryAddSingleton<IMagicLinkSender>(sp =>
            string.IsNullOrWhiteSpace(sp.GetRequiredService<IOptions<ControlPlaneOptions>>().Value.Smtp.Host)
                ? ActivatorUtilities.CreateInstance<OutboxMagicLinkSender>(sp)
                : ActivatorUtilities.CreateInstance<SmtpMagicLinkSender>(sp));
        services.TryAddSingleton<LoginFlows>();

        services.TryAddSingleton<NetworkAccess>();
        services.TryAddSingleton<NetworkKeyVault>();
        services.TryAddSingleton<NetworkUpdateRepository>();
        services.TryAddSingleton<ControlLeases>();
        services.TryAddSingleton<NetworkUpdates>();
        services.TryAddSingleton<INetworkUpdateSource>(sp => sp.GetRequiredService<NetworkUpdates>());
        services.TryAddSingleton<NetworkRegistry>();
        services.TryAddSingleton<NetworkWatchRepository>();
        services.TryAddSingleton<NetworkWatch>();
        services.TryAddSingleton<LedgerQueries>();
        services.TryAddSingleton<LedgerWriter>();
        services.TryAddSingleton<LedgerReconciler>();
        services.TryAddSingleton<LedgerExport>();
        services.TryAddSingleton<CreditRates>();
        services.TryAddSingleton<JobBudget>();

        services.TryAddSingleton<DeviceEnrollment>();
        services.TryAddSingleton<DeviceDirectory>();
        services.TryAddSingleton<IDeviceAuthority, DeviceAuthority>();
        services.TryAddSingleton<IDeviceStatusSource, DeviceStatusSource>();

        services.TryAddSingleton<IPlacementPolicy, LinearPlacementPolicy>();
        services.TryAddSingleton<PolicyRepository>();
        services.TryAddSingleton<PolicyStore>();
        services.TryAddSingleton<ModelAvailability>();
        services.TryAddSingleton<NetworkSettingsEditor>();
        services.TryAddSingleton<NetworkSettingsRules>();
        services.TryAddSingleton<JobPlanner>();
        services.TryAddSingleton<JobWatchHub>();
        services.TryAddSingleton<JobSettler>();
        services.TryAddSingleton<Jobs.Execution.JobPlacer>();
        services.TryAddSingleton<Jobs.Canaries.CanaryKnownAnswers>();
        services.TryAddSingleton<Jobs.Execution.JobPlaneServices>();
        services.TryAddSingleton<ControlInstance>();
        services.TryAddSingleton<JobRunner>();
        services.TryAddSingleton<IJobDispatcher, BusJobDispatcher>();
        services.TryAddSingleton<ControlBusEndpoint>();
        // A relay-only process uses the store for device authentication but runs no jobs.
        if (!string.Equals(configuration["role"], "relay", StringComparison.OrdinalIgnoreCase))
        {
            services.AddHostedService(sp => sp.GetRequiredService<ControlBusEndpoint>());
            // A relay in this process hands the reports of jobs run here straight to the runner, not over the bus (#11).
            services.TryAddSingleton<ILocalJobOwner>(sp => sp.GetRequiredService<JobRunner>());
            services.AddHostedService<JobLeaseService>();
            services.AddHostedService<AgentSettingsPublisher>();
        }
        services.TryAddSingleton<JobSubmission>();
        services.TryAddSingleton<JobQueries>();
        services.TryAddSingleton<Blobs.BlobStore>();
        services.TryAddSingleton<Blobs.JobBlobAccess>();
        services.TryAddSingleton<ModelRepository>();
        services.TryAddSingleton<Models.ModelCatalog>();
        services.AddSecurity(configuration);
        services.AddOpenAiGateway(configuration); // the OpenAI-compatible HTTP adapter over the same job plane (#17)
        services.AddRpcLayer(configuration);

        services.AddGrpc();
        return services;
    }

    /// <summary>Maps the control plane's gRPC services, the GET /auth/magic endpoint and the OpenAI-compatible gateway (/v1/*).</summary>
    public static IEndpointRouteBuilder MapControlPlane(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGrpcService<IdentityApi>();
        endpoints.MapGrpcService<NetworkApi>();
        endpoints.MapGrpcService<DeviceApi>();
        endpoints.MapGrpcService<JobApi>();
        endpoints.MapGrpcService<LedgerApi>();
        endpoints.MapGrpcService<AuditApi>();
        endpoints.MapGrpcService<PolicyApi>();
        endpoints.MapGrpcService<ModelApi>();
        endpoints.MapGrpcService<BlobApi>();
        endpoints.MapGet(MagicLinkEndpoint.Path, MagicLinkEndpoint.HandleAsync);
        endpoints.MapGet(PasskeyPage.Path, PasskeyPage.Handle);
        endpoints.MapOpenAiGateway();
        return endpoints;
    }
}

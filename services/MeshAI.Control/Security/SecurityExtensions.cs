using MeshAI.Control.Devices;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MeshAI.Control.Security;

/// <summary>Composition of identity and security: audit, members, API keys, key rotation, renewal, end-to-end planning, the authorisation layer.</summary>
public static class SecurityExtensions
{
    /// <summary>Registers the security services (called by AddControlPlane).</summary>
    public static IServiceCollection AddSecurity(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<SecurityOptions>().Bind(configuration.GetSection(SecurityOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton<SecurityRepository>();
        services.TryAddSingleton<AccessCache>();
        services.AddHostedService(sp => sp.GetRequiredService<AccessCache>());
        services.TryAddSingleton<AuditLog>();
        services.TryAddSingleton<MemberDirectory>();
        services.TryAddSingleton<ApiKeys>();
        services.TryAddSingleton<PasskeyCeremonies>();
        services.AddOptions<OidcOptions>().Bind(configuration.GetSection(OidcOptions.Section));
        services.AddHttpClient(nameof(OidcLogin), c => c.Timeout = TimeSpan.FromSeconds(15));
        services.TryAddSingleton<OidcLogin>();
        services.TryAddSingleton<NetworkKeyRotation>();
        services.TryAddSingleton<ScheduledKeyRotation>();
        services.AddHostedService(sp => sp.GetRequiredService<ScheduledKeyRotation>());
        services.TryAddSingleton<CertificateRenewal>();
        services.TryAddSingleton<RecipientPlanner>();
        services.TryAddSingleton<RateLimits>();
        services.TryAddSingleton<CallAuthorizer>();
        services.TryAddSingleton<AuthorizationInterceptor>();
        services.AddGrpc(o => o.Interceptors.Add<AuthorizationInterceptor>());
        return services;
    }
}

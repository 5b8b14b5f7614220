using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Gateway;

/// <summary>Composition of the OpenAI-compatible gateway into the control plane's host.</summary>
public static class GatewayExtensions
{
    /// <summary>Registers <see cref="OpenAiGateway"/> and <see cref="GatewayOptions"/> (section Control:Gateway).</summary>
    public static IServiceCollection AddOpenAiGateway(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<GatewayOptions>().Bind(configuration.GetSection(GatewayOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton<OpenAiGateway>();
        return services;
    }

    /// <summary>Maps POST /v1/embeddings, POST /v1/chat/completions and GET /v1/models (unless Control:Gateway:Enabled is false).</summary>
    public static IEndpointRouteBuilder MapOpenAiGateway(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        if (!endpoints.ServiceProvider.GetRequiredService<IOptions<GatewayOptions>>().Value.Enabled)
        {
            return endpoints;
        }

        endpoints.MapPost("/v1/embeddings", (HttpContext http, OpenAiGateway gateway) => gateway.EmbeddingsAsync(http));
        endpoints.MapPost("/v1/chat/completions", (HttpContext http, OpenAiGateway gateway) => gateway.ChatCompletionsAsync(http));
        endpoints.MapGet("/v1/models", (HttpContext http, OpenAiGateway gateway) => gateway.ModelsAsync(http));
        return endpoints;
    }
}

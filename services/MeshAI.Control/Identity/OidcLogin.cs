using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using MeshAI.Common;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Control.Security;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace MeshAI.Control.Identity;

/// <summary>The OAuth/OIDC provider (section <c>Control:Security:Oidc</c>); login by OIDC is off while Issuer is empty.</summary>
public sealed class OidcOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Control:Security:Oidc";

    /// <summary>The provider's issuer (the id_token's <c>iss</c> must equal it).</summary>
    public string? Issuer { get; set; }

    /// <summary>Our client id (the id_token's <c>aud</c> must contain it).</summary>
    public string? ClientId { get; set; }

    /// <summary>Client secret sent to the token endpoint (client_secret_post); empty for public clients (PKCE only).</summary>
    public string? ClientSecret { get; set; }

    /// <summary>Authorisation endpoint the user is sent to.</summary>
    public string? AuthorizationEndpoint { get; set; }

    /// <summary>Token endpoint the code is exchanged at.</summary>
    public string? TokenEndpoint { get; set; }

    /// <summary>JWKS with the keys id_tokens are signed with.</summary>
    public string? JwksUri { get; set; }

    /// <summary>Scopes requested.</summary>
    public string Scopes { get; set; } = "openid email profile";

    /// <summary>Redirect URIs a login may name; empty: any absolute URI (the provider enforces its registered ones).</summary>
    public string[] RedirectUris { get; set; } = [];

    /// <summary>Whether every setting needed for a login is present.</summary>
    public bool IsConfigured =>
        !string.IsNullOrWhiteSpace(Issuer) && !string.IsNullOrWhiteSpace(ClientId) && !string.IsNullOrWhiteSpace(AuthorizationEndpoint) &&
        !string.IsNullOrWhiteSpace(TokenEndpoint) && !string.IsNullOrWhiteSpace(JwksUri);
}

/// <summary>
/// OAuth 2.0 authorisation-code login with PKCE (S256) and OIDC id_token validation: signature (provider JWKS), iss, aud,
/// lifetime and the nonce bound to the single-use state. The user is matched (or signed up) by verified email.
/// </summary>
public sealed class OidcLogin(
    SecurityRepository store,
    LoginFlows logins,
    AuditLog audit,
    IHttpClientFactory http,
    IOptions<OidcOptions> options,
    IOptions<SecurityOptions> security,
    TimeProvider clock)
{
    private const string Kind = "oidc";

    /// <summary>Step 1: the provider URL (with state, nonce and the PKCE challenge) and the state to expect back.</summary>
    public async Task<StartOidcLoginResponse> StartAsync(string redirectUri, CancellationToken ct)
    {
        var provider = Configured();
        if (!Uri.TryCreate(redirectUri, UriKind.Absolute, out var redirect) || (redirect.Scheme != Uri.UriSchemeHttps && redirect.Scheme != Uri.UriSchemeHttp))
        {
            throw RpcErrors.InvalidArgument("redirect_uri", "an absolute http(s) URI is required");
        }

        if (provider.RedirectUris.Length > 0 && !provider.RedirectUris.Contains(redirectUri, StringComparer.Ordinal))
        {
            throw RpcErrors.InvalidArgument("redirect_uri", "not one of the configured redirect URIs");
        }

        var state = Secrets.NewToken("ost");
        var nonce = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(24));
        var verifier = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
        var challenge = Base64UrlEncoder.Encode(SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(verifier)));
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        await store.InsertCeremonyAsync(new CeremonyRow
        {
            CeremonyId = Secrets.Hash(state),
            Kind = Kind,
            DataJson = JsonSerializer.Serialize(new PendingLogin(nonce, verifier, redirectUri)),
            CreateTimeMs = now,
            ExpireTimeMs = now + security.Value.CeremonyTtlSeconds * 1000L,
        }, ct);
        var query = new Dictionary<string, string>
        {
            ["response_type"] = "code",
            ["client_id"] = provider.ClientId!,
            ["redirect_uri"] = redirectUri,
            ["scope"] = provider.Scopes,
            ["state"] = state,
            ["nonce"] = nonce,
            ["code_challenge"] = challenge,
            ["code_challenge_method"] = "S256",
        };
        var separator = provider.AuthorizationEndpoint!.Contains('?', StringComparison.Ordinal) ? "&" : "?";
        var url = provider.AuthorizationEndpoint + separator + string.Join("&", query.Select(kv => Uri.EscapeDataString(kv.Key) + "=" + Uri.EscapeDataString(kv.Value)));
        return new StartOidcLoginResponse { AuthorizationUrl = url, State = state };
    }

    /// <summary>Step 2: exchanges the code (with the PKCE verifier), validates the id_token and opens a session.</summary>
    public async Task<IssuedSession> CompleteAsync(string state, string code, string clientName, CancellationToken ct)
    {
        var provider = Configured();
        if (string.IsNullOrWhiteSpace(state))
        {
            throw RpcErrors.Required("state");
        }

        if (string.IsNullOrWhiteSpace(code))
        {
            throw RpcErrors.Required("code");
        }

        var ceremony = await store.ConsumeCeremonyAsync(Secrets.Hash(state), Kind, clock.GetUtcNow().ToUnixTimeMilliseconds(), ct)
                       ?? throw RpcErrors.FailedPrecondition("OIDC_STATE", "state", "the login is unknown, already completed or expired; start again", ErrorReasons.OidcStateInvalid);
        var pending = JsonSerializer.Deserialize<PendingLogin>(ceremony.DataJson) ?? throw new InvalidOperationException("corrupt ceremony");

        var client = http.CreateClient(nameof(OidcLogin));
        var form = new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code",
            ["code"] = code,
            ["redirect_uri"] = pending.RedirectUri,
            ["client_id"] = provider.ClientId!,
            ["code_verifier"] = pending.CodeVerifier,
        };
        if (!string.IsNullOrEmpty(provider.ClientSecret))
        {
            form["client_secret"] = provider.ClientSecret;
        }

        string idToken;
        using (var request = new HttpRequestMessage(HttpMethod.Post, provider.TokenEndpoint) { Content = new FormUrlEncodedContent(form) })
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            using var response = await client.SendAsync(request, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode)
            {
                throw RpcErrors.Unauthenticated($"the OIDC provider refused the code ({(int)response.StatusCode})", ErrorReasons.OidcLoginFailed);
            }

            using var json = JsonDocument.Parse(body);
            idToken = json.RootElement.TryGetProperty("id_token", out var token) ? token.GetString() ?? "" : "";
            if (idToken.Length == 0)
            {
                throw RpcErrors.Unauthenticated("the OIDC provider returned no id_token", ErrorReasons.OidcLoginFailed);
            }
        }

        var jwks = new JsonWebKeySet(await client.GetStringAsync(provider.JwksUri, ct));
        var validated = await new JsonWebTokenHandler().ValidateTokenAsync(idToken, new TokenValidationParameters
        {
            ValidIssuer = provider.Issuer,
            ValidAudience = provider.ClientId,
            IssuerSigningKeys = jwks.GetSigningKeys(),
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ValidateLifetime = true,
            ClockSkew = TimeSpan.FromMinutes(2),
        });
        if (!validated.IsValid)
        {
            // The library's message names keys and parameters; the caller gets the kind of failure only.
            throw RpcErrors.Unauthenticated("the id_token is not valid (" + (validated.Exception?.GetType().Name ?? "invalid") + ")", ErrorReasons.OidcLoginFailed);
        }

        var claims = validated.Claims;
        if (!claims.TryGetValue("nonce", out var nonce) || nonce as string != pending.Nonce)
        {
            throw RpcErrors.Unauthenticated("the id_token's nonce does not match this login", ErrorReasons.OidcLoginFailed);
        }

        var email = claims.TryGetValue("email", out var e) ? e as string : null;
        var verified = !claims.TryGetValue("email_verified", out var v) || v is true || (v is string s && s == "true");
        if (string.IsNullOrWhiteSpace(email) || !verified)
        {
            throw RpcErrors.Unauthenticated("the OIDC provider did not assert a verified email address", ErrorReasons.OidcLoginFailed);
        }

        var user = await logins.FindOrCreateUserAsync(email, ct);
        var session = await logins.IssueSessionAsync(user, string.IsNullOrWhiteSpace(clientName) ? "oidc" : clientName, ct);
        await audit.RecordAsync("", user.UserId, MeshAI.Contracts.Audit.V1.AuditAction.Login, session.Session.SessionId,
            new Dictionary<string, string> { ["method"] = "oidc", ["issuer"] = provider.Issuer!, ["subject"] = claims.TryGetValue("sub", out var sub) ? sub as string ?? "" : "" }, ct);
        return session;
    }

    private OidcOptions Configured()
    {
        var provider = options.Value;
        return provider.IsConfigured ? provider : throw RpcErrors.FailedPrecondition("OIDC_NOT_CONFIGURED", "oidc", "OIDC login is not configured on this server");
    }

    private sealed record PendingLogin(string Nonce, string CodeVerifier, string RedirectUri);
}

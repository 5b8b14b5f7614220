using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Integration.Tests.Control;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Security;

/// <summary>
/// OIDC authorisation code + PKCE against an in-test provider (a tiny Kestrel app that issues codes and RS256 id_tokens):
/// the happy path, single-use state, and id_tokens with a wrong nonce, audience, issuer, signing key or expiry.
/// </summary>
[TestFixture]
[Category("Integration")]
public sealed class OidcLoginTests
{
    private const string ClientId = "meshai-test-client";
    private const string ClientSecret = "test-secret-123";
    private const string RedirectUri = "https://app.example.test/oidc/callback";
    private FakeOidcProvider _provider = null!;
    private ControlTestServer _server = null!;

    /// <summary>Provider first (its URL is the issuer), then the server configured for it.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _provider = await FakeOidcProvider.StartAsync(ClientId, ClientSecret);
        _server = await ControlTestServer.StartAsync("sqlite",
            "--Control:Security:Oidc:Issuer", _provider.Issuer,
            "--Control:Security:Oidc:ClientId", ClientId,
            "--Control:Security:Oidc:ClientSecret", ClientSecret,
            "--Control:Security:Oidc:AuthorizationEndpoint", _provider.Issuer + "/authorize",
            "--Control:Security:Oidc:TokenEndpoint", _provider.Issuer + "/token",
            "--Control:Security:Oidc:JwksUri", _provider.Issuer + "/jwks");
    }

    /// <summary>Stops both.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        if (_provider is not null)
        {
            await _provider.DisposeAsync();
        }
    }

    [Test]
    public async Task Authorization_code_with_pkce_signs_the_provider_verified_email_in_and_the_state_works_once()
    {
        var identity = new IdentityService.IdentityServiceClient(_server.Channel());
        var start = await identity.StartOidcLoginAsync(new StartOidcLoginRequest { RedirectUri = RedirectUri });
        var query = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(new Uri(start.AuthorizationUrl).Query);
        Assert.That(start.AuthorizationUrl, Does.StartWith(_provider.Issuer + "/authorize?"));
        Assert.That(query["code_challenge_method"].ToString(), Is.EqualTo("S256"));
        Assert.That(query["state"].ToString(), Is.EqualTo(start.State));
        Assert.That(query["client_id"].ToString(), Is.EqualTo(ClientId));

        var code = await _provider.AuthorizeAsync(start.AuthorizationUrl, "oidc-user@example.com", TokenFlaw.None);
        var verifiedBefore = _provider.VerifiedPkce;
        var done = await identity.CompleteOidcLoginAsync(new CompleteOidcLoginRequest { State = start.State, Code = code, ClientName = "oidc test" });
        Assert.That(done.User.Email, Is.EqualTo("oidc-user@example.com"));
        Assert.That(_provider.VerifiedPkce, Is.EqualTo(verifiedBefore + 1), "the token endpoint checked the code_verifier against the S256 challenge");

        var me = await new IdentityService.IdentityServiceClient(_server.Channel(done.SessionToken)).GetCurrentUserAsync(new GetCurrentUserRequest());
        Assert.That(me.User.UserId, Is.EqualTo(done.User.UserId));

        await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, async () =>
            await identity.CompleteOidcLoginAsync(new CompleteOidcLoginRequest { State = start.State, Code = code }));
        await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, async () =>
            await identity.CompleteOidcLoginAsync(new CompleteOidcLoginRequest { State = "ost_forged", Code = code }));
    }

    [TestCase(TokenFlaw.WrongNonce)]
    [TestCase(TokenFlaw.WrongAudience)]
    [TestCase(TokenFlaw.WrongIssuer)]
    [TestCase(TokenFlaw.ForeignSigningKey)]
    [TestCase(TokenFlaw.Expired)]
    [TestCase(TokenFlaw.UnverifiedEmail)]
    public async Task An_id_token_that_fails_validation_is_refused(TokenFlaw flaw)
    {
        var identity = new IdentityService.IdentityServiceClient(_server.Channel());
        var start = await identity.StartOidcLoginAsync(new StartOidcLoginRequest { RedirectUri = RedirectUri });
        var code = await _provider.AuthorizeAsync(start.AuthorizationUrl, $"flaw-{flaw}@example.com".ToLowerInvariant(), flaw);
        var refused = await Rpc.ThrowsAsync(StatusCode.Unauthenticated, async () =>
            await identity.CompleteOidcLoginAsync(new CompleteOidcLoginRequest { State = start.State, Code = code }));
        TestContext.Out.WriteLine($"{flaw}: {refused.Status.Detail}");
    }

    [Test]
    public async Task A_code_exchanged_with_the_wrong_pkce_verifier_is_refused_by_the_provider()
    {
        var identity = new IdentityService.IdentityServiceClient(_server.Channel());
        var start = await identity.StartOidcLoginAsync(new StartOidcLoginRequest { RedirectUri = RedirectUri });
        var code = await _provider.AuthorizeAsync(start.AuthorizationUrl, "pkce@example.com", TokenFlaw.None, tamperChallenge: true);
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, async () =>
            await identity.CompleteOidcLoginAsync(new CompleteOidcLoginRequest { State = start.State, Code = code }));
    }
}

/// <summary>What is wrong with the id_token the fake provider issues.</summary>
public enum TokenFlaw
{
    /// <summary>A valid token.</summary>
    None,
    WrongNonce,
    WrongAudience,
    WrongIssuer,
    ForeignSigningKey,
    Expired,
    UnverifiedEmail,
}

/// <summary>A minimal OIDC provider: /authorize (records the request, returns a code), /token (PKCE S256 + client secret), /jwks.</summary>
public sealed class FakeOidcProvider : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly RSA _key = RSA.Create(2048);
    private readonly RSA _foreignKey = RSA.Create(2048);
    private readonly ConcurrentDictionary<string, Grant> _codes = new();
    private int _verifiedPkce;

    private FakeOidcProvider(WebApplication app) => _app = app;

    /// <summary>Base URL, also the issuer.</summary>
    public string Issuer { get; private set; } = "";

    /// <summary>How many token requests passed the PKCE check.</summary>
    public int VerifiedPkce => _verifiedPkce;

    /// <summary>Starts on a free loopback port.</summary>
    public static async Task<FakeOidcProvider> StartAsync(string clientId, string clientSecret)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var provider = new FakeOidcProvider(app);
        app.MapGet("/jwks", () => Results.Json(new { keys = new[] { provider.PublicJwk() } }));
        app.MapPost("/token", async (HttpRequest request) =>
        {
            var form = await request.ReadFormAsync();
            if (form["grant_type"] != "authorization_code" || form["client_id"] != clientId || form["client_secret"] != clientSecret)
            {
                return Results.Json(new { error = "invalid_client" }, statusCode: 401);
            }

            if (!provider._codes.TryRemove(form["code"].ToString(), out var grant) || grant.RedirectUri != form["redirect_uri"])
            {
                return Results.Json(new { error = "invalid_grant" }, statusCode: 400);
            }

            var challenge = Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(form["code_verifier"].ToString())));
            if (challenge != grant.CodeChallenge)
            {
                return Results.Json(new { error = "invalid_grant", error_description = "PKCE verification failed" }, statusCode: 400);
            }

            Interlocked.Increment(ref provider._verifiedPkce);
            return Results.Json(new { access_token = "at-" + Guid.NewGuid(), token_type = "Bearer", expires_in = 300, id_token = provider.IdToken(grant, clientId) });
        });
        await app.StartAsync();
        provider.Issuer = app.Urls.First().TrimEnd('/');
        return provider;
    }

    /// <summary>
    /// What a browser at the authorisation URL would get after the user signs in: the code from the redirect to
    /// redirect_uri (checked against the state). The provider remembers the nonce and PKCE challenge of the request.
    /// </summary>
    public Task<string> AuthorizeAsync(string authorizationUrl, string email, TokenFlaw flaw, bool tamperChallenge = false)
    {
        var query = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(new Uri(authorizationUrl).Query);
        Assert.That(query["response_type"].ToString(), Is.EqualTo("code"));
        Assert.That(query["scope"].ToString(), Does.Contain("openid"));
        var code = "code-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var challenge = query["code_challenge"].ToString();
        _codes[code] = new Grant(email, query["nonce"].ToString(), tamperChallenge ? challenge[..^2] + "xx" : challenge, query["redirect_uri"].ToString(), flaw);
        return Task.FromResult(code);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        _key.Dispose();
        _foreignKey.Dispose();
    }

    private object PublicJwk()
    {
        var parameters = _key.ExportParameters(false);
        return new { kty = "RSA", use = "sig", alg = "RS256", kid = "test-key", n = Base64UrlEncoder.Encode(parameters.Modulus), e = Base64UrlEncoder.Encode(parameters.Exponent) };
    }

    private string IdToken(Grant grant, string clientId)
    {
        var now = DateTime.UtcNow;
        var key = new RsaSecurityKey(grant.Flaw == TokenFlaw.ForeignSigningKey ? _foreignKey : _key) { KeyId = "test-key" };
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = grant.Flaw == TokenFlaw.WrongIssuer ? "https://evil.example.test" : Issuer,
            Audience = grant.Flaw == TokenFlaw.WrongAudience ? "someone-else" : clientId,
            IssuedAt = grant.Flaw == TokenFlaw.Expired ? now.AddHours(-2) : now,
            NotBefore = grant.Flaw == TokenFlaw.Expired ? now.AddHours(-2) : now.AddSeconds(-5),
            Expires = grant.Flaw == TokenFlaw.Expired ? now.AddHours(-1) : now.AddMinutes(5),
            Subject = new ClaimsIdentity([new Claim("sub", "sub-" + grant.Email)]),
            Claims = new Dictionary<string, object>
            {
                ["email"] = grant.Email,
                ["email_verified"] = grant.Flaw != TokenFlaw.UnverifiedEmail,
                ["nonce"] = grant.Flaw == TokenFlaw.WrongNonce ? "not-the-nonce" : grant.Nonce,
            },
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.RsaSha256),
        });
    }

    private sealed record Grant(string Email, string Nonce, string CodeChallenge, string RedirectUri, TokenFlaw Flaw);
}

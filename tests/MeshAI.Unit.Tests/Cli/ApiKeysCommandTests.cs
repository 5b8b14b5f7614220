#pragma warning disable CA1861 // expected values read best inline
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Contracts.Identity.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Cli;

/// <summary>`meshnet api-keys create|list|revoke` against the fake mesh (the real server runs them in the gateway end-to-end tests).</summary>
[TestFixture]
[Category("Unit")]
public sealed class ApiKeysCommandTests
{
    private static readonly Timestamp Created = Timestamp.FromDateTime(new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc));

    private static ApiKey Key(string id, string name, bool revoked = false) => new()
    {
        ApiKeyId = id, NetworkId = "net_home", UserId = "usr_ada", Name = name, Scopes = { "jobs" }, Prefix = "mak_AbCdEfGh", CreateTime = Created, Revoked = revoked,
    };

    [Test]
    public async Task Create_prints_the_secret_once_and_its_json_has_a_secret_field()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh.OnUnary<CreateApiKeyRequest, CreateApiKeyResponse>("CreateApiKey", r => new CreateApiKeyResponse { ApiKey = Key("key_1", r.Name), Secret = "mak_secret-value" });

        Assert.That(await cli.RunAsync("api-keys", "create", "openwebui", "--scope", "jobs", "--scope", "metrics:read", "--json"), Is.Zero, cli.Stderr);
        var request = cli.Mesh.Request<CreateApiKeyRequest>("CreateApiKey");
        Assert.That((request.NetworkId, request.Name), Is.EqualTo(("net_home", "openwebui")));
        Assert.That(request.Scopes, Is.EqualTo(new[] { "jobs", "metrics:read" }));
        using var json = JsonDocument.Parse(cli.Stdout);
        Assert.That(json.RootElement.GetProperty("secret").GetString(), Is.EqualTo("mak_secret-value"));
        Assert.That(json.RootElement.GetProperty("apiKeyId").GetString(), Is.EqualTo("key_1"));

        Assert.That(await cli.RunAsync("api-keys", "create", "editor"), Is.Zero, cli.Stderr);
        Assert.That(cli.Stdout, Does.Contain("Secret (shown once; store it now): mak_secret-value"));
        Assert.That(cli.Stdout, Does.Contain($"base URL {CliHarness.Server}/v1"));
    }

    [Test]
    public async Task List_shows_prefixes_never_secrets_and_revoke_names_the_key()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        cli.Mesh
            .OnUnary<ListApiKeysRequest, ListApiKeysResponse>("ListApiKeys", _ => new ListApiKeysResponse { ApiKeys = { Key("key_1", "openwebui"), Key("key_2", "old", revoked: true) } })
            .OnUnary<RevokeApiKeyRequest, RevokeApiKeyResponse>("RevokeApiKey", _ => new RevokeApiKeyResponse());

        Assert.That(await cli.RunAsync("api-keys", "list"), Is.Zero, cli.Stderr);
        Assert.That(cli.Stdout, Does.Contain("key_1").And.Contain("openwebui").And.Contain("mak_AbCdEfGh…").And.Contain("active"));
        Assert.That(cli.Stdout, Does.Contain("key_2").And.Contain("revoked"));

        Assert.That(await cli.RunAsync("api-keys", "revoke", "key_1", "--json"), Is.Zero, cli.Stderr);
        Assert.That(cli.Mesh.Request<RevokeApiKeyRequest>("RevokeApiKey").ApiKeyId, Is.EqualTo("key_1"));
        using var json = JsonDocument.Parse(cli.Stdout);
        Assert.That(json.RootElement.GetProperty("revoked").GetBoolean(), Is.True);
    }

    [Test]
    public async Task An_unknown_scope_is_a_usage_error()
    {
        using var cli = new CliHarness();
        await cli.LoginAsync();
        Assert.That(await cli.RunAsync("api-keys", "create", "x", "--scope", "admin"), Is.EqualTo(2));
        Assert.That(cli.Stderr, Does.Contain("admin"));
    }
}

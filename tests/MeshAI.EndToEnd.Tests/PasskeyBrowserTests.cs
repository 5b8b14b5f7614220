using System.Text.Json;
using Grpc.Core;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Passkeys in a real headless Chromium (system package) with a CDP virtual authenticator: the server's /auth/passkey page
/// runs the IdentityService ceremonies over gRPC-Web; tests/browser/passkey-ceremony.mjs drives it with playwright-core.
/// </summary>
[TestFixture]
[Category("Browser")]
[Category("EndToEnd")]
public sealed class PasskeyBrowserTests
{
    private const string Email = "passkey-user@example.com";
    private LocalMesh _mesh = null!;

    /// <summary>One server for the fixture.</summary>
    [OneTimeSetUp]
    public async Task StartAsync() => _mesh = await LocalMesh.StartAsync(new LocalMeshOptions());

    /// <summary>Stops the server.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task Passkey_registration_and_login_pass_in_headless_chromium_with_a_virtual_authenticator()
    {
        var token = await _mesh.SignInAsync(Email);
        using var signedIn = _mesh.Channel(token);
        var me = (await new IdentityService.IdentityServiceClient(signedIn).GetCurrentUserAsync(new GetCurrentUserRequest())).User;

        // WebAuthn refuses IP addresses as RP ids: the page is opened as https://localhost:<port> (RP id "localhost").
        var pageUrl = $"https://localhost:{new Uri(_mesh.Url).Port}/auth/passkey";
        var result = await RunBrowserAsync(pageUrl, token);

        Assert.That(result.GetProperty("origin").GetString(), Is.EqualTo($"https://localhost:{new Uri(_mesh.Url).Port}"));
        var registered = result.GetProperty("registered");
        Assert.That(registered.GetProperty("passkeyId").GetString(), Does.StartWith("pk_"));
        Assert.That(registered.GetProperty("userId").GetString(), Is.EqualTo(me.UserId));
        Assert.That(result.GetProperty("authenticatorCredentials").GetInt32(), Is.EqualTo(1));
        Assert.That(result.GetProperty("residentKey").GetBoolean(), Is.True, "a discoverable credential was created");

        foreach (var login in new[] { "byEmail", "discoverable" })
        {
            var session = result.GetProperty(login);
            Assert.That(session.GetProperty("userId").GetString(), Is.EqualTo(me.UserId), login);
            Assert.That(session.GetProperty("email").GetString(), Is.EqualTo(Email), login);
            var sessionToken = session.GetProperty("sessionToken").GetString()!;
            Assert.That(sessionToken, Is.Not.Empty.And.Not.EqualTo(token), login);
            using var passkeyChannel = _mesh.Channel(sessionToken);
            var whoami = (await new IdentityService.IdentityServiceClient(passkeyChannel).GetCurrentUserAsync(new GetCurrentUserRequest())).User;
            Assert.That(whoami.UserId, Is.EqualTo(me.UserId), $"{login}: the passkey session works on the control plane");
        }

        // The same assertion cannot be used twice: the ceremony is single-use.
        var replayed = result.GetProperty("discoverable");
        using var anonymous = _mesh.Channel();
        var replay = await Assert.ThrowsAsync<RpcException>(async () => await new IdentityService.IdentityServiceClient(anonymous).FinishPasskeyLoginAsync(new FinishPasskeyLoginRequest
        {
            CeremonyId = replayed.GetProperty("ceremonyId").GetString(),
            AssertionJson = replayed.GetProperty("assertionJson").GetString(),
        }));
        Assert.That(replay!.StatusCode, Is.EqualTo(StatusCode.FailedPrecondition));

        // Nor answer a fresh challenge: the signature covers the old one.
        var fresh = await new IdentityService.IdentityServiceClient(anonymous).BeginPasskeyLoginAsync(new BeginPasskeyLoginRequest { Email = Email });
        var stale = await Assert.ThrowsAsync<RpcException>(async () => await new IdentityService.IdentityServiceClient(anonymous).FinishPasskeyLoginAsync(new FinishPasskeyLoginRequest
        {
            CeremonyId = fresh.CeremonyId,
            AssertionJson = replayed.GetProperty("assertionJson").GetString(),
        }));
        Assert.That(stale!.StatusCode, Is.EqualTo(StatusCode.Unauthenticated), stale.Status.Detail);
    }

    private static async Task<JsonElement> RunBrowserAsync(string pageUrl, string token)
    {
        var browserDirectory = Path.Combine(RepoPaths.Root, "tests", "browser");
        if (!Directory.Exists(Path.Combine(browserDirectory, "node_modules", "playwright-core")))
        {
            Assert.Fail($"playwright-core is not installed: run `npm ci` in {browserDirectory} (./test.sh does)");
        }

        if (!File.Exists(Environment.GetEnvironmentVariable("MESHAI_CHROMIUM") ?? "/usr/bin/chromium"))
        {
            Assert.Fail("Chromium is missing: install the chromium package (./test.sh does)");
        }

        await using var run = await ProcessRunner.RunAsync(new ProcessRunnerOptions
        {
            FileName = "node",
            Arguments = [Path.Combine(browserDirectory, "passkey-ceremony.mjs"), "--url", pageUrl, "--token", token, "--email", Email],
            WorkingDirectory = browserDirectory,
            Name = "chromium-passkey",
        }, TimeSpan.FromSeconds(120));
        var line = run.Lines.FirstOrDefault(l => l.Text.StartsWith("PASSKEY_RESULT ", StringComparison.Ordinal));
        Assert.That(run.ExitCode, Is.Zero, run.Output);
        Assert.That(line, Is.Not.Null, run.Output);
        return JsonDocument.Parse(line!.Text["PASSKEY_RESULT ".Length..]).RootElement.Clone();
    }
}

using System.Text.Json;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Issue 12: the web dashboard, end to end in headless Chromium against a real meshai-server process with real agent
/// processes. The tests build on each other ([DependsOnTest]) (sign in, create a network, add a device, …), like a person
/// setting a network up; each drives one flow of tests/browser/dashboard-flows.mjs and checks the outcome through the API.
/// Screenshots of every screen land in .artifacts/dashboard/.
/// </summary>
[TestFixture]
[Category("Browser")]
[Category("EndToEnd")]
[NonParallelizable]
public sealed class DashboardBrowserTests
{
    private const string Email = "dashboard-admin@example.com";
    private LocalMesh _mesh = null!;
    private DashboardDriver _browser = null!;
    private string? _token;
    private string? _networkId;
    private readonly List<MeshAgent> _agents = [];

    /// <summary>A server for the whole fixture; presence grace is short so a killed agent shows offline quickly.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        DashboardDriver.RequireTools();
        if (Directory.Exists(DashboardDriver.Artifacts))
        {
            Directory.Delete(DashboardDriver.Artifacts, recursive: true);
        }

        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 6 });
        _browser = new DashboardDriver(_mesh.Url);
    }

    /// <summary>Stops the server and every agent.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task Signing_in_with_a_magic_link_from_the_sign_in_page_lands_on_the_network_list()
    {
        var result = await _browser.RunAsync("signin-magic", new Dictionary<string, string> { ["email"] = Email, ["outbox"] = _mesh.OutboxDirectory });
        _token = result.GetProperty("token").GetString();
        Assert.That(_token, Is.Not.Null.And.Not.Empty, "the session token is kept for the next visits");
        Assert.That(result.GetProperty("path").GetString(), Is.EqualTo("/"));
        using var channel = _mesh.Channel(_token);
        var me = await new MeshAI.Contracts.Identity.V1.IdentityService.IdentityServiceClient(channel).GetCurrentUserAsync(new MeshAI.Contracts.Identity.V1.GetCurrentUserRequest());
        Assert.That(me.User.Email, Is.EqualTo(Email), "the browser's session is a real session of that user");
    }

    [Test]
    [DependsOnTest(nameof(Signing_in_with_a_magic_link_from_the_sign_in_page_lands_on_the_network_list))]
    public async Task Creating_a_network_shows_the_spec_fields_and_defaults_and_opens_it()
    {
        var result = await _browser.RunAsync("create-network", Args(("name", "Dashboard Lab")));
        _networkId = result.GetProperty("networkId").GetString();
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("empty").GetBoolean(), Is.True, "a new account sees the empty state first");
            Assert.That(result.GetProperty("visibility").GetString(), Is.EqualTo("private"));
            Assert.That(result.GetProperty("billing").GetString(), Is.EqualTo("credits_internal"));
        });
        using var channel = _mesh.Channel(_token);
        var network = (await new NetworkService.NetworkServiceClient(channel).GetNetworkAsync(new GetNetworkRequest { NetworkId = _networkId })).Network;
        Assert.Multiple(() =>
        {
            Assert.That(network.Name, Is.EqualTo("Dashboard Lab"));
            Assert.That(network.Visibility, Is.EqualTo(NetworkVisibility.Private));
            Assert.That(network.BillingMode, Is.EqualTo(BillingMode.CreditsInternal));
            Assert.That(network.CallerRole, Is.EqualTo(MeshAI.Contracts.Common.V1.Role.Admin), "the creator is admin");
        });
    }

    [Test]
    [DependsOnTest(nameof(Creating_a_network_shows_the_spec_fields_and_defaults_and_opens_it))]
    public async Task A_device_added_by_its_link_appears_online_without_a_reload()
    {
        var result = await _browser.RunAsync("add-device", Args(("network", Network)), async (e, _) =>
        {
            Assert.That(e.GetProperty("name").GetString(), Is.EqualTo("join-link"));
            _agents.Add(await _mesh.StartAgentAsync(e.GetProperty("link").GetString()!, "lab-laptop"));
        });
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("link").GetString(), Does.StartWith("meshai://join?"));
            Assert.That(result.GetProperty("deviceId").GetString(), Is.EqualTo(_agents[0].DeviceId), "the card is the agent that joined");
            Assert.That(result.GetProperty("name").GetString(), Is.EqualTo("lab-laptop"));
            Assert.That(result.GetProperty("navigations").GetInt32(), Is.EqualTo(1), "no reload: the card arrived over WatchNetwork");
        });
    }

    private string Network => _networkId ?? throw new InconclusiveException("no network: the create-network test did not run");

    private Dictionary<string, string> Args(params (string Key, string Value)[] pairs)
    {
        var args = pairs.ToDictionary(p => p.Key, p => p.Value);
        args["token"] = _token ?? throw new InconclusiveException("not signed in: the sign-in test did not run");
        return args;
    }
}

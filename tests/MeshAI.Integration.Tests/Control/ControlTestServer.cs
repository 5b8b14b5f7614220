using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Grpc.Core;
using Grpc.Net.Client;
using MeshAI.Common.Seams;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Server;
using MeshAI.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace MeshAI.Integration.Tests.Control;

/// <summary>Stand-in for the relay's dispatcher: records offers, cancels and cuts instead of sending them to agents.</summary>
public sealed class RecordingDispatcher : IJobDispatcher
{
    public ConcurrentQueue<(string DeviceId, JobOffer Offer)> Offers { get; } = new();

    public ConcurrentQueue<(string DeviceId, JobCancel Cancel)> Cancels { get; } = new();

    public ConcurrentQueue<(string DeviceId, CutReason Reason)> Cuts { get; } = new();

    public bool TryOffer(string deviceId, JobOffer offer)
    {
        Offers.Enqueue((deviceId, offer));
        return true;
    }

    public bool TryCancel(string deviceId, JobCancel cancel)
    {
        Cancels.Enqueue((deviceId, cancel));
        return true;
    }

    public bool Cut(string deviceId, CutReason reason, string detail)
    {
        Cuts.Enqueue((deviceId, reason));
        return true;
    }
}

/// <summary>The real meshai-server composition (control + relay) in-process on a free loopback port, over SQLite or PostgreSQL.</summary>
public sealed partial class ControlTestServer : IAsyncDisposable
{
    private readonly List<GrpcChannel> _channels = [];

    private ControlTestServer(WebApplication app, string dataDir, string url, string fingerprint, RecordingDispatcher dispatcher)
    {
        App = app;
        DataDir = dataDir;
        Url = url;
        Fingerprint = fingerprint;
        Dispatcher = dispatcher;
    }

    public WebApplication App { get; }

    public string DataDir { get; }

    public string Url { get; }

    public string Fingerprint { get; }

    public RecordingDispatcher Dispatcher { get; }

    public IServiceProvider Services => App.Services;

    /// <summary>Starts a server with the given store ("sqlite" or "postgres") and optional extra configuration arguments.</summary>
    public static Task<ControlTestServer> StartAsync(string store, params string[] extraArgs) => StartAsync(store, null, extraArgs);

    /// <summary>Starts a server whose whole control plane runs on <paramref name="clock"/> (a fake clock in the retry/timeout/cost-cap tests).</summary>
    public static async Task<ControlTestServer> StartAsync(string store, TimeProvider? clock, params string[] extraArgs) =>
        await StartAsync(store, store == "postgres" ? await SharedInfrastructure.CreatePostgresDatabaseAsync("control") : null, clock, extraArgs);

    /// <summary>Starts a server on the PostgreSQL database <paramref name="postgres"/> (a cluster the test stops and starts).</summary>
    public static Task<ControlTestServer> StartOnPostgresAsync(string postgres) => StartAsync("postgres", postgres, null, []);

    private static async Task<ControlTestServer> StartAsync(string store, string? postgres, TimeProvider? clock, string[] extraArgs, string? existingDataDir = null)
    {
        var dataDir = existingDataDir ?? Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "meshai-control-" + Guid.NewGuid().ToString("N")[..10])).FullName;
        var args = new List<string> { "--data-dir", dataDir, "--port", "0", "--store", store };
        args.AddRange(extraArgs);
        if (postgres is not null)
        {
            args.AddRange(["--postgres", postgres]);
        }

        var dispatcher = new RecordingDispatcher();
        var (app, settings, certificate) = ServerHost.Build([.. args], services =>
        {
            services.AddSingleton<IJobDispatcher>(dispatcher);
            if (clock is not null)
            {
                services.AddSingleton(clock);
            }
        });
        var (url, fingerprint) = await ServerHost.StartAsync(app, settings, certificate, CancellationToken.None);
        return new ControlTestServer(app, dataDir, url, fingerprint, dispatcher);
    }

    /// <summary>A pinned channel, optionally carrying a session token.</summary>
    public GrpcChannel Channel(string? sessionToken = null)
    {
        var channel = GrpcChannels.Create(Url, Fingerprint, sessionToken is null ? null : () => sessionToken);
        _channels.Add(channel);
        return channel;
    }

    /// <summary>Signs in through the real magic-link flow (outbox file → CompleteMagicLink) and returns the session token.</summary>
    public async Task<string> SignInAsync(string email)
    {
        var identity = new IdentityService.IdentityServiceClient(Channel());
        await identity.StartMagicLinkAsync(new StartMagicLinkRequest { Email = email });
        var token = ReadMagicToken(email);
        var done = await identity.CompleteMagicLinkAsync(new CompleteMagicLinkRequest { Token = token, ClientName = "test" });
        return done.SessionToken;
    }

    /// <summary>The token of the newest outbox mail to <paramref name="email"/>.</summary>
    public string ReadMagicToken(string email)
    {
        var file = Directory.GetFiles(Path.Combine(DataDir, "outbox"), "*-" + email + ".eml").OrderBy(f => f, StringComparer.Ordinal).Last();
        var link = LinkLine().Match(File.ReadAllText(file)).Groups[1].Value;
        return Uri.UnescapeDataString(link[(link.IndexOf("token=", StringComparison.Ordinal) + 6)..]);
    }

    /// <summary>
    /// Stops this embedded (SQLite) server gracefully and starts a new one on the same data directory and clock, as
    /// `meshai-server` restarted would; this instance is spent (disposing it does nothing), dispose the returned one.
    /// </summary>
    public async Task<ControlTestServer> RestartAsync(TimeProvider? clock = null)
    {
        _restarted = true;
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        await App.StopAsync();
        await App.DisposeAsync();
        return await StartAsync("sqlite", null, clock, [], DataDir);
    }

    private bool _restarted;

    public async ValueTask DisposeAsync()
    {
        if (_restarted)
        {
            return;
        }

        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        await App.StopAsync();
        await App.DisposeAsync();
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [GeneratedRegex(@"^Link: (\S+)\r?$", RegexOptions.Multiline)]
    private static partial Regex LinkLine();
}

/// <summary>Assertion helper for RpcException status codes.</summary>
public static class Rpc
{
    public static async Task<RpcException> ThrowsAsync(StatusCode code, Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (RpcException e)
        {
            NUnit.Framework.Assert.That(e.StatusCode, NUnit.Framework.Is.EqualTo(code), e.Status.Detail);
            return e;
        }

        NUnit.Framework.Assert.Fail($"expected {code}, the call succeeded");
        throw new InvalidOperationException();
    }
}

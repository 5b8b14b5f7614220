using System.Text;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Storage;
using MeshAI.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Security;

/// <summary>
/// Issue 12: the dashboard is no hole in the end-to-end story. Headless Chromium runs a job from the dashboard served by
/// the real server composition (control + relay in-process, so every relay frame is recorded) with a real agent session;
/// the secret input and output appear in no relay frame and nowhere in the store, and the page shows the decrypted result.
/// </summary>
[TestFixture]
[Category("Browser")]
[Category("Integration")]
[NonParallelizable]
public sealed class DashboardEncryptionTests
{
    [Test]
    public async Task A_job_submitted_from_the_dashboard_leaves_no_plaintext_in_the_relay_or_the_database()
    {
        DashboardDriver.RequireTools();
        await using var host = await SecureMeshHost.StartAsync();
        var token = await host.SignInAsync("browser-e2e@example.com");
        var network = (await new NetworkService.NetworkServiceClient(host.Channel(token)).CreateNetworkAsync(new CreateNetworkRequest { Name = "sealed" })).Network;
        var (laptop, laptopKeys) = await host.JoinAsync(token, network.NetworkId, "laptop");
        var (desktop, desktopKeys) = await host.JoinAsync(token, network.NetworkId, "desktop");
        await host.GoOnlineAsync(laptop, laptopKeys);
        await host.GoOnlineAsync(desktop, desktopKeys);

        var secret = "browser-secret-" + Guid.NewGuid().ToString("N");
        var result = await new DashboardDriver(host.Url).RunAsync("run", new Dictionary<string, string>
        {
            ["token"] = token, ["network"] = network.NetworkId, ["workload"] = "Diagnostic echo", ["data"] = secret, ["shot"] = "sealed-echo",
        });
        Assert.That(result.GetProperty("state").GetString(), Is.EqualTo("COMPLETED"), result.ToString());
        Assert.That(result.GetProperty("resultText").GetString(), Is.EqualTo(secret), "the page opened the device's sealed result");
        var jobId = result.GetProperty("jobId").GetString()!;

        var stored = (await host.Services.GetRequiredService<JobRepository>().GetJobAsync(network.NetworkId, jobId, CancellationToken.None))!;
        var envelope = JobEnvelope.Parser.ParseFrom(stored.Envelope);
        Assert.Multiple(() =>
        {
            Assert.That(envelope.PayloadEncryption.Scheme, Is.EqualTo(PayloadEncryptionScheme.X25519HkdfXchacha20Poly1305), "sealed in the browser");
            Assert.That(envelope.PayloadEncryption.Recipients.Select(r => r.DeviceId), Is.EquivalentTo(new[] { laptop.DeviceId, desktop.DeviceId }), "wrapped for PlanJob's candidates");
            Assert.That(envelope.InputManifest.PayloadSha256, Is.Empty);
            Assert.That(stored.OutputEncrypted, Is.True, "the result was sealed to the browser's key");
        });

        var needle = Encoding.UTF8.GetBytes(secret);
        Assert.That(host.Recorder.Frames, Is.Not.Empty);
        Assert.That(host.Recorder.Frames.Any(f => f.AsSpan().IndexOf(needle) >= 0), Is.False, "plaintext crossed the relay");
        foreach (var file in Directory.GetFiles(host.DataDir, "meshai.db*"))
        {
            await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var memory = new MemoryStream();
            await stream.CopyToAsync(memory);
            Assert.That(memory.ToArray().AsSpan().IndexOf(needle), Is.EqualTo(-1), $"plaintext found in {Path.GetFileName(file)}");
        }
    }
}

using Google.Protobuf;
using MeshAI.Client;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Integration.Tests.Security;
using MeshAI.Relay.Core;
using MeshAI.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Relay;

/// <summary>
/// A tampered offer is refused IN THE PAGE (issue 13): the real server in-process, with the one thing a test can add — a
/// dispatcher between control and the relay that alters offers in transit, as a compromised relay or a man in the middle
/// would — and the contributor page in headless Chromium with phone emulation. The page checks every offer like the agent's
/// OfferVerifier (signature, device, network, expiry, envelope hash, replay) and declines what does not verify; control
/// records the page's reason with each attempt.
/// </summary>
[TestFixture]
[Category("Browser")]
[Category("Integration")]
[NonParallelizable]
public sealed class ContributorTamperBrowserTests
{
    /// <summary>Envelope label naming the alteration the dispatcher makes: "signature" or "envelope".</summary>
    private const string TamperLabel = "meshai-test-tamper";

    [Test]
    public async Task The_page_refuses_an_offer_with_a_forged_signature_or_a_swapped_envelope_and_runs_an_honest_one()
    {
        await using var host = await SecureMeshHost.StartAsync(configure: services =>
            services.AddSingleton<IJobDispatcher>(sp => new TamperingDispatcher(sp.GetRequiredService<RelayHub>())));
        var alice = await host.SignInAsync("tamper@example.com");
        using var client = new MeshClient(host.Url, host.Fingerprint, alice);
        var network = (await client.CreateNetworkAsync("tamper")).NetworkId;
        var link = (await client.Devices.CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network })).WebJoinLink;

        await using var page = ContributorPage.Start();
        await page.OpenAsync(link);
        await page.JoinAsync("Tamper phone");
        var phone = (await page.WaitAsync(phase: "contributing", timeout: TimeSpan.FromSeconds(60))).DeviceId;

        var forged = await SubmitAsync(client, network, phone, "signature");
        var swapped = await SubmitAsync(client, network, phone, "envelope");
        var honest = await client.RunAsync(network, Echo("honest"), new JobRouting { Mode = RoutingMode.PinnedDevice, PinnedDeviceIds = [phone] });
        var forgedOnPage = await page.WaitAsync(eventKind: "refused", jobId: forged.JobId);
        var swappedOnPage = await page.WaitAsync(eventKind: "refused", jobId: swapped.JobId);
        await page.ScreenshotAsync("refused-tampered-offer", fullPage: true);
        var forgedJob = await WaitForEndAsync(client, network, forged.JobId);
        var swappedJob = await WaitForEndAsync(client, network, swapped.JobId);

        Assert.Multiple(() =>
        {
            Assert.That(forgedOnPage.EventsOf(forged.JobId).First().Text, Does.Contain("ticket signature invalid"));
            Assert.That(swappedOnPage.EventsOf(swapped.JobId).First().Text, Does.Contain("envelope does not match the ticket"));
            Assert.That(forgedJob.State, Is.EqualTo(JobState.Failed), "no device ran the forged offer");
            Assert.That(forgedJob.Attempts.Select(a => (a.DeviceId, a.Cause)), Is.All.EqualTo((phone, AttemptCause.NodeDecline)));
            Assert.That(forgedJob.Attempts[0].Detail, Does.Contain("ticket signature invalid"));
            Assert.That(swappedJob.State, Is.EqualTo(JobState.Failed));
            Assert.That(swappedJob.Attempts[0].Detail, Does.Contain("envelope does not match the ticket"));
            Assert.That(honest.Output.Echo.Data.ToStringUtf8(), Is.EqualTo("honest"), "an untouched offer runs in the same page");
        });
    }

    [Test]
    public async Task A_browser_that_cannot_tell_wifi_from_cellular_says_so_and_stays_out_of_work()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var alice = await host.SignInAsync("unknown-signals@example.com");
        using var client = new MeshClient(host.Url, host.Fingerprint, alice);
        var network = (await client.CreateNetworkAsync("signals")).NetworkId;
        var link = (await client.Devices.CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network })).WebJoinLink;

        // Headless Chromium on Linux, as it is: a phone's user agent, but no connection type (and no pressure source).
        await using var page = ContributorPage.Start(realSignals: true);
        await page.OpenAsync(link);
        await page.JoinAsync("No-API phone");
        var state = await page.WaitAsync(phase: "paused", timeout: TimeSpan.FromSeconds(60));
        await page.ScreenshotAsync("cannot-check", fullPage: true);
        var card = (await client.Devices.GetDeviceAsync(new GetDeviceRequest { NetworkId = network, DeviceId = state.DeviceId })).Device;

        Assert.Multiple(() =>
        {
            Assert.That(state.Rules.Single(r => r.Id == "wifi").State, Is.EqualTo("unknown"), "the rule it cannot check is named");
            Assert.That(state.Rules.Single(r => r.Id == "wifi").Text, Does.Contain("Network Information API"));
            Assert.That(state.Reason, Does.Contain("safe choice"));
            Assert.That(card.OnlineStatus, Is.EqualTo(OnlineStatus.Online), "online, just not contributing");
            Assert.That(card.Capabilities.NetworkType, Is.EqualTo(NetworkType.Unspecified), "it reports no network type rather than a guess");
        });
    }

    private static WorkloadInput Echo(string text) => new() { Echo = new EchoInput { Data = ByteString.CopyFromUtf8(text) } };

    private static Task<Job> SubmitAsync(MeshClient client, string network, string phone, string tamper) =>
        client.SubmitJobAsync(network, Echo(tamper), new JobRouting
        {
            Mode = RoutingMode.PinnedDevice,
            PinnedDeviceIds = [phone],
            Labels = new Dictionary<string, string> { [TamperLabel] = tamper },
        });

    private static async Task<Job> WaitForEndAsync(MeshClient client, string network, string jobId)
    {
        var deadline = DateTimeOffset.UtcNow.AddSeconds(60);
        while (true)
        {
            var job = (await client.Jobs.GetJobAsync(new GetJobRequest { NetworkId = network, JobId = jobId })).Job;
            if (job.State is JobState.Failed or JobState.Completed or JobState.Cancelled || DateTimeOffset.UtcNow > deadline)
            {
                return job;
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Alters offers of jobs labelled <see cref="TamperLabel"/> on their way to the relay, then hands them on.</summary>
    private sealed class TamperingDispatcher(RelayHub relay) : IJobDispatcher
    {
        public bool TryOffer(string deviceId, JobOffer offer)
        {
            var labels = JobEnvelope.Parser.ParseFrom(offer.Envelope).InputManifest?.Labels;
            switch (labels?.GetValueOrDefault(TamperLabel))
            {
                case "signature":
                    offer = offer.Clone();
                    offer.Ticket.Signature = Flip(offer.Ticket.Signature);
                    break;
                case "envelope":
                    offer = offer.Clone();
                    offer.Envelope = Flip(offer.Envelope);
                    break;
            }

            return relay.TryOffer(deviceId, offer);
        }

        public bool TryCancel(string deviceId, JobCancel cancel) => relay.TryCancel(deviceId, cancel);

        public bool Cut(string deviceId, CutReason reason, string detail) => relay.Cut(deviceId, reason, detail);

        private static ByteString Flip(ByteString bytes)
        {
            var copy = bytes.ToByteArray();
            copy[^1] ^= 0x01;
            return ByteString.CopyFrom(copy);
        }
    }
}

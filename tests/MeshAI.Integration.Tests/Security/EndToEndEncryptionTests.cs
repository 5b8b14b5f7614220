using System.Text;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Client;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Storage;
using MeshAI.Integration.Tests.Control;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Security;

/// <summary>End-to-end payload encryption through the real server, relay and agent session: only the submitter and the device see plaintext.</summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class EndToEndEncryptionTests
{
    [Test]
    public async Task Relay_and_control_plane_see_no_plaintext_input_or_output_and_the_submitter_decrypts_the_result()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var alice = await host.SignInAsync("alice@example.com");
        var bob = await host.SignInAsync("bob@example.com");
        using var aliceClient = new MeshClient(host.Url, host.Fingerprint, alice);
        var network = await aliceClient.CreateNetworkAsync("e2e");
        var invite = await aliceClient.InviteMemberAsync(network.NetworkId, "bob@example.com");
        await new NetworkService.NetworkServiceClient(host.Channel(bob)).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = invite.InviteLink });

        // Two candidates: the payload is encrypted once and its key wrapped for both (a retry needs no re-upload).
        var (laptop, laptopKeys) = await host.JoinAsync(alice, network.NetworkId, "laptop");
        var (desktop, desktopKeys) = await host.JoinAsync(alice, network.NetworkId, "desktop");
        await host.GoOnlineAsync(laptop, laptopKeys);
        await host.GoOnlineAsync(desktop, desktopKeys);

        var secretInput = "input-" + Guid.NewGuid().ToString("N");
        var frames = new List<WatchJobResponse>();
        var run = await aliceClient.RunAsync(network.NetworkId,
            new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8(secretInput) } }, onFrame: frames.Add);
        Assert.That(run.Output.Echo.Data.ToStringUtf8(), Is.EqualTo(secretInput), "the submitter decrypts the device's sealed result");
        var job = run.Job;

        var stored = (await host.Services.GetRequiredService<JobRepository>().GetJobAsync(network.NetworkId, job.JobId, CancellationToken.None))!;
        var envelope = JobEnvelope.Parser.ParseFrom(stored.Envelope);
        Assert.Multiple(() =>
        {
            Assert.That(envelope.PayloadEncryption.Scheme, Is.EqualTo(PayloadEncryptionScheme.X25519HkdfXchacha20Poly1305));
            Assert.That(envelope.PayloadEncryption.Recipients.Select(r => r.DeviceId), Is.EquivalentTo(new[] { laptop.DeviceId, desktop.DeviceId }));
            Assert.That(stored.OutputEncrypted, Is.True);
        });

        var needle = Encoding.UTF8.GetBytes(secretInput);
        // The stored rows: the whole SQLite store (database + WAL) holds the input and the echoed output nowhere.
        foreach (var file in Directory.GetFiles(host.DataDir, "meshai.db*"))
        {
            Assert.That(Contains(await ReadSharedAsync(file), needle), Is.False, $"plaintext found in {Path.GetFileName(file)}");
        }

        // The relay: every frame of every stream, both directions.
        Assert.That(host.Recorder.Frames, Is.Not.Empty);
        Assert.That(host.Recorder.Frames.Any(f => Contains(f, needle)), Is.False, "plaintext crossed the relay");

        // The control plane's view for another member: WatchJob and GetJob.
        var jobs = new JobService.JobServiceClient(host.Channel(bob));
        var watched = new List<byte[]>();
        using (var watch = jobs.WatchJob(new WatchJobRequest { NetworkId = network.NetworkId, JobId = job.JobId }))
        {
            while (await watch.ResponseStream.MoveNext(CancellationToken.None))
            {
                watched.Add(watch.ResponseStream.Current.ToByteArray());
            }
        }

        var got = await jobs.GetJobAsync(new GetJobRequest { NetworkId = network.NetworkId, JobId = job.JobId });
        Assert.Multiple(() =>
        {
            Assert.That(watched, Is.Not.Empty);
            Assert.That(watched.Any(f => Contains(f, needle)), Is.False, "WatchJob for a non-submitter leaked plaintext");
            Assert.That(got.Result.Encrypted, Is.True);
            Assert.That(Contains(got.ToByteArray(), needle), Is.False);
            Assert.That(frames.Any(f => f.FrameCase == WatchJobResponse.FrameOneofCase.Result && Contains(f.Result.Output.ToByteArray(), needle)), Is.False,
                "even the submitter's stream carries only ciphertext");
        });

        // Bob cannot decrypt what was sealed to Alice's client.
        using var bobClient = new MeshClient(host.Url, host.Fingerprint, bob);
        Assert.Throws<MeshJobException>(() => bobClient.Decode(got.Result, got.Job));
    }

    [Test]
    public async Task Submitting_ciphertext_for_a_device_outside_the_network_is_invalid_argument()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var alice = await host.SignInAsync("carol@example.com");
        using var client = new MeshClient(host.Url, host.Fingerprint, alice);
        var network = await client.CreateNetworkAsync("e2e-2");
        var envelope = JobEnvelopes.Build(network.NetworkId, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("x") } });
        MeshAI.Common.Crypto.PayloadCrypto.EncryptEnvelope(envelope, [new("dev_nope", MeshAI.Common.Crypto.EncryptionKeyPair.Generate().PublicKey)], client.SubmitterKey.PublicKey);
        await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => client.Jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope }).ResponseAsync);
        await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, () => client.Jobs.PlanJobAsync(new PlanJobRequest { Envelope = envelope }).ResponseAsync);
    }

    private static async Task<byte[]> ReadSharedAsync(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var memory = new MemoryStream();
        await stream.CopyToAsync(memory);
        return memory.ToArray();
    }

    private static bool Contains(ReadOnlySpan<byte> haystack, ReadOnlySpan<byte> needle) => haystack.IndexOf(needle) >= 0;
}

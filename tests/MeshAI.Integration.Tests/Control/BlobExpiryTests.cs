using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Common.Errors;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>BlobService's time bounds on the server's clock (a fake one): an idle upload expires, a stored blob expires after its retention.</summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class BlobExpiryTests
{
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private ControlTestServer _server = null!;
    private string _token = "";

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _server = await ControlTestServer.StartAsync("sqlite", _clock, "--Control:Blobs:UploadIdleSeconds", "30", "--Control:Blobs:RetentionHours", "1");
        _token = await _server.SignInAsync("expiry@example.com");
    }

    [OneTimeTearDown]
    public async Task StopServer() => await _server.DisposeAsync();

    [Test]
    public async Task An_idle_upload_and_a_blob_past_its_retention_are_gone()
    {
        var blobs = new BlobService.BlobServiceClient(_server.Channel(_token));
        var network = (await new NetworkService.NetworkServiceClient(_server.Channel(_token)).CreateNetworkAsync(new CreateNetworkRequest { Name = "expiry" })).Network.NetworkId;
        var content = new byte[] { 1, 2, 3, 4 };
        var stored = await BlobTransfer.UploadAsync(blobs, network, new MemoryStream(content));

        var idle = await blobs.StartBlobUploadAsync(new StartBlobUploadRequest { NetworkId = network, SizeBytes = 2, Sha256 = Convert.ToHexStringLower(SHA256.HashData(new byte[] { 9, 9 })) });
        _clock.Advance(TimeSpan.FromSeconds(31));
        var expired = await Rpc.ThrowsAsync(StatusCode.NotFound, () => blobs.UploadBlobChunkAsync(new UploadBlobChunkRequest { NetworkId = network, UploadId = idle.UploadId, Index = 0, Data = ByteString.CopyFrom(9, 9) }).ResponseAsync);
        Assert.That(RpcErrors.ReasonOf(expired), Is.EqualTo("BLOB_UPLOAD_NOT_FOUND"));

        using (var back = new MemoryStream())
        {
            await BlobTransfer.DownloadAsync(blobs, network, stored.Sha256, back); // still within its hour
            Assert.That(back.ToArray(), Is.EqualTo(content));
        }

        _clock.Advance(TimeSpan.FromHours(1));
        var gone = await Rpc.ThrowsAsync(StatusCode.NotFound, () => BlobTransfer.DownloadAsync(blobs, network, stored.Sha256, Stream.Null));
        Assert.That(RpcErrors.ReasonOf(gone), Is.EqualTo("BLOB_NOT_FOUND"));
    }
}

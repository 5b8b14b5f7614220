using BenchmarkDotNet.Attributes;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Bench;

/// <summary>
/// Hot-path crypto on the job plane: every offer carries a signed placement ticket the agent verifies,
/// and every relay stream opens with a certificate check. Baseline: one raw ed25519 verification.
/// </summary>
[MemoryDiagnoser]
public class TicketAndCertificateBenchmarks
{
    private readonly SigningKeyPair _control = SigningKeyPair.Generate();
    private readonly SigningKeyPair _ca = SigningKeyPair.Generate();
    private readonly byte[] _envelope = new byte[512];
    private byte[] _rawSignature = [];
    private PlacementTicket _ticket = new();
    private DeviceCertificate _certificate = new();
    private Dictionary<string, byte[]> _controlKeys = [];
    private Dictionary<string, byte[]> _caKeys = [];
    private DateTimeOffset _now;

    /// <summary>Builds a signed ticket and certificate once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        Random.Shared.NextBytes(_envelope);
        _now = DateTimeOffset.UtcNow;
        _rawSignature = _control.Sign(_envelope);
        _ticket = PlacementTickets.Sign(new PlacementTicketDetails
        {
            JobId = "job_bench", Attempt = 1, DeviceId = "dev_bench", NetworkId = "net_bench",
            EnvelopeSha256 = Secrets.Sha256Hex(_envelope), ExpireTime = Timestamp.FromDateTimeOffset(_now.AddMinutes(5)),
        }, _control);
        _controlKeys = new() { [SigningKeyPair.KeyId(_control.PublicKey)] = _control.PublicKey };
        var device = SigningKeyPair.Generate();
        _certificate = DeviceCertificates.Issue(new DeviceCertificateDetails
        {
            DeviceId = "dev_bench", NetworkId = "net_bench", OwnerUserId = "usr_bench",
            SigningPublicKey = ByteString.CopyFrom(device.PublicKey), EncryptionPublicKey = ByteString.CopyFrom(new byte[32]),
            NotBefore = Timestamp.FromDateTimeOffset(_now.AddDays(-1)), NotAfter = Timestamp.FromDateTimeOffset(_now.AddDays(30)),
            Serial = "s1", CaKeyId = SigningKeyPair.KeyId(_ca.PublicKey),
        }, _ca);
        _caKeys = new() { [SigningKeyPair.KeyId(_ca.PublicKey)] = _ca.PublicKey };
    }

    /// <summary>One raw ed25519 verification of the envelope bytes.</summary>
    [Benchmark(Baseline = true)]
    public bool RawEd25519Verify() => SigningKeyPair.Verify(_control.PublicKey, _envelope, _rawSignature);

    /// <summary>What the agent does per offer: verify signature, device, network, expiry and envelope hash.</summary>
    [Benchmark]
    public bool VerifyPlacementTicket() =>
        PlacementTickets.Verify(_ticket, _controlKeys, _envelope, "dev_bench", "net_bench", _now, out _) is not null;

    /// <summary>What the relay does per stream open: parse and verify the device certificate.</summary>
    [Benchmark]
    public bool VerifyDeviceCertificate() => DeviceCertificates.Verify(_certificate, _caKeys, _now, out _) is not null;
}

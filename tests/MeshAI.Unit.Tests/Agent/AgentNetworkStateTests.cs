using Google.Protobuf;
using MeshAI.Agent.State;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Networks;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

/// <summary>How an agent applies pushed NetworkUpdates (relay protocol 3): in serial order, stored before acknowledged.</summary>
[TestFixture]
[Category("Unit")]
public sealed class AgentNetworkStateTests
{
    private static readonly string[] BothControlKeys = ["new-control", "old-control"];
    private static readonly string[] Peer = ["dev_peer"];
    private static readonly string[] DevB = ["dev_b"];
    private static readonly string[] DevAB = ["dev_a", "dev_b"];
    private static readonly string[] K2 = ["k2"];
    private static readonly string[] R2 = ["https://r2"];

    private static AgentEnrollment Enrollment(string deviceId = "dev_self") => new(
        "https://control", "fp", "https://relay", "relay-1", deviceId, "net_1", "laptop", [1, 2, 3],
        [new TrustedKey("old-control", new byte[32], nameof(NetworkKeyPurpose.ControlSigning), null)]);

    private static NetworkPublicKey Key(string id, NetworkKeyPurpose purpose) => new() { KeyId = id, Purpose = purpose, PublicKey = ByteString.CopyFrom(new byte[32]) };

    [Test]
    public void Updates_apply_in_serial_order_and_an_older_or_repeated_serial_changes_nothing()
    {
        var dir = Path.Combine(Path.GetTempPath(), "meshai-netstate-" + Guid.NewGuid().ToString("N"));
        try
        {
            var store = new AgentStateStore(dir);
            var state = new AgentNetworkState(Enrollment(), store);
            var keys = new NetworkUpdate { Serial = 2, NetworkKeys = { Key("new-control", NetworkKeyPurpose.ControlSigning), Key("old-control", NetworkKeyPurpose.ControlSigning) } };
            Assert.That(state.Apply(keys), Is.EqualTo(NetworkUpdateOutcome.Applied));
            Assert.That(state.ControlKeys(DateTimeOffset.UtcNow).Keys, Is.SupersetOf(BothControlKeys));

            // Serial 1 arriving late (a re-send overtaken by serial 2) must not roll the keys back.
            var stale = new NetworkUpdate { Serial = 1, NetworkKeys = { Key("stale", NetworkKeyPurpose.ControlSigning) } };
            Assert.That(state.Apply(stale), Is.EqualTo(NetworkUpdateOutcome.AlreadyHeld));
            Assert.That(state.Apply(keys), Is.EqualTo(NetworkUpdateOutcome.AlreadyHeld), "a re-send of the held serial");
            Assert.That(state.ControlKeys(DateTimeOffset.UtcNow).Keys, Does.Not.Contain("stale"));
            Assert.That(state.Serial, Is.EqualTo(2));

            Assert.That(state.Apply(new NetworkUpdate { Serial = 3, RevokedDeviceIds = { "dev_peer" } }), Is.EqualTo(NetworkUpdateOutcome.Applied));
            Assert.That(state.Enrollment.RevokedPeers, Is.EqualTo(Peer));
            Assert.That(state.ControlKeys(DateTimeOffset.UtcNow).Keys, Does.Contain("new-control"), "a delta without keys keeps the key set");

            // Stored before the acknowledgement: a restarted agent names serial 3 in its hello.
            var reloaded = store.LoadEnrollment()!;
            Assert.That(reloaded.NetworkSerial, Is.EqualTo(3));
            Assert.That(reloaded.RevokedPeers, Is.EqualTo(Peer));
            Assert.That(reloaded.NetworkKeys.Select(k => k.KeyId), Does.Contain("new-control"));

            // A renewal replaces the certificate and keys but keeps what the updates told the device.
            var renewed = state.Replace(Enrollment() with { Certificate = [9] });
            Assert.That(renewed.NetworkSerial, Is.EqualTo(3));
            Assert.That(renewed.RevokedPeers, Is.EqualTo(Peer));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void A_whole_state_update_replaces_the_revocations_even_at_an_older_serial_and_naming_this_device_stops_it()
    {
        var state = new AgentNetworkState(Enrollment());
        state.Apply(new NetworkUpdate { Serial = 5, RevokedDeviceIds = { "dev_a" } });
        // The store was restored from a backup: control's newest serial is 4 and it sends the whole state.
        Assert.That(state.Apply(new NetworkUpdate { Serial = 4, FullState = true, RevokedDeviceIds = { "dev_b" } }), Is.EqualTo(NetworkUpdateOutcome.Applied));
        Assert.That(state.Serial, Is.EqualTo(4));
        Assert.That(state.Enrollment.RevokedPeers, Is.EqualTo(DevB));
        Assert.That(state.Apply(new NetworkUpdate { Serial = 6, RevokedDeviceIds = { "dev_self" } }), Is.EqualTo(NetworkUpdateOutcome.SelfRevoked));
    }

    [Test]
    public void Missed_deltas_merge_into_one_update_with_the_newest_keys_and_every_revocation()
    {
        var merged = NetworkUpdates.Merge([
            new NetworkUpdate { Serial = 3, NetworkKeys = { Key("k1", NetworkKeyPurpose.ControlSigning) }, RevokedDeviceIds = { "dev_a" } },
            new NetworkUpdate { Serial = 4, RevokedDeviceIds = { "dev_b", "dev_a" }, ModelsChangedUnixMs = 1_700_000_000_500 },
            new NetworkUpdate { Serial = 5, NetworkKeys = { Key("k2", NetworkKeyPurpose.ControlSigning) }, RelayUrls = { "https://r2" } },
        ]);
        Assert.Multiple(() =>
        {
            Assert.That(merged.Serial, Is.EqualTo(5));
            Assert.That(merged.NetworkKeys.Select(k => k.KeyId), Is.EqualTo(K2));
            Assert.That(merged.RevokedDeviceIds, Is.EqualTo(DevAB));
            Assert.That(merged.RelayUrls, Is.EqualTo(R2));
            Assert.That(merged.FullState, Is.False);
            Assert.That(merged.ModelsChangedUnixMs, Is.EqualTo(1_700_000_000_500), "a model change in any missed delta survives the merge");
        });
    }
}

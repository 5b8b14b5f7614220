using System.Data.Common;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Device.V1;
using MeshAI.Control.Storage;

namespace MeshAI.Control.Networks;

/// <summary>Per-network CA and control signing keys: generated here, private halves sealed with the master key.</summary>
public sealed class NetworkKeyVault(NetworkRepository networks, MasterKey masterKey, TimeProvider clock, SecurityRepository security, Security.AccessCache cache)
{
    private const int MaxOpenedKeys = 4096;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, SigningKeyPair> _opened = new(StringComparer.Ordinal);

    /// <summary>The network's current key set.</summary>
    public sealed record KeySet(SigningKeyPair Ca, string CaKeyId, SigningKeyPair Control, string ControlKeyId, IReadOnlyList<NetworkKeyRow> Rows);

    /// <summary>Generates and stores a CA key and a control signing key for a new network.</summary>
    public async Task<(NetworkKeyRow Ca, NetworkKeyRow Control)> CreateKeysAsync(DbConnection c, DbTransaction tx, string networkId, CancellationToken ct)
    {
        var ca = Seal(networkId, NetworkKeyPurpose.CertificateAuthority, SigningKeyPair.Generate());
        var control = Seal(networkId, NetworkKeyPurpose.ControlSigning, SigningKeyPair.Generate());
        await NetworkRepository.InsertKeyAsync(c, tx, ca, ct);
        await NetworkRepository.InsertKeyAsync(c, tx, control, ct);
        return (ca, control);
    }

    /// <summary>The newest CA and control keys with their private halves, plus every valid key row.</summary>
    public async Task<KeySet> GetKeysAsync(string networkId, CancellationToken ct)
    {
        var rows = (await networks.ListKeysAsync(networkId, clock.GetUtcNow().ToUnixTimeMilliseconds(), ct)).ToList();
        return KeySetOf(networkId, rows);
    }

    private KeySet KeySetOf(string networkId, IReadOnlyList<NetworkKeyRow> rows)
    {
        var ca = rows.FirstOrDefault(r => r.Purpose == (int)NetworkKeyPurpose.CertificateAuthority)
                 ?? throw new InvalidOperationException($"network {networkId} has no CA key");
        var control = rows.FirstOrDefault(r => r.Purpose == (int)NetworkKeyPurpose.ControlSigning)
                      ?? throw new InvalidOperationException($"network {networkId} has no control signing key");
        return new KeySet(Open(ca), ca.KeyId, Open(control), control.KeyId, rows);
    }

    /// <summary>
    /// The key that signs placement tickets for <paramref name="deviceId"/>: the control key the device was last given
    /// (registration or RenewCertificate) while it is still valid, so online agents keep working across a rotation; else the newest.
    /// </summary>
    /// <remarks>
    /// Both reads come from the authorisation cache when they can (<see cref="Security.AccessCache"/>, #11): a rotation and a
    /// device given another key clear it on every instance; a cached row whose not_after has passed is dropped here.
    /// </remarks>
    public async Task<SigningKeyPair> TicketKeyAsync(string networkId, string deviceId, CancellationToken ct)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var valid = (await cache.NetworkKeysAsync(networkId, async () => (await networks.ListKeysAsync(networkId, now, ct)).ToList()))
            .Where(r => r.NotAfterMs is null || r.NotAfterMs > now).ToList();
        var set = KeySetOf(networkId, valid);
        var given = await cache.DeviceControlKeyAsync(deviceId, () => security.GetDeviceControlKeyAsync(deviceId, ct));
        var controls = set.Rows.Where(r => r.Purpose == (int)NetworkKeyPurpose.ControlSigning);
        // Devices registered before keys were recorded per device got the keys of that time: the oldest still valid.
        var row = given is null ? controls.OrderBy(r => r.CreateTimeMs).FirstOrDefault() : controls.FirstOrDefault(r => r.KeyId == given);
        return row is null || row.KeyId == set.ControlKeyId ? set.Control : Open(row);
    }

    /// <summary>The network's keys changed (a rotation committed): no instance signs from cached key rows any more.</summary>
    public void KeysChanged() => cache.KeysChanged();

    /// <summary>CA public keys by key id that may verify certificates now.</summary>
    public async Task<IReadOnlyDictionary<string, byte[]>> TrustedCaKeysAsync(string networkId, CancellationToken ct) =>
        (await networks.ListKeysAsync(networkId, clock.GetUtcNow().ToUnixTimeMilliseconds(), ct))
        .Where(r => r.Purpose == (int)NetworkKeyPurpose.CertificateAuthority)
        .ToDictionary(r => r.KeyId, r => r.PublicKey);

    /// <summary>The public keys devices trust (RegisterDeviceResponse.network_keys).</summary>
    public static IEnumerable<NetworkPublicKey> PublicKeys(IEnumerable<NetworkKeyRow> rows) => rows.Select(r => new NetworkPublicKey
    {
        KeyId = r.KeyId,
        PublicKey = Google.Protobuf.ByteString.CopyFrom(r.PublicKey),
        Purpose = (NetworkKeyPurpose)r.Purpose,
        NotAfter = r.NotAfterMs is { } ms ? Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(ms)) : null,
    });

    private NetworkKeyRow Seal(string networkId, NetworkKeyPurpose purpose, SigningKeyPair pair)
    {
        var keyId = SigningKeyPair.KeyId(pair.PublicKey);
        return new NetworkKeyRow
        {
            KeyId = keyId,
            NetworkId = networkId,
            Purpose = (int)purpose,
            PublicKey = pair.PublicKey,
            PrivateKeyEnc = masterKey.Encrypt(pair.PrivateKey, keyId),
            CreateTimeMs = clock.GetUtcNow().ToUnixTimeMilliseconds(),
        };
    }

    /// <summary>
    /// The key pair of a stored row (private half unsealed with the master key). A key id names one immutable key pair (it is
    /// the hash of the public half), so the unsealed pair is kept per key id (bounded): placing a job no longer decrypts two
    /// keys (#11). Which keys are valid is still read from the store every time.
    /// </summary>
    public SigningKeyPair Open(NetworkKeyRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (_opened.TryGetValue(row.KeyId, out var cached) && cached.PublicKey.AsSpan().SequenceEqual(row.PublicKey))
        {
            return cached;
        }

        var pair = new SigningKeyPair(masterKey.Decrypt(row.PrivateKeyEnc, row.KeyId), row.PublicKey);
        if (_opened.Count >= MaxOpenedKeys)
        {
            _opened.Clear();
        }

        _opened[row.KeyId] = pair;
        return pair;
    }
}

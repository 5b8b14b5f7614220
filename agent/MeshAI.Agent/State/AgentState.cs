using System.Text.Json;
using System.Text.Json.Serialization;
using Google.Protobuf;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Device.V1;

namespace MeshAI.Agent.State;

/// <summary>The device's private keys and installation id, generated on the device and never sent anywhere.</summary>
public sealed record AgentKeys(
    [property: JsonPropertyName("installation_id")] string InstallationId,
    [property: JsonPropertyName("signing_private_key")] byte[] SigningPrivateKey,
    [property: JsonPropertyName("signing_public_key")] byte[] SigningPublicKey,
    [property: JsonPropertyName("encryption_private_key")] byte[] EncryptionPrivateKey,
    [property: JsonPropertyName("encryption_public_key")] byte[] EncryptionPublicKey)
{
    /// <summary>The ed25519 signing pair.</summary>
    [JsonIgnore]
    public SigningKeyPair Signing => new(SigningPrivateKey, SigningPublicKey);

    /// <summary>New keys (NSec ed25519 + X25519) and a new installation id.</summary>
    public static AgentKeys Generate()
    {
        var signing = SigningKeyPair.Generate();
        var encryption = EncryptionKeyPair.Generate();
        return new AgentKeys(Common.Ids.New("inst"), signing.PrivateKey, signing.PublicKey, encryption.PrivateKey, encryption.PublicKey);
    }
}

/// <summary>A network public key the device trusts (CA or control signing), as stored.</summary>
public sealed record TrustedKey(
    [property: JsonPropertyName("key_id")] string KeyId,
    [property: JsonPropertyName("public_key")] byte[] PublicKey,
    [property: JsonPropertyName("purpose")] string Purpose,
    [property: JsonPropertyName("not_after")] DateTimeOffset? NotAfter);

/// <summary>
/// What the device got by joining: its identity, certificate, the network's keys and where to connect; then what pushed
/// NetworkUpdates told it since (the serial it holds, revoked peers).
/// </summary>
public sealed record AgentEnrollment(
    [property: JsonPropertyName("server_url")] string ServerUrl,
    [property: JsonPropertyName("fingerprint")] string Fingerprint,
    [property: JsonPropertyName("relay_url")] string RelayUrl,
    [property: JsonPropertyName("relay_id")] string RelayId,
    [property: JsonPropertyName("device_id")] string DeviceId,
    [property: JsonPropertyName("network_id")] string NetworkId,
    [property: JsonPropertyName("device_name")] string DeviceName,
    [property: JsonPropertyName("certificate")] byte[] Certificate,
    [property: JsonPropertyName("network_keys")] IReadOnlyList<TrustedKey> NetworkKeys,
    [property: JsonPropertyName("contribution_enabled")] bool ContributionEnabled = true,
    [property: JsonPropertyName("relay_urls")] IReadOnlyList<string>? RelayUrls = null,
    [property: JsonPropertyName("network_serial")] long NetworkSerial = 0,
    [property: JsonPropertyName("revoked_peers")] IReadOnlyList<string>? RevokedPeers = null)
{
    /// <summary>Every relay address to try, in order (the single relay_url of older enrollments when no list was given).</summary>
    public IReadOnlyList<string> RelayAddresses() => RelayUrls is { Count: > 0 } urls ? urls : [RelayUrl];

    /// <summary>The stored certificate as a message.</summary>
    public DeviceCertificate ParsedCertificate() => DeviceCertificate.Parser.ParseFrom(Certificate);

    /// <summary>Control signing keys valid at <paramref name="now"/> by key id (both the server's id and the computed one).</summary>
    public IReadOnlyDictionary<string, byte[]> ControlKeys(DateTimeOffset now)
    {
        var keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var key in NetworkKeys.Where(k => k.Purpose == nameof(NetworkKeyPurpose.ControlSigning) && (k.NotAfter is null || k.NotAfter > now)))
        {
            keys[key.KeyId] = key.PublicKey;
            keys[SigningKeyPair.KeyId(key.PublicKey)] = key.PublicKey;
        }

        return keys;
    }

    /// <summary>Builds the enrollment from the server's registration answer.</summary>
    public static AgentEnrollment FromRegistration(string serverUrl, string fingerprint, string deviceName, RegisterDeviceResponse response) =>
        new(
            serverUrl,
            fingerprint,
            string.IsNullOrEmpty(response.RelayUrl) ? serverUrl : response.RelayUrl,
            "relay-local",
            response.Device?.DeviceId ?? "",
            response.Device?.NetworkId ?? "",
            deviceName,
            response.Certificate?.ToByteArray() ?? [],
            response.NetworkKeys.Select(k => new TrustedKey(k.KeyId, k.PublicKey.ToByteArray(), k.Purpose.ToString(), k.NotAfter?.ToDateTimeOffset())).ToList(),
            RelayUrls: response.RelayUrls.Count > 0 ? [.. response.RelayUrls] : null);
}

/// <summary>
/// The agent's state directory (default <c>$MESHAI_HOME/agent</c>, i.e. <c>~/.meshai/agent</c>): <c>keys.json</c> (private keys + installation id) and
/// <c>enrollment.json</c> (certificate, network keys, server url + pinned fingerprint). Directory 0700, files 0600.
/// </summary>
public sealed class AgentStateStore
{
    private const UnixFileMode DirMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Uses <paramref name="directory"/>, or the default when null.</summary>
    public AgentStateStore(string? directory) => Directory = directory ?? DefaultDirectory;

    /// <summary><c>$MESHAI_HOME/agent</c> (<c>~/.meshai/agent</c>).</summary>
    public static string DefaultDirectory => MeshAI.Common.Local.MeshHome.CurrentAgentDirectory;

    /// <summary>The state directory.</summary>
    public string Directory { get; }

    /// <summary>Legacy single-model directory for embeddings (still scanned: it sits in <see cref="ModelsDirectory"/>).</summary>
    public string EmbeddingsModelDirectory => Path.Combine(ModelsDirectory, "embeddings");

    /// <summary>The device's model cache: one directory per model, each with its manifest.json.</summary>
    public string ModelsDirectory => Path.Combine(Directory, "models");

    private string KeysPath => Path.Combine(Directory, "keys.json");

    private string EnrollmentPath => Path.Combine(Directory, "enrollment.json");

    /// <summary>The device keys, generated and stored on first use.</summary>
    public AgentKeys LoadOrCreateKeys()
    {
        if (File.Exists(KeysPath))
        {
            return JsonSerializer.Deserialize<AgentKeys>(File.ReadAllText(KeysPath), Json) ?? throw new InvalidDataException($"{KeysPath} is empty");
        }

        var keys = AgentKeys.Generate();
        Write(KeysPath, JsonSerializer.Serialize(keys, Json));
        return keys;
    }

    /// <summary>The stored keys, or null before the first join.</summary>
    public AgentKeys? LoadKeys() =>
        File.Exists(KeysPath) ? JsonSerializer.Deserialize<AgentKeys>(File.ReadAllText(KeysPath), Json) : null;

    /// <summary>The enrollment, or null when the device has not joined.</summary>
    public AgentEnrollment? LoadEnrollment() =>
        File.Exists(EnrollmentPath) ? JsonSerializer.Deserialize<AgentEnrollment>(File.ReadAllText(EnrollmentPath), Json) : null;

    /// <summary>Stores the enrollment.</summary>
    public void SaveEnrollment(AgentEnrollment enrollment) => Write(EnrollmentPath, JsonSerializer.Serialize(enrollment, Json));

    private void Write(string path, string content)
    {
        EnsureDirectory();
        var temp = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = PrivateFile;
        }

        using (var stream = new FileStream(temp, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(content);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temp, PrivateFile);
        }

        File.Move(temp, path, overwrite: true);
    }

    private void EnsureDirectory()
    {
        if (OperatingSystem.IsWindows())
        {
            System.IO.Directory.CreateDirectory(Directory);
            return;
        }

        System.IO.Directory.CreateDirectory(Directory, DirMode);
        File.SetUnixFileMode(Directory, DirMode);
    }
}

using System.Text.RegularExpressions;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Model.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Models;

/// <summary>
/// Model manifests per network: admins publish (validated, then signed here with the network's control key), members
/// and the network's own devices read. Devices verify the signature against the control keys from their enrollment,
/// so the store and the transport need not be trusted for integrity. Every publish is pushed to the network's connected
/// agents as a NetworkUpdate (<see cref="NetworkUpdates.PublishModelsChangedAsync"/>).
/// </summary>
public sealed partial class ModelCatalog(
    ModelRepository models,
    NetworkAccess access,
    NetworkKeyVault keys,
    IDeviceAuthority devices,
    NetworkUpdates updates,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock)
{
    /// <summary>Most files one manifest may list.</summary>
    public const int MaxFiles = 64;

    /// <summary>PublishModelManifest: admins only.</summary>
    public async Task<ModelManifest> PublishAsync(Caller caller, PublishModelManifestRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var proposed = request.Details ?? throw RpcErrors.Required("details");
        await access.RequireAdminAsync(caller, proposed.NetworkId, "publish model manifests", ct);
        Validate(proposed);

        var details = proposed.Clone();
        var now = clock.GetUtcNow(); // one instant: the signed publish_time and the row's (pushed as models_changed_unix_ms)
        details.PublishTime = Timestamp.FromDateTimeOffset(now);
        foreach (var file in details.Files)
        {
            file.Sha256 = file.Sha256.ToLowerInvariant();
        }

        var set = await keys.GetKeysAsync(details.NetworkId, ct);
        var manifest = ModelManifests.Sign(details, set.Control, Ids.New("mdl"));
        var row = new ModelManifestRow
        {
            ManifestId = manifest.ManifestId,
            NetworkId = details.NetworkId,
            Name = details.Name,
            Version = details.Version,
            Manifest = manifest.ToByteArray(),
            PublishTimeMs = now.ToUnixTimeMilliseconds(),
            PublishedBy = caller.UserId,
        };
        if (!await models.InsertAsync(row, ct))
        {
            throw RpcErrors.AlreadyExists("model manifest", $"{details.Name} version {details.Version}");
        }

        // Connected agents learn of it now (NetworkUpdate.models_changed_unix_ms) rather than at their next start.
        await updates.PublishModelsChangedAsync(details.NetworkId, row.PublishTimeMs, ct);
        return manifest;
    }

    /// <summary>GetModelManifest: the newest signed version of a name.</summary>
    public async Task<ModelManifest> GetAsync(string networkId, string name, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw RpcErrors.Required("name");
        }

        var row = await models.GetLatestAsync(networkId, name, ct) ?? throw RpcErrors.NotFound("model manifest", name);
        return ModelManifest.Parser.ParseFrom(row.Manifest);
    }

    /// <summary>ListModelManifests: the newest signed version of every name.</summary>
    public async Task<IReadOnlyList<ModelManifest>> ListAsync(string networkId, CancellationToken ct) =>
        (await models.ListLatestAsync(networkId, ct)).Select(r => ModelManifest.Parser.ParseFrom(r.Manifest)).ToList();

    /// <summary>A signed-in member of the network may read its manifests (non-members get NOT_FOUND).</summary>
    public Task RequireMemberAsync(Caller caller, string networkId, CancellationToken ct) => access.RequireMemberAsync(caller, networkId, ct);

    /// <summary>
    /// A device of the network may read its manifests: its certificate must verify (not revoked, trusted CA) and it must
    /// sign <see cref="ModelManifests.FetchProof"/> with its device key within the allowed clock skew.
    /// </summary>
    /// <returns>The authenticated device (BlobService.ReadJobBlob authorises it further against its job).</returns>
    public async Task<DeviceIdentity> RequireDeviceAsync(byte[] certificateBytes, long timestampUnixMs, byte[] proof, string networkId, CancellationToken ct)
    {
        DeviceCertificate certificate;
        try
        {
            certificate = DeviceCertificate.Parser.ParseFrom(certificateBytes);
        }
        catch (InvalidProtocolBufferException)
        {
            throw RpcErrors.Unauthenticated("device certificate refused: " + MeshAI.Control.Devices.DeviceAuthority.NotTrusted, ErrorReasons.DeviceCertificateRefused);
        }

        var skew = options.Value.Limits.ProofClockSkewSeconds;
        if (Math.Abs(clock.GetUtcNow().ToUnixTimeMilliseconds() - timestampUnixMs) > skew * 1000L)
        {
            throw RpcErrors.Unauthenticated($"device proof timestamp differs from the server's clock by more than {skew} s", ErrorReasons.DeviceProofInvalid);
        }

        var (identity, reason) = await devices.AuthenticateAsync(certificate, ct);
        if (identity is null)
        {
            throw RpcErrors.Unauthenticated("device certificate refused: " + reason, ErrorReasons.DeviceCertificateRefused);
        }

        if (!SigningKeyPair.Verify(identity.SigningPublicKey, ModelManifests.FetchProof(identity.CertificateSerial, networkId, timestampUnixMs), proof))
        {
            throw RpcErrors.Unauthenticated("device proof of key possession does not verify", ErrorReasons.DeviceProofInvalid);
        }

        if (!string.Equals(identity.NetworkId, networkId, StringComparison.Ordinal))
        {
            throw RpcErrors.NotFound("network", networkId);
        }

        return identity;
    }

    /// <summary>Rejects a manifest that a device could not safely fetch and pin.</summary>
    public static void Validate(ModelManifestDetails details)
    {
        ArgumentNullException.ThrowIfNull(details);
        if (!NamePattern().IsMatch(details.Name))
        {
            throw RpcErrors.InvalidArgument("details.name", "1-100 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit");
        }

        if (string.IsNullOrWhiteSpace(details.Version) || details.Version.Length > 64)
        {
            throw RpcErrors.InvalidArgument("details.version", "required, at most 64 characters");
        }

        if (details.WorkloadClass == WorkloadClass.Unspecified)
        {
            throw RpcErrors.Required("details.workload_class");
        }

        if (details.Files.Count is 0 or > MaxFiles)
        {
            throw RpcErrors.InvalidArgument("details.files", $"1 to {MaxFiles} files");
        }

        var paths = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < details.Files.Count; i++)
        {
            var file = details.Files[i];
            var field = $"details.files[{i}]";
            if (!SafeRelativePath(file.Path) || !paths.Add(file.Path) || file.Path == "manifest.json")
            {
                throw RpcErrors.InvalidArgument(field + ".path", "a unique relative path inside the model directory (no '..', not absolute, not manifest.json)");
            }

            if (!Sha256Pattern().IsMatch(file.Sha256))
            {
                throw RpcErrors.InvalidArgument(field + ".sha256", "64 hex characters");
            }

            if (file.SizeBytes <= 0)
            {
                throw RpcErrors.InvalidArgument(field + ".size_bytes", "must be positive");
            }

            if (!Uri.TryCreate(file.Source, UriKind.Absolute, out var source) || (source.Scheme != Uri.UriSchemeHttps && source.Scheme != Uri.UriSchemeFile))
            {
                throw RpcErrors.InvalidArgument(field + ".source", "an https:// or file:// URL (the network's trusted origin)");
            }
        }
    }

    private static bool SafeRelativePath(string path) =>
        !string.IsNullOrEmpty(path) && path.Length <= 255 && !Path.IsPathRooted(path) && !path.Contains('\\', StringComparison.Ordinal) &&
        path.Split('/').All(part => part.Length > 0 && part != "." && part != "..");

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,99}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[0-9a-fA-F]{64}$")]
    private static partial Regex Sha256Pattern();
}

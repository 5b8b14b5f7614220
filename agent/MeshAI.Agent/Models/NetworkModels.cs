using System.Globalization;
using Grpc.Core;
using MeshAI.Agent.State;
using MeshAI.Common.Crypto;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Model.V1;
using LocalManifest = MeshAI.Agent.Embeddings.ModelManifest;
using SignedManifest = MeshAI.Contracts.Model.V1.ModelManifest;

namespace MeshAI.Agent.Models;

/// <summary>What one automatic sync did with one network manifest.</summary>
public sealed record ModelSyncOutcome(string Name, string Version, string Action, string Detail);

/// <summary>
/// The network's model manifests as this device sees them: read from control as the device (certificate + proof of key
/// possession in the call metadata) and installed through <see cref="ModelInstaller"/>, which verifies the control-key
/// signature and every file before anything is swapped in.
/// </summary>
public sealed class NetworkModels(AgentEnrollment enrollment, AgentKeys keys)
{
    /// <summary>Deadline of one manifest call.</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The newest signed manifest of <paramref name="name"/>.</summary>
    public async Task<SignedManifest> GetAsync(string name, CancellationToken ct)
    {
        using var channel = GrpcChannels.Create(enrollment.ServerUrl, enrollment.Fingerprint);
        var client = new ModelService.ModelServiceClient(channel);
        return (await client.GetModelManifestAsync(new GetModelManifestRequest { NetworkId = enrollment.NetworkId, Name = name },
            DeviceHeaders(), DateTime.UtcNow.Add(CallTimeout), ct)).Manifest;
    }

    /// <summary>The newest signed manifest of every name.</summary>
    public async Task<IReadOnlyList<SignedManifest>> ListAsync(CancellationToken ct)
    {
        using var channel = GrpcChannels.Create(enrollment.ServerUrl, enrollment.Fingerprint);
        var client = new ModelService.ModelServiceClient(channel);
        return (await client.ListModelManifestsAsync(new ListModelManifestsRequest { NetworkId = enrollment.NetworkId },
            DeviceHeaders(), DateTime.UtcNow.Add(CallTimeout), ct)).Manifests;
    }

    /// <summary>The details of a manifest whose signature verifies against this device's control keys, else null with why.</summary>
    public ModelManifestDetails? Verify(SignedManifest signed, out string reason) =>
        ModelManifests.Verify(signed, enrollment.ControlKeys(DateTimeOffset.UtcNow), enrollment.NetworkId, out reason);

    /// <summary>Verifies and installs <paramref name="signed"/> into <paramref name="target"/>.</summary>
    public Task<ModelManifestDetails> InstallAsync(ModelInstaller installer, SignedManifest signed, string target, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(installer);
        return installer.InstallAsync(signed, enrollment.ControlKeys(DateTimeOffset.UtcNow), enrollment.NetworkId, target, ct);
    }

    /// <summary>
    /// The automatic part: every embeddings manifest marked <c>auto_install</c> whose files this device does not already
    /// hold (same paths and SHA-256 in a verified local model of that name) is fetched into <c>ROOT/NAME</c>. Failures are
    /// reported per model and never stop the others (nothing that fails a check is installed).
    /// </summary>
    public async Task<IReadOnlyList<ModelSyncOutcome>> SyncAsync(ModelInstaller installer, string root, LocalModelSet installed, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(installed);
        var outcomes = new List<ModelSyncOutcome>();
        foreach (var signed in await ListAsync(ct))
        {
            var details = Verify(signed, out var reason);
            if (details is null)
            {
                outcomes.Add(new ModelSyncOutcome("?", "", "refused", "manifest signature refused: " + reason));
                continue;
            }

            if (!details.AutoInstall || details.WorkloadClass != WorkloadClass.Embeddings)
            {
                continue;
            }

            if (installed.Find(details.Name) is { } local && Holds(local.Manifest, details))
            {
                outcomes.Add(new ModelSyncOutcome(details.Name, details.Version, "present", local.Directory));
                continue;
            }

            try
            {
                await InstallAsync(installer, signed, Path.Combine(root, details.Name), ct);
                outcomes.Add(new ModelSyncOutcome(details.Name, details.Version, "fetched", Path.Combine(root, details.Name)));
            }
            catch (Exception ex) when (ex is Embeddings.ModelVerificationException or IOException or HttpRequestException or UnauthorizedAccessException)
            {
                outcomes.Add(new ModelSyncOutcome(details.Name, details.Version, "refused", ex.Message));
            }
        }

        return outcomes;
    }

    /// <summary>True when <paramref name="local"/> pins exactly the files (path + SHA-256) the network's manifest pins.</summary>
    public static bool Holds(LocalManifest local, ModelManifestDetails details)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentNullException.ThrowIfNull(details);
        var pinned = local.Files.ToDictionary(f => f.Path, f => f.Sha256, StringComparer.Ordinal);
        return details.Files.Count == pinned.Count &&
               details.Files.All(f => pinned.TryGetValue(f.Path, out var sha) && string.Equals(sha, f.Sha256, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The device's certificate and a fresh proof of key possession, as ModelService expects them.</summary>
    private Metadata DeviceHeaders() => DeviceHeaders(enrollment, keys);

    /// <summary>The device's certificate and a fresh proof of key possession (ModelService reads, BlobService.ReadJobBlob).</summary>
    public static Metadata DeviceHeaders(AgentEnrollment enrollment, AgentKeys keys)
    {
        ArgumentNullException.ThrowIfNull(enrollment);
        ArgumentNullException.ThrowIfNull(keys);
        var serial = DeviceCertificateDetails.Parser.ParseFrom(enrollment.ParsedCertificate().Details).Serial;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        return new Metadata
        {
            { ModelManifests.DeviceCertificateHeader, enrollment.Certificate },
            { ModelManifests.DeviceTimestampHeader, now.ToString(CultureInfo.InvariantCulture) },
            { ModelManifests.DeviceProofHeader, keys.Signing.Sign(ModelManifests.FetchProof(serial, enrollment.NetworkId, now)) },
        };
    }
}

using System.Globalization;
using Grpc.Core;
using MeshAI.Agent.Chat;
using MeshAI.Agent.Embeddings;
using MeshAI.Agent.Models;
using MeshAI.Agent.State;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Model.V1;

namespace MeshAI.Agent.Commands;

/// <summary>meshai-agent models …: generated test models and network model manifests.</summary>
public sealed partial class AgentCommands
{
    private int GenerateTinyChat(CommandLine line)
    {
        var outDir = line.Get("out");
        if (string.IsNullOrEmpty(outDir))
        {
            _err.WriteLine("error: models generate-tiny-chat needs --out DIR");
            return ExitCodes.Usage;
        }

        var seed = ulong.TryParse(line.Get("seed"), out var s) ? s : 42UL;
        var manifest = TinyChatModelGenerator.Generate(outDir, seed);
        _out.WriteLine($"MESHAI_MODEL_GENERATED dir={Path.GetFullPath(outDir)} name={manifest.Name} file={manifest.ModelFile} context={manifest.MaxTokens}");
        _out.WriteLine("note: random weights — a llama GGUF for exercising LLamaSharp; the text it writes is meaningless.");
        return ExitCodes.Ok;
    }

    /// <summary>
    /// models fetch --name NAME: gets the network's signed manifest from control (authenticated as this device), then
    /// <see cref="ModelInstaller"/> verifies the signature and every file before the model directory is swapped in.
    /// </summary>
    private async Task<int> FetchModelAsync(CommandLine line, CancellationToken cancellationToken)
    {
        var name = line.Get("name");
        if (string.IsNullOrEmpty(name))
        {
            await _err.WriteLineAsync("error: models fetch needs --name NAME");
            return ExitCodes.Usage;
        }

        var store = new AgentStateStore(line.Get("state-dir"));
        var enrollment = store.LoadEnrollment();
        var keys = store.LoadKeys();
        if (enrollment is null || keys is null)
        {
            await _err.WriteLineAsync($"error: this device has not joined a network (no state in {store.Directory})");
            return ExitCodes.Usage;
        }

        MeshAI.Contracts.Model.V1.ModelManifest signed;
        try
        {
            using var channel = GrpcChannels.Create(enrollment.ServerUrl, enrollment.Fingerprint);
            var client = new ModelService.ModelServiceClient(channel);
            signed = (await client.GetModelManifestAsync(
                new GetModelManifestRequest { NetworkId = enrollment.NetworkId, Name = name },
                DeviceHeaders(enrollment, keys),
                DateTime.UtcNow.AddSeconds(30),
                cancellationToken)).Manifest;
        }
        catch (RpcException ex)
        {
            await _err.WriteLineAsync($"error: cannot get model manifest {name}: {RpcErrors.Describe(ex)}");
            return ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded ? ExitCodes.Unreachable : ExitCodes.Refused;
        }

        var origins = (line.Get("model-origin") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
        var installer = new ModelInstaller(http, origins);
        string target = line.Get("out") ?? "";
        try
        {
            var preview = ModelManifests.Verify(signed, enrollment.ControlKeys(DateTimeOffset.UtcNow), enrollment.NetworkId, out _);
            if (string.IsNullOrEmpty(target))
            {
                target = preview?.WorkloadClass switch
                {
                    WorkloadClass.Embeddings => store.EmbeddingsModelDirectory,
                    WorkloadClass.SmallChat => Path.Combine(store.Directory, "models", "chat"),
                    _ => Path.Combine(store.Directory, "models", name),
                };
            }

            var details = await installer.InstallAsync(signed, enrollment.ControlKeys(DateTimeOffset.UtcNow), enrollment.NetworkId, target, cancellationToken);
            await _out.WriteLineAsync($"MESHAI_MODEL_FETCHED name={details.Name} version={details.Version} files={details.Files.Count} dir={Path.GetFullPath(target)}");
            return ExitCodes.Ok;
        }
        catch (ModelVerificationException ex)
        {
            await _err.WriteLineAsync($"MESHAI_MODEL_REFUSED name={name}: {ex.Message} (nothing was installed)");
            return ExitCodes.Refused;
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or UnauthorizedAccessException)
        {
            await _err.WriteLineAsync($"error: fetching model {name} failed: {ex.Message} (nothing was installed)");
            return ExitCodes.Error;
        }
    }

    /// <summary>The device's certificate and a fresh proof of key possession, as ModelService expects them.</summary>
    private static Metadata DeviceHeaders(AgentEnrollment enrollment, AgentKeys keys)
    {
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

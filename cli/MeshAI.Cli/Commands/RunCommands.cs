using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using MeshAI.Cli.Output;
using MeshAI.Client;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet run embeddings|echo|ocr|chat|transcribe`: submit a job, show its status changes on stderr, print the result.</summary>
public static class RunCommands
{
    /// <summary>Spellings accepted by --routing.</summary>
    public static readonly string[] RoutingNames = ["auto", "pinned_device", "pinned_tier", "local_prefer"];

    /// <summary>The `run` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var run = new Command("run", "Run a workload on the network");
        run.Add(Embeddings(runtime));
        run.Add(Echo(runtime));
        run.Add(Ocr(runtime));
        run.Add(Chat(runtime));
        run.Add(Transcribe(runtime));
        return run;
    }

    /// <summary>The L2 norm of a vector.</summary>
    public static double Norm(IReadOnlyList<float> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        double sum = 0;
        foreach (var v in values)
        {
            sum += (double)v * v;
        }

        return Math.Sqrt(sum);
    }

    /// <summary>Human rendering of an embeddings result: per text its dimension, norm and first 8 values.</summary>
    public static void WriteEmbeddings(TextWriter writer, IReadOnlyList<string> texts, EmbeddingsOutput output)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(output);
        for (var i = 0; i < output.Embeddings.Count; i++)
        {
            var values = output.Embeddings[i].Values;
            var text = i < texts.Count ? texts[i] : "";
            var first = string.Join(", ", values.Take(8).Select(v => v.ToString("F4", CultureInfo.InvariantCulture)));
            writer.WriteLine($"[{i + 1}] \"{Display.Clip(text, 60)}\"");
            writer.WriteLine($"    dimension {values.Count}, norm {Norm(values).ToString("F6", CultureInfo.InvariantCulture)}");
            writer.WriteLine($"    first 8: [{first}{(values.Count > 8 ? ", …" : "")}]");
        }
    }

    /// <summary>Machine rendering of an embeddings result.</summary>
    public static JsonObject EmbeddingsJson(Job job, IReadOnlyList<string> texts, EmbeddingsOutput output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var embeddings = new JsonArray();
        for (var i = 0; i < output.Embeddings.Count; i++)
        {
            var values = output.Embeddings[i].Values;
            embeddings.Add(new JsonObject
            {
                ["text"] = i < texts.Count ? texts[i] : "",
                ["dimension"] = values.Count,
                ["norm"] = Norm(values),
                ["tokenCount"] = i < output.TokenCounts.Count ? output.TokenCounts[i] : null,
                ["values"] = new JsonArray(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
            });
        }

        var node = JobSummaryJson(job);
        node["model"] = output.Model;
        node["dimension"] = output.Dimension;
        node["embeddings"] = embeddings;
        return node;
    }

    /// <summary>The job fields every `run --json` output starts with.</summary>
    public static JsonObject JobSummaryJson(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        return new JsonObject
        {
            ["jobId"] = job.JobId,
            ["networkId"] = job.NetworkId,
            ["state"] = job.State.ToString().ToUpperInvariant(),
            ["deviceId"] = job.DeviceId,
            ["tier"] = Display.Name(job.Tier),
            ["latencyMs"] = job.LatencyMs,
            ["runtimeMs"] = job.RuntimeMs,
            ["costMicro"] = job.CostMicro,
            ["cost"] = Credits.Format(job.CostMicro),
            ["traceId"] = job.TraceId,
        };
    }

    private static Command Embeddings(CliRuntime runtime)
    {
        var text = new Option<string[]>("--text", "-t") { Description = "Text to embed (repeat for several)", Required = true, Arity = ArgumentArity.OneOrMore };
        var model = new Option<string>("--model") { Description = "Model name from the network's manifests (default: the device default)" };
        var options = new RoutingOptions();
        var command = new Command("embeddings", "Embed texts on the network") { text, model };
        options.AddTo(command);
        runtime.Bind(command, async ctx =>
        {
            var texts = ctx.Get(text) ?? [];
            var input = new WorkloadInput { Embeddings = new EmbeddingsInput { Model = ctx.Get(model) ?? "" } };
            input.Embeddings.Texts.Add(texts);
            var run = await RunAsync(ctx, options, input);
            if (run.Output.OutputCase != WorkloadOutput.OutputOneofCase.Embeddings)
            {
                throw new CliException($"Job {run.Job.JobId} returned {run.Output.OutputCase} output instead of embeddings.");
            }

            if (ctx.Json)
            {
                ctx.WriteJson(EmbeddingsJson(run.Job, texts, run.Output.Embeddings));
            }
            else
            {
                WriteEmbeddings(ctx.Out, texts, run.Output.Embeddings);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Echo(CliRuntime runtime)
    {
        var data = new Option<string>("--data", "-d") { Description = "Text the device sends back", Required = true };
        var delay = new Option<int>("--delay-ms") { Description = "Milliseconds the device waits before answering" };
        var options = new RoutingOptions();
        var command = new Command("echo", "Diagnostic echo: the device returns its input") { data, delay };
        options.AddTo(command);
        runtime.Bind(command, async ctx =>
        {
            var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8(ctx.Get(data) ?? ""), DelayMs = ctx.Get(delay) } };
            var run = await RunAsync(ctx, options, input);
            var echoed = run.Output.Echo?.Data ?? ByteString.Empty;
            if (ctx.Json)
            {
                var node = JobSummaryJson(run.Job);
                node["data"] = echoed.ToStringUtf8();
                node["dataBase64"] = echoed.ToBase64();
                ctx.WriteJson(node);
            }
            else
            {
                ctx.Out.WriteLine(echoed.ToStringUtf8());
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Ocr(CliRuntime runtime)
    {
        var image = new Option<FileInfo>("--image") { Description = "Image file (PNG/JPEG)", Required = true, HelpName = "PATH" };
        image.AcceptExistingOnly();
        var language = new Option<string>("--language") { Description = "Language hint, e.g. eng" };
        var options = new RoutingOptions();
        var command = new Command("ocr", "Recognise the text in an image") { image, language };
        options.AddTo(command);
        runtime.Bind(command, async ctx =>
        {
            var file = ctx.Get(image)!;
            var bytes = await File.ReadAllBytesAsync(file.FullName, ctx.CancellationToken);
            var blob = new Blob
            {
                Name = "image",
                ContentType = file.Extension.Equals(".png", StringComparison.OrdinalIgnoreCase) ? "image/png" : "image/jpeg",
                InlineData = ByteString.CopyFrom(bytes),
                Sha256 = Convert.ToHexStringLower(SHA256.HashData(bytes)),
                SizeBytes = bytes.Length,
            };
            var input = new WorkloadInput { Ocr = new OcrInput { ImageBlob = "image", Language = ctx.Get(language) ?? "" } };
            var run = await RunAsync(ctx, options, input, [blob]);
            var ocr = run.Output.Ocr ?? new OcrOutput();
            if (ctx.Json)
            {
                var node = JobSummaryJson(run.Job);
                node["ocr"] = JsonOutput.Node(ocr);
                ctx.WriteJson(node);
            }
            else
            {
                ctx.Out.WriteLine(ocr.Text);
                ctx.Error.WriteLine($"{ocr.Words.Count} words, mean confidence {ocr.MeanConfidence.ToString("F2", CultureInfo.InvariantCulture)}");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Chat(CliRuntime runtime)
    {
        var prompt = new Option<string>("--prompt", "-p") { Description = "What to ask", Required = true };
        var system = new Option<string>("--system") { Description = "System prompt" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens to generate (default 256)" };
        var contextTokens = new Option<int>("--context-tokens") { Description = "Context window (default 2048)" };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature (default 0.7)" };
        var stop = new Option<string[]>("--stop") { Description = "Stop sequence (repeatable)" };
        var model = new Option<string>("--model") { Description = "Model name (default: the device default)" };
        var options = new RoutingOptions();
        var command = new Command("chat", "Chat with a small model; tokens print as they arrive") { prompt, system, maxTokens, contextTokens, temperature, stop, model };
        options.AddTo(command);
        runtime.Bind(command, async ctx =>
        {
            var chat = new ChatInput
            {
                Model = ctx.Get(model) ?? "",
                MaxTokens = ctx.Get(maxTokens),
                ContextTokens = ctx.Get(contextTokens),
                Temperature = ctx.Get(temperature),
            };
            if (ctx.Get(system) is { Length: > 0 } systemText)
            {
                chat.Messages.Add(new ChatMessage { Role = ChatRole.System, Content = systemText });
            }

            chat.Messages.Add(new ChatMessage { Role = ChatRole.User, Content = ctx.Get(prompt) ?? "" });
            chat.Stop.Add(ctx.Get(stop) ?? []);
            var streamed = 0;
            var run = await RunAsync(ctx, options, new WorkloadInput { Chat = chat }, onFrame: frame =>
            {
                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Token && !ctx.Json)
                {
                    ctx.Out.Write(frame.Token.Token.ToStringUtf8());
                    ctx.Out.Flush();
                    streamed++;
                }
            });
            var output = run.Output.Chat ?? new ChatOutput();
            if (ctx.Json)
            {
                var node = JobSummaryJson(run.Job);
                node["chat"] = JsonOutput.Node(output);
                ctx.WriteJson(node);
            }
            else
            {
                if (streamed == 0)
                {
                    ctx.Out.Write(output.Text);
                }

                ctx.Out.WriteLine();
                ctx.Error.WriteLine($"{output.CompletionTokens} tokens ({output.FinishReason})");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Transcribe(CliRuntime runtime)
    {
        var audio = new Option<FileInfo>("--audio") { Description = "WAV file", Required = true, HelpName = "PATH" };
        audio.AcceptExistingOnly();
        var language = new Option<string>("--language") { Description = "Language hint, e.g. en" };
        var chunkMs = new Option<int>("--chunk-ms") { Description = "Chunk length in ms (default: the server's)" };
        var options = new RoutingOptions();
        var command = new Command("transcribe", "Transcribe speech in a WAV file") { audio, language, chunkMs };
        options.AddTo(command);
        runtime.Bind(command, async ctx =>
        {
            var file = ctx.Get(audio)!;
            var bytes = await File.ReadAllBytesAsync(file.FullName, ctx.CancellationToken);
            var blob = new Blob
            {
                Name = "audio",
                ContentType = "audio/wav",
                InlineData = ByteString.CopyFrom(bytes),
                Sha256 = Convert.ToHexStringLower(SHA256.HashData(bytes)),
                SizeBytes = bytes.Length,
            };
            var input = new WorkloadInput { Transcribe = new TranscribeInput { AudioBlob = "audio", Language = ctx.Get(language) ?? "", ChunkMs = ctx.Get(chunkMs) } };
            var run = await RunAsync(ctx, options, input, [blob], frame =>
            {
                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Progress && !ctx.Json && frame.Progress.ChunkCount > 0)
                {
                    var done = frame.Progress.ChunksCompleted;
                    var total = frame.Progress.ChunkCount;
                    var bar = new string('#', 20 * done / total).PadRight(20, '.');
                    ctx.Error.WriteLine($"[{bar}] {done}/{total} chunks");
                }
            });
            var output = run.Output.Transcribe ?? new TranscribeOutput();
            if (ctx.Json)
            {
                var node = JobSummaryJson(run.Job);
                node["transcript"] = JsonOutput.Node(output);
                ctx.WriteJson(node);
            }
            else
            {
                ctx.Out.WriteLine(output.Text);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static async Task<JobRun> RunAsync(CliContext ctx, RoutingOptions options, WorkloadInput input, IReadOnlyList<Blob>? blobs = null, Action<WatchJobResponse>? onFrame = null)
    {
        var networkId = await ctx.NetworkIdAsync(options.Network);
        var routing = options.ToRouting(ctx.ParseResult) with { Blobs = blobs ?? [] };
        using var client = await ctx.ConnectAsync();
        var status = new StatusLine(ctx.Error);
        try
        {
            var run = await client.RunAsync(networkId, input, routing, frame =>
            {
                status.OnFrame(frame);
                onFrame?.Invoke(frame);
            }, ctx.CancellationToken);
            status.Finish(run.Job);
            return run;
        }
        catch (MeshJobException ex) when (ex.Job is not null)
        {
            status.Finish(ex.Job);
            throw;
        }
        finally
        {
            status.End();
        }
    }

    /// <summary>--network, --routing, --device, --tier, --max-cost, --timeout, --sensitivity, shared by every `run` command.</summary>
    private sealed class RoutingOptions
    {
        public Option<string> Network { get; } = CliRuntime.NetworkOption();

        public Option<string> Routing { get; } = new("--routing") { Description = "auto | pinned_device | pinned_tier | local_prefer", DefaultValueFactory = _ => "auto" };

        public Option<string[]> Device { get; } = new("--device") { Description = "Device id for pinned_device routing (repeatable)", HelpName = "ID" };

        public Option<string> Tier { get; } = new("--tier") { Description = "Tier for pinned_tier routing (tier0 … tier4)" };

        public Option<string> MaxCost { get; } = new("--max-cost") { Description = "Most credits you accept to pay, e.g. 0.5", HelpName = "CREDITS" };

        public Option<int> Timeout { get; } = new("--timeout") { Description = "Job timeout in seconds (default: the server's)", HelpName = "SECONDS" };

        public Option<string> Sensitivity { get; } = new("--sensitivity") { Description = "Data sensitivity: public | private | sensitive" };

        public void AddTo(Command command)
        {
            Routing.AcceptOnlyFromAmong(RoutingNames);
            Sensitivity.AcceptOnlyFromAmong("public", "private", "sensitive");
            Tier.AcceptOnlyFromAmong("tier0", "tier1", "tier2", "tier3", "tier4");
            MaxCost.Validators.Add(result =>
            {
                if (result.Tokens.Count > 0 && !Credits.TryParse(result.Tokens[0].Value, out _))
                {
                    result.AddError($"--max-cost must be a non-negative number of credits with at most 6 decimals, got '{result.Tokens[0].Value}'.");
                }
            });
            command.Add(Network);
            command.Add(Routing);
            command.Add(Device);
            command.Add(Tier);
            command.Add(MaxCost);
            command.Add(Timeout);
            command.Add(Sensitivity);
            command.Validators.Add(Validate);
        }

        public JobRouting ToRouting(ParseResult parse)
        {
            var maxCost = Credits.TryParse(parse.GetValue(MaxCost), out var micro) ? micro : 0;
            return new JobRouting
            {
                Mode = ModeOf(parse.GetValue(Routing)),
                PinnedDeviceIds = parse.GetValue(Device) ?? [],
                PinnedTier = TierOf(parse.GetValue(Tier)),
                MaxCostMicro = maxCost,
                TimeoutMs = parse.GetValue(Timeout) * 1000L,
                Sensitivity = parse.GetValue(Sensitivity) switch
                {
                    "public" => DataSensitivityTag.Public,
                    "private" => DataSensitivityTag.Private,
                    "sensitive" => DataSensitivityTag.Sensitive,
                    _ => DataSensitivityTag.Unspecified,
                },
            };
        }

        private void Validate(CommandResult result)
        {
            var mode = ModeOf(result.GetValue(Routing));
            var devices = result.GetValue(Device) ?? [];
            if (mode == RoutingMode.PinnedDevice && devices.Length == 0)
            {
                result.AddError("--routing pinned_device needs at least one --device ID.");
            }

            if (mode != RoutingMode.PinnedDevice && devices.Length > 0)
            {
                result.AddError("--device only applies with --routing pinned_device.");
            }

            if (mode == RoutingMode.PinnedTier && string.IsNullOrEmpty(result.GetValue(Tier)))
            {
                result.AddError("--routing pinned_tier needs --tier (tier0 … tier4).");
            }
        }

        private static RoutingMode ModeOf(string? name) => name switch
        {
            "pinned_device" => RoutingMode.PinnedDevice,
            "pinned_tier" => RoutingMode.PinnedTier,
            "local_prefer" => RoutingMode.LocalPrefer,
            _ => RoutingMode.Auto,
        };

        private static Tier TierOf(string? name) =>
            name is { Length: 5 } && name.StartsWith("tier", StringComparison.Ordinal) && char.IsAsciiDigit(name[4])
                ? (Tier)(name[4] - '0' + 1)
                : MeshAI.Contracts.Common.V1.Tier.Unspecified;
    }
}

/// <summary>Prints a job's state changes on one stderr line: "job job_x: queued → running on dev_y → completed in 123 ms".</summary>
public sealed class StatusLine
{
    private readonly TextWriter writer;
    private readonly StringBuilder line = new();
    private JobState lastState = JobState.Unspecified;
    private string lastDevice = "";

    /// <summary>Writes to <paramref name="writer"/> (stderr).</summary>
    public StatusLine(TextWriter writer) => this.writer = writer;

    /// <summary>Everything written so far.</summary>
    public string Text => line.ToString();

    /// <summary>Feeds one watch frame.</summary>
    public void OnFrame(WatchJobResponse frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Status && frame.Status.Job is { } job)
        {
            Show(job);
        }
    }

    /// <summary>Shows the final state (the result frame may come without a COMPLETED status).</summary>
    public void Finish(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        Show(job);
    }

    /// <summary>Ends the line.</summary>
    public void End()
    {
        if (line.Length > 0)
        {
            writer.WriteLine();
            writer.Flush();
            line.Clear();
        }
    }

    private void Show(Job job)
    {
        if (job.State == JobState.Unspecified || (job.State == lastState && job.DeviceId == lastDevice))
        {
            return;
        }

        var segment = job.State switch
        {
            JobState.Queued => "queued",
            JobState.Placed => "placed on " + job.DeviceId,
            JobState.Running => "running on " + job.DeviceId,
            JobState.Completed => $"completed in {Display.Int(job.LatencyMs > 0 ? job.LatencyMs : job.RuntimeMs)} ms" +
                                  (string.IsNullOrEmpty(job.DeviceId) ? "" : " on " + job.DeviceId) +
                                  $" (cost {Credits.Format(job.CostMicro)} credits)",
            JobState.Failed => "failed" + (string.IsNullOrEmpty(job.ErrorMessage) ? "" : ": " + job.ErrorMessage),
            JobState.Cancelled => "cancelled",
            _ => job.State.ToString().ToLowerInvariant(),
        };
        var text = line.Length == 0 ? $"job {job.JobId}: {segment}" : " → " + segment;
        line.Append(text);
        writer.Write(text);
        writer.Flush();
        lastState = job.State;
        lastDevice = job.DeviceId;
    }
}

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
            ctx.FieldLabel = field => IndexIn(field, "embeddings.texts[") is { } i ? $"--text #{i + 1}" : null;
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
        var image = new Option<FileInfo>("--image") { Description = "Image file (PNG, JPEG, GIF, BMP, TIFF or WebP)", Required = true, HelpName = "PATH" };
        image.AcceptExistingOnly();
        var language = new Option<string>("--language") { Description = "Language hint, e.g. eng" };
        var options = new RoutingOptions();
        var command = new Command("ocr", "Recognise the text in an image") { image, language };
        options.AddTo(command);
        runtime.Bind(command, async ctx =>
        {
            var file = ctx.Get(image)!;
            var bytes = await File.ReadAllBytesAsync(file.FullName, ctx.CancellationToken);
            var contentType = ImageContentType(bytes)
                ?? throw new CliUsageException($"--image {file.Name} is not an image (PNG, JPEG, GIF, BMP, TIFF or WebP expected).");
            var blob = new Blob
            {
                Name = "image",
                ContentType = contentType,
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
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature, above 0 and at most 2 (default 0.7)" };
        temperature.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && result.GetValueOrDefault<float>() is var t && (t <= 0 || t > 2))
            {
                result.AddError($"--temperature must be above 0 and at most 2, got '{result.Tokens[0].Value}' (for the same answer every time, pass --seed N).");
            }
        });
        var seed = new Option<uint?>("--seed") { Description = "Sampling seed: the same seed and prompt give the same answer (default: a new random seed per run)", HelpName = "N" };
        var stop = new Option<string[]>("--stop") { Description = "Stop sequence (repeatable)" };
        var model = new Option<string>("--model") { Description = "Model name (default: the device default)" };
        var options = new RoutingOptions();
        var command = new Command("chat", "Chat with a small model; the answer prints as its tokens arrive") { prompt, system, maxTokens, contextTokens, temperature, seed, stop, model };
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
            if (ctx.Get(seed) is { } fixedSeed)
            {
                chat.Seed = fixedSeed;
            }

            var systemText = ctx.Get(system);
            if (!string.IsNullOrEmpty(systemText))
            {
                chat.Messages.Add(new ChatMessage { Role = ChatRole.System, Content = systemText });
            }

            var promptIndex = chat.Messages.Count;
            chat.Messages.Add(new ChatMessage { Role = ChatRole.User, Content = ctx.Get(prompt) ?? "" });
            chat.Stop.Add(ctx.Get(stop) ?? []);
            ctx.FieldLabel = field => IndexIn(field, "chat.messages[") is { } i ? (i == promptIndex ? "--prompt" : "--system") : null;
            var conversation = ctx.Json ? null : new Conversation(ctx.Out);
            conversation?.Say("system", systemText);
            conversation?.Say("you", ctx.Get(prompt));
            var run = await RunAsync(ctx, options, new WorkloadInput { Chat = chat }, onFrame: frame =>
            {
                if (frame.FrameCase == WatchJobResponse.FrameOneofCase.Token)
                {
                    conversation?.Token(frame.Token.Token.ToStringUtf8());
                }
            }, conversation: conversation);
            var output = run.Output.Chat ?? new ChatOutput();
            if (ctx.Json)
            {
                var node = JobSummaryJson(run.Job);
                node["chat"] = JsonOutput.Node(output);
                ctx.WriteJson(node);
            }
            else
            {
                ctx.Error.WriteLine($"{output.CompletionTokens} tokens, finish reason: {output.FinishReason}");
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

    private static async Task<JobRun> RunAsync(
        CliContext ctx, RoutingOptions options, WorkloadInput input, IReadOnlyList<Blob>? blobs = null, Action<WatchJobResponse>? onFrame = null, Conversation? conversation = null)
    {
        var networkId = await ctx.NetworkIdAsync(options.Network);
        var routing = options.ToRouting(ctx.ParseResult) with { Blobs = blobs ?? [] };
        using var client = await ctx.ConnectAsync();
        var status = new StatusLine(ctx.Error);
        if (conversation is not null)
        {
            // Tokens and job states never share a line: the first token ends the status line, a later state starts a new one.
            conversation.Answering = status.End;
            status.BeforeNewLine = conversation.EndAnswerLine;
        }

        try
        {
            var run = await client.RunAsync(networkId, input, routing, frame =>
            {
                conversation?.Begin();
                status.OnFrame(frame);
                onFrame?.Invoke(frame);
            }, ctx.CancellationToken);
            if (conversation is not null && run.Output.Chat is { } chat)
            {
                conversation.Begin();
                conversation.Complete(chat.Text);
            }

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
            conversation?.EndAnswerLine();
            status.End();
        }
    }

    /// <summary>The index in a field path such as "envelope.input_manifest.payload.embeddings.texts[1]" after <paramref name="prefix"/>.</summary>
    public static int? IndexIn(string field, string prefix)
    {
        ArgumentNullException.ThrowIfNull(field);
        var at = field.IndexOf(prefix, StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }

        var start = at + prefix.Length;
        var end = field.IndexOf(']', start);
        return end > start && int.TryParse(field.AsSpan(start, end - start), NumberStyles.None, CultureInfo.InvariantCulture, out var index) ? index : null;
    }

    /// <summary>The image type from the file's first bytes (not its name), or null when it is no image the OCR worker reads.</summary>
    public static string? ImageContentType(ReadOnlySpan<byte> bytes)
    {
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G']))
        {
            return "image/png";
        }

        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF]))
        {
            return "image/jpeg";
        }

        if (bytes.StartsWith("GIF8"u8))
        {
            return "image/gif";
        }

        if (bytes.StartsWith("BM"u8))
        {
            return "image/bmp";
        }

        if (bytes.StartsWith("II*\0"u8) || bytes.StartsWith("MM\0*"u8))
        {
            return "image/tiff";
        }

        return bytes.Length >= 12 && bytes.StartsWith("RIFF"u8) && bytes[8..12].SequenceEqual("WEBP"u8) ? "image/webp" : null;
    }

    /// <summary>--network, --routing, --device, --tier, --max-cost, --timeout, --sensitivity, shared by every `run` command.</summary>
    private sealed class RoutingOptions
    {
        public Option<string> Network { get; } = CliRuntime.NetworkOption();

        public Option<string> Routing { get; } = new("--routing") { Description = "auto | pinned_device | pinned_tier | local_prefer", DefaultValueFactory = _ => "auto" };

        public Option<string[]> Device { get; } = new("--device") { Description = "Device id for pinned_device routing (repeatable)", HelpName = "ID" };

        public Option<string> Tier { get; } = new("--tier") { Description = "Tier for pinned_tier routing (tier0 … tier4)" };

        public Option<string> MaxCost { get; } = new("--max-cost") { Description = "Most you accept to pay, in credits (e.g. 0.5; sent as max_cost_micro)", HelpName = "CREDITS" };

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

    /// <summary>Everything written so far on the current line.</summary>
    public string Text => line.ToString();

    /// <summary>Called before a state starts a new line (the chat view ends its answer line there).</summary>
    public Action? BeforeNewLine { get; set; }

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

    // " on dev_x" unless the line already named that device.
    private string OnDevice(Job job) => string.IsNullOrEmpty(job.DeviceId) || job.DeviceId == lastDevice ? "" : " on " + job.DeviceId;

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
            JobState.Running => "running" + OnDevice(job),
            JobState.Completed => $"completed in {Display.Int(job.LatencyMs > 0 ? job.LatencyMs : job.RuntimeMs)} ms" + OnDevice(job) +
                                  $" (cost {Credits.Format(job.CostMicro)} credits)",
            JobState.Failed => "failed", // the error line that follows says why
            JobState.Cancelled => "cancelled",
            _ => job.State.ToString().ToLowerInvariant(),
        };
        if (line.Length == 0)
        {
            BeforeNewLine?.Invoke();
        }

        var text = line.Length == 0 ? $"job {job.JobId}: {segment}" : " → " + segment;
        line.Append(text);
        writer.Write(text);
        writer.Flush();
        lastState = job.State;
        lastDevice = job.DeviceId;
    }
}

/// <summary>
/// `meshnet run chat` as a conversation on stdout: "you> …", then "assistant> " and the tokens as they arrive, the answer
/// on its own line(s); job states go to stderr on lines of their own.
/// </summary>
public sealed class Conversation
{
    private readonly TextWriter writer;
    private readonly List<string> pending = [];
    private bool answering;
    private bool lineOpen;
    private int streamed;

    /// <summary>Writes to <paramref name="writer"/> (stdout).</summary>
    public Conversation(TextWriter writer) => this.writer = writer;

    /// <summary>Called once when the answer starts (ends the status line).</summary>
    public Action? Answering { get; set; }

    /// <summary>A turn that is already known ("you", "system"), printed by <see cref="Begin"/>; nothing for an empty text.</summary>
    public void Say(string speaker, string? text)
    {
        if (!string.IsNullOrEmpty(text))
        {
            pending.Add($"{speaker}> {text}");
        }
    }

    /// <summary>Prints the known turns once the job was accepted (a refused prompt prints nothing on stdout).</summary>
    public void Begin()
    {
        foreach (var turn in pending)
        {
            writer.WriteLine(turn);
        }

        writer.Flush();
        pending.Clear();
    }

    /// <summary>One streamed token of the answer (whitespace before the first word is dropped).</summary>
    public void Token(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        streamed++;
        if (!answering)
        {
            token = token.TrimStart();
            if (token.Length == 0)
            {
                return;
            }
        }

        StartAnswer();
        writer.Write(token);
        writer.Flush();
    }

    /// <summary>The final text, printed only when no token was streamed (a runtime that answers in one piece).</summary>
    public void Complete(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (streamed == 0)
        {
            StartAnswer();
            writer.Write(text.TrimStart());
        }
    }

    /// <summary>Ends the answer's line so that what follows starts on a line of its own.</summary>
    public void EndAnswerLine()
    {
        if (lineOpen)
        {
            writer.WriteLine();
            writer.Flush();
            lineOpen = false;
        }
    }

    private void StartAnswer()
    {
        if (!answering)
        {
            answering = true;
            Answering?.Invoke();
            writer.Write("assistant> ");
            lineOpen = true;
        }
    }
}

using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Common.Observability;
using MeshAI.Common.Seams;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Jobs;
using MeshAI.Control.Networks;
using MeshAI.Control.Security;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Gateway;

/// <summary>
/// The OpenAI-compatible HTTP gateway (docs/gateway.md): a thin adapter from OpenAI's JSON to the job plane the gRPC
/// JobService uses. Each request is authenticated and authorised by the same rules (<see cref="RpcRules.HttpTable"/>,
/// <see cref="CallAuthorizer"/>), sealed end to end to the devices PlanJob plans (<see cref="RecipientPlanner"/> +
/// <see cref="PayloadCrypto"/>, as the SDK does) with a key that lives only for the request, submitted by
/// <see cref="JobSubmission"/> (scheduler, policies, routing, ledger, explain, retries) and followed by
/// <see cref="JobQueries.WatchAsync"/>. Only this process sees the plaintext; the relay and the store see ciphertext.
/// </summary>
public sealed partial class OpenAiGateway(
    SessionAuthenticator authenticator,
    CallAuthorizer authorizer,
    RateLimits rateLimits,
    RecipientPlanner recipients,
    JobSubmission submission,
    JobQueries queries,
    Storage.JobRepository jobs,
    IPresenceDirectory presence,
    IOptions<GatewayOptions> gatewayOptions,
    IOptions<ControlPlaneOptions> controlOptions,
    TimeProvider clock,
    ILogger<OpenAiGateway> logger)
{
    /// <summary>Header naming the network when the bearer token is a session (an API key names its own network).</summary>
    public const string NetworkHeader = "MeshAI-Network";

    /// <summary>Routing mode header: auto, pinned_device, pinned_tier or local_prefer.</summary>
    public const string RoutingModeHeader = "MeshAI-Routing-Mode";

    /// <summary>Pinned device header: one or more device ids, comma separated (implies pinned_device).</summary>
    public const string PinnedDeviceHeader = "MeshAI-Pinned-Device";

    /// <summary>Pinned tier header: tier0 … tier4 (implies pinned_tier).</summary>
    public const string PinnedTierHeader = "MeshAI-Pinned-Tier";

    /// <summary>Data sensitivity header: public, private (default) or sensitive.</summary>
    public const string SensitivityHeader = "MeshAI-Data-Sensitivity";

    /// <summary>Cost cap header, in micro-credits.</summary>
    public const string MaxCostHeader = "MeshAI-Max-Cost-Micro";

    /// <summary>Job timeout header, in milliseconds.</summary>
    public const string TimeoutHeader = "MeshAI-Timeout-Ms";

    /// <summary>Response header with the job id (also sent as x-request-id, which OpenAI clients surface).</summary>
    public const string JobIdHeader = "x-meshai-job-id";

    /// <summary>Response header with the job's trace id.</summary>
    public const string TraceIdHeader = "x-meshai-trace-id";

    private const int MaxPinnedDevices = 16;

    private JobQueries Queries => queries;
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>POST /v1/embeddings.</summary>
    public Task EmbeddingsAsync(HttpContext http) => HandleAsync(http, "POST /v1/embeddings", async (call, ct) =>
    {
        var request = GatewayRequests.ParseEmbeddings(await ReadBodyAsync(http, ct), gatewayOptions.Value, controlOptions.Value.Limits.MaxEmbeddingTexts);
        var run = await SubmitAsync(http, call, request.ToInput(), request.Model, ct);
        var output = (await run.WaitForOutputAsync(ct)).Embeddings ?? throw new GatewayException(502, "server_error", "bad_output", $"job {run.JobId} returned no embeddings");
        await WriteJsonAsync(http, 200, w =>
        {
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            for (var i = 0; i < output.Embeddings.Count; i++)
            {
                w.WriteStartObject();
                w.WriteString("object", "embedding");
                w.WriteNumber("index", i);
                if (request.Base64)
                {
                    w.WriteString("embedding", Base64(output.Embeddings[i].Values));
                }
                else
                {
                    w.WriteStartArray("embedding");
                    foreach (var value in output.Embeddings[i].Values)
                    {
                        w.WriteNumberValue(value);
                    }

                    w.WriteEndArray();
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteString("model", string.IsNullOrEmpty(output.Model) ? request.Model : output.Model);
            var tokens = output.TokenCounts.Sum();
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", tokens);
            w.WriteNumber("total_tokens", tokens);
            w.WriteEndObject();
        }, ct);
    });

    /// <summary>POST /v1/chat/completions (stream: true answers with server-sent events ending in "data: [DONE]").</summary>
    public Task ChatCompletionsAsync(HttpContext http) => HandleAsync(http, "POST /v1/chat/completions", async (call, ct) =>
    {
        var request = GatewayRequests.ParseChat(await ReadBodyAsync(http, ct), gatewayOptions.Value);
        var run = await SubmitAsync(http, call, request.ToInput(), request.Model, ct);
        var id = "chatcmpl-" + run.JobId;
        var created = clock.GetUtcNow().ToUnixTimeSeconds();
        if (!request.Stream)
        {
            var chat = (await run.WaitForOutputAsync(ct)).Chat ?? throw new GatewayException(502, "server_error", "bad_output", $"job {run.JobId} returned no chat output");
            await WriteJsonAsync(http, 200, w =>
            {
                w.WriteString("id", id);
                w.WriteString("object", "chat.completion");
                w.WriteNumber("created", created);
                w.WriteString("model", request.Model);
                w.WriteStartArray("choices");
                w.WriteStartObject();
                w.WriteNumber("index", 0);
                w.WriteStartObject("message");
                w.WriteString("role", "assistant");
                w.WriteString("content", chat.Text);
                w.WriteEndObject();
                w.WriteString("finish_reason", FinishReason(chat.FinishReason));
                w.WriteEndObject();
                w.WriteEndArray();
                WriteUsage(w, chat);
            }, ct);
            return;
        }

        // From here the answer is a 200 event stream; a job that fails now ends it with an error event (as OpenAI does).
        http.Response.StatusCode = 200;
        http.Response.ContentType = "text/event-stream; charset=utf-8";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await http.Response.StartAsync(ct);
        await WriteEventAsync(http, w => Chunk(w, id, created, request.Model, role: "assistant", content: "", finish: null), ct);
        ChatOutput chatOutput;
        try
        {
            chatOutput = (await run.WaitForOutputAsync(ct, token => WriteEventAsync(http, w => Chunk(w, id, created, request.Model, role: null, content: token, finish: null), ct))).Chat
                         ?? throw new GatewayException(502, "server_error", "bad_output", $"job {run.JobId} returned no chat output");
        }
        catch (GatewayException ex)
        {
            call.Status = ex.Status;
            await WriteEventAsync(http, w => WriteErrorProperties(w, ex), ct);
            await WriteDoneAsync(http, ct);
            return;
        }

        await WriteEventAsync(http, w => Chunk(w, id, created, request.Model, role: null, content: null, finish: FinishReason(chatOutput.FinishReason)), ct);
        if (request.IncludeUsage)
        {
            await WriteEventAsync(http, w =>
            {
                w.WriteString("id", id);
                w.WriteString("object", "chat.completion.chunk");
                w.WriteNumber("created", created);
                w.WriteString("model", request.Model);
                w.WriteStartArray("choices");
                w.WriteEndArray();
                WriteUsage(w, chatOutput);
            }, ct);
        }

        await WriteDoneAsync(http, ct);
    });

    /// <summary>GET /v1/models: the embedding and chat models the network's online devices serve right now.</summary>
    public Task ModelsAsync(HttpContext http) => HandleAsync(http, "GET /v1/models", async (call, ct) =>
    {
        var served = new SortedDictionary<string, (WorkloadClass Workload, int Devices)>(StringComparer.Ordinal);
        foreach (var device in presence.ListOnline(call.NetworkId, clock.GetUtcNow()))
        {
            foreach (var model in device.Capabilities.Models.Where(m => m.WorkloadClass is WorkloadClass.Embeddings or WorkloadClass.SmallChat))
            {
                served[model.Name] = served.TryGetValue(model.Name, out var seen) ? (seen.Workload, seen.Devices + 1) : (model.WorkloadClass, 1);
            }
        }

        var created = call.Membership!.Network.CreateTimeMs / 1000;
        await WriteJsonAsync(http, 200, w =>
        {
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            foreach (var (name, (workload, devices)) in served)
            {
                w.WriteStartObject();
                w.WriteString("id", name);
                w.WriteString("object", "model");
                w.WriteNumber("created", created);
                w.WriteString("owned_by", call.NetworkId);
                w.WriteString("meshai_workload", workload == WorkloadClass.Embeddings ? "embeddings" : "small_chat");
                w.WriteNumber("meshai_devices_online", devices);
                w.WriteEndObject();
            }

            w.WriteEndArray();
        }, ct);
    });

    /// <summary>One authenticated, authorised, rate-limited gateway call.</summary>
    private sealed class GatewayCall(Caller caller, string networkId, Membership? membership)
    {
        public Caller Caller { get; } = caller;

        public string NetworkId { get; } = networkId;

        public Membership? Membership { get; } = membership;

        public int Status { get; set; } = 200;
    }

    private async Task HandleAsync(HttpContext http, string endpoint, Func<GatewayCall, CancellationToken, Task> work)
    {
        var ct = http.RequestAborted;
        var status = 200;
        var networkForMetrics = "";
        try
        {
            var authorization = http.Request.Headers.Authorization.ToString();
            if (!authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                throw new GatewayException(401, "authentication_error", "missing_api_key",
                    "no API key: send 'Authorization: Bearer <key>' (create one with `meshnet api-keys create NAME`)");
            }

            var caller = await authenticator.RequireAsync(authorization, ct);
            var networkId = caller.ApiKeyNetworkId ?? http.Request.Headers[NetworkHeader].ToString();
            if (string.IsNullOrEmpty(networkId))
            {
                throw new GatewayException(400, "invalid_request_error", "network_required", $"a session token needs the {NetworkHeader} header naming the network (an API key names its own)");
            }

            var membership = await authorizer.AuthorizeAsync(RpcRules.HttpTable[endpoint], endpoint, caller, networkId, ct);
            networkForMetrics = networkId;
            await rateLimits.CheckAsync("gateway:" + (caller.ApiKeyId ?? caller.UserId), gatewayOptions.Value.RequestsPerMinutePerCaller, ct);
            var call = new GatewayCall(caller, networkId, membership);
            await work(call, ct);
            status = call.Status;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            status = 499; // the client went away; nothing to answer
        }
        catch (Exception ex) when (ToGatewayError(ex) is { } error)
        {
            status = error.Status;
            if (error.Status >= 500)
            {
                LogFailed(endpoint, error.Status, error.Code, error.Message);
            }

            if (!http.Response.HasStarted)
            {
                if (error.RetryAfterSeconds is { } seconds)
                {
                    http.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                }

                await WriteJsonAsync(http, error.Status, w => WriteErrorProperties(w, error), CancellationToken.None);
            }
        }
        finally
        {
            MeshTelemetry.GatewayRequests.Add(1, new(MeshTelemetry.NetworkTag, networkForMetrics), new("endpoint", endpoint), new("status", status.ToString(CultureInfo.InvariantCulture)));
        }
    }

    private static GatewayException? ToGatewayError(Exception ex) => ex switch
    {
        GatewayException g => g,
        RpcException rpc => GatewayErrors.FromRpc(rpc),
        JsonException json => new GatewayException(400, "invalid_request_error", "invalid_json", "the request body is not valid JSON: " + json.Message),
        BadHttpRequestException bad when bad.StatusCode == StatusCodes.Status413PayloadTooLarge => new GatewayException(413, "invalid_request_error", "request_too_large", bad.Message),
        BadHttpRequestException bad => new GatewayException(bad.StatusCode, "invalid_request_error", "bad_request", bad.Message),
        _ => null,
    };

    private async Task<JsonElement> ReadBodyAsync(HttpContext http, CancellationToken ct)
    {
        var max = gatewayOptions.Value.MaxRequestBytes;
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = max;
        }

        if (http.Request.ContentLength > max)
        {
            throw new GatewayException(413, "invalid_request_error", "request_too_large", $"the request body is at most {max} bytes");
        }

        using var document = await JsonDocument.ParseAsync(http.Request.Body, new JsonDocumentOptions { MaxDepth = 16 }, ct);
        return document.RootElement.Clone();
    }

    /// <summary>Builds the envelope, seals its payload to the planned devices, submits it and starts following it.</summary>
    private async Task<GatewayRun> SubmitAsync(HttpContext http, GatewayCall call, WorkloadInput input, string model, CancellationToken ct)
    {
        var headers = http.Request.Headers;
        var sensitivity = Sensitivity(headers[SensitivityHeader].ToString());
        var allowed = call.Membership?.Settings.Gateway?.MaxSensitivity is { } max and not DataSensitivityTag.Unspecified ? max : DataSensitivityTag.Private;
        if ((sensitivity == DataSensitivityTag.Unspecified ? DataSensitivityTag.Private : sensitivity) > allowed)
        {
            throw new GatewayException(403, "permission_error", "sensitivity_refused",
                $"this network refuses {Name(sensitivity)} data through the gateway (its server sees requests in plaintext; gateway.max_sensitivity is {Name(allowed)}): use the SDK, which encrypts on your machine");
        }

        // Idempotency-Key: the same key is the same job, billed once. Its result was sealed to the first request's one-time
        // key, so a replay cannot be answered with it: 409 naming the job, never a second run or a second bill.
        var idempotency = headers["Idempotency-Key"].ToString();
        if (idempotency.Length > 128)
        {
            throw GatewayException.Invalid("Idempotency-Key", "the Idempotency-Key header is at most 128 characters");
        }

        if (idempotency.Length > 0 && await jobs.FindByIdempotencyKeyAsync(call.NetworkId, call.Caller.UserId, idempotency, ct) is { } earlier)
        {
            http.Response.Headers[JobIdHeader] = earlier.JobId;
            throw new GatewayException(409, "invalid_request_error", "idempotency_key_reused",
                $"Idempotency-Key already ran as job {earlier.JobId} (billed once); its answer went to that request and is not sent twice: use a new key to run it again");
        }

        var payload = input.ToByteString();
        var envelope = new JobEnvelope
        {
            NetworkId = call.NetworkId,
            WorkloadId = input.InputCase == WorkloadInput.InputOneofCase.Chat ? WorkloadClass.SmallChat : WorkloadClass.Embeddings,
            InputManifest = new InputManifest { Payload = payload, PayloadSha256 = Convert.ToHexStringLower(SHA256.HashData(payload.Span)) },
            DataSensitivityTag = sensitivity,
            ResourceRequest = new ResourceRequest { Model = model },
            RoutingMode = RoutingMode.Auto,
            MaxCostCredits = Number(headers[MaxCostHeader].ToString(), MaxCostHeader, 0, long.MaxValue),
            TimeoutMs = Number(headers[TimeoutHeader].ToString(), TimeoutHeader, 0, controlOptions.Value.Limits.MaxJobTimeoutMs),
            PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
            TraceId = MeshTelemetry.CurrentOrNewTraceId(), // the HTTP request's span (a client's traceparent continues its trace)
        };
        ApplyRouting(envelope, headers);

        // Seal to the planned devices exactly as the SDK does; the submitter key exists only for this request.
        var submitter = EncryptionKeyPair.Generate();
        var probe = envelope.Clone();
        probe.InputManifest = new InputManifest();
        var plan = await recipients.PlanAsync(call.Caller, new PlanJobRequest { Envelope = probe, MaxCandidates = gatewayOptions.Value.Recipients }, ct);
        PayloadCrypto.EncryptEnvelope(envelope, plan.Recipients.Select(r => KeyValuePair.Create(r.DeviceId, r.EncryptionPublicKey.ToByteArray())), submitter.PublicKey);
        await recipients.ValidateEncryptedAsync(envelope, ct);

        var job = await submission.SubmitAsync(call.Caller, new SubmitJobRequest { Envelope = envelope, IdempotencyKey = idempotency }, Peer(http), ct);
        if (idempotency.Length > 0 && !await SealedToAsync(job.JobId, submitter, ct))
        {
            // A concurrent request with the same key won the insert (both passed the check above): the job is the winner's,
            // sealed to the winner's key, so this request is a replay like any later one.
            http.Response.Headers[JobIdHeader] = job.JobId;
            throw new GatewayException(409, "invalid_request_error", "idempotency_key_reused",
                $"Idempotency-Key is running as job {job.JobId} for a concurrent request (billed once); its answer goes to that request: use a new key to run it again");
        }

        http.Response.Headers[JobIdHeader] = job.JobId;
        http.Response.Headers["x-request-id"] = job.JobId;
        http.Response.Headers[TraceIdHeader] = job.TraceId;
        Activity.Current?.SetTag(MeshTelemetry.JobIdKey, job.JobId);
        return new GatewayRun(this, call, job.JobId, submitter);
    }

    /// <summary>True when the stored job's result is sealed to <paramref name="submitter"/> (this request created it).</summary>
    private async Task<bool> SealedToAsync(string jobId, EncryptionKeyPair submitter, CancellationToken ct)
    {
        var row = await jobs.GetJobByIdAsync(jobId, ct);
        var stored = row is null ? null : JobEnvelope.Parser.ParseFrom(row.Envelope);
        return stored?.PayloadEncryption?.SubmitterPublicKey.Span.SequenceEqual(submitter.PublicKey) == true;
    }

    /// <summary>A submitted job as the gateway follows it: tokens and the result opened with the request's own key.</summary>
    private sealed class GatewayRun(OpenAiGateway gateway, GatewayCall call, string jobId, EncryptionKeyPair key)
    {
        public string JobId => jobId;

        /// <summary>Follows the job through WatchJob's code path until its output; <paramref name="onToken"/> sees each streamed token as it arrives.</summary>
        public async Task<WorkloadOutput> WaitForOutputAsync(CancellationToken ct, Func<string, Task>? onToken = null)
        {
            try
            {
                JobResultFrame? result = null;
                Job? ended = null;
                var finished = false;
                try
                {
                    await gateway.Queries.WatchAsync(call.Caller, new WatchJobRequest { NetworkId = call.NetworkId, JobId = jobId }, new FrameWriter(async frame =>
                    {
                        switch (frame.FrameCase)
                        {
                            case WatchJobResponse.FrameOneofCase.Token when onToken is not null:
                                await onToken(Open(frame.Token));
                                break;
                            case WatchJobResponse.FrameOneofCase.Result:
                                result = frame.Result;
                                break;
                            case WatchJobResponse.FrameOneofCase.Status when frame.Status.Job is { } job && JobViews.IsTerminal(job.State):
                                ended = job;
                                break;
                        }
                    }), ct);
                    finished = true;
                }
                finally
                {
                    if (!finished && ct.IsCancellationRequested)
                    {
                        await gateway.CancelQuietlyAsync(call, jobId); // the client hung up: stop the device's work
                    }
                }

                if (result is null)
                {
                    var final = await gateway.Queries.GetAsync(call.Caller, call.NetworkId, jobId, ct);
                    result = final.Result;
                    ended ??= final.Job;
                }

                if (result is null)
                {
                    throw GatewayErrors.FromJob(ended!);
                }

                var bytes = result.Encrypted ? PayloadCrypto.OpenFromDevice(result.Output.Span, result.Nonce.Span, key, jobId) : result.Output.ToByteArray();
                return WorkloadOutput.Parser.ParseFrom(bytes);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(key.PrivateKey); // the request's key dies with the request
            }
        }

        private string Open(JobTokenFrame token) => token.Nonce.IsEmpty
            ? token.Token.ToStringUtf8()
            : System.Text.Encoding.UTF8.GetString(PayloadCrypto.OpenFromDevice(token.Token.Span, token.Nonce.Span, key, jobId));
    }

    /// <summary>Adapts WatchJob's stream writer to a callback (the gateway reuses the watch code path, not a copy of it).</summary>
    private sealed class FrameWriter(Func<WatchJobResponse, Task> write) : IServerStreamWriter<WatchJobResponse>
    {
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(WatchJobResponse message) => write(message);

        public Task WriteAsync(WatchJobResponse message, CancellationToken cancellationToken) => write(message);
    }

    private async Task CancelQuietlyAsync(GatewayCall call, string jobId)
    {
        try
        {
            await queries.CancelAsync(call.Caller, call.NetworkId, jobId, CancellationToken.None);
        }
        catch (Exception ex) when (ex is RpcException or InvalidOperationException or System.Data.Common.DbException)
        {
            LogCancelFailed(jobId, ex.Message);
        }
    }

    private static void ApplyRouting(JobEnvelope envelope, IHeaderDictionary headers)
    {
        var pinned = headers[PinnedDeviceHeader].ToString().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (pinned.Length > MaxPinnedDevices || pinned.Any(p => p.Length > 64))
        {
            throw GatewayException.Invalid(PinnedDeviceHeader, $"at most {MaxPinnedDevices} device ids");
        }

        envelope.ResourceRequest.RequiresPinnedDeviceIdsOptional.Add(pinned);
        var tierText = headers[PinnedTierHeader].ToString();
        if (tierText.Length > 0)
        {
            envelope.ResourceRequest.PinnedTier = tierText.ToLowerInvariant() switch
            {
                "tier0" or "0" => Tier._0,
                "tier1" or "1" => Tier._1,
                "tier2" or "2" => Tier._2,
                "tier3" or "3" => Tier._3,
                "tier4" or "4" => Tier._4,
                _ => throw GatewayException.Invalid(PinnedTierHeader, "tier0 … tier4"),
            };
        }

        var modeText = headers[RoutingModeHeader].ToString();
        envelope.RoutingMode = modeText.ToLowerInvariant() switch
        {
            "" => pinned.Length > 0 ? RoutingMode.PinnedDevice : tierText.Length > 0 ? RoutingMode.PinnedTier : RoutingMode.Auto,
            "auto" => RoutingMode.Auto,
            "pinned_device" => RoutingMode.PinnedDevice,
            "pinned_tier" => RoutingMode.PinnedTier,
            "local_prefer" => RoutingMode.LocalPrefer,
            _ => throw GatewayException.Invalid(RoutingModeHeader, "auto, pinned_device, pinned_tier or local_prefer"),
        };
    }

    private static DataSensitivityTag Sensitivity(string text) => text.ToLowerInvariant() switch
    {
        "" => DataSensitivityTag.Unspecified,
        "public" => DataSensitivityTag.Public,
        "private" => DataSensitivityTag.Private,
        "sensitive" => DataSensitivityTag.Sensitive,
        _ => throw GatewayException.Invalid(SensitivityHeader, "public, private or sensitive"),
    };

    private static string Name(DataSensitivityTag tag) => tag switch
    {
        DataSensitivityTag.Public => "public",
        DataSensitivityTag.Sensitive => "sensitive",
        _ => "private",
    };

    private static long Number(string text, string header, long min, long max) =>
        text.Length == 0 ? 0
        : long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max ? value
        : throw GatewayException.Invalid(header, $"{header} is a whole number from {min} to {max}");

    // The gRPC peer form SubmitterLocation reads for local_prefer routing.
    private static string Peer(HttpContext http) => http.Connection.RemoteIpAddress is { } ip
        ? (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && !ip.IsIPv4MappedToIPv6 ? $"ipv6:[{ip}]" : $"ipv4:{(ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip)}") + ":" + http.Connection.RemotePort.ToString(CultureInfo.InvariantCulture)
        : "";

    private static string FinishReason(string reason) => reason is "length" ? "length" : "stop";

    private static string Base64(Google.Protobuf.Collections.RepeatedField<float> values)
    {
        var bytes = new byte[values.Count * sizeof(float)];
        for (var i = 0; i < values.Count; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        }

        return Convert.ToBase64String(bytes);
    }

    private static void Chunk(Utf8JsonWriter w, string id, long created, string model, string? role, string? content, string? finish)
    {
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion.chunk");
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("delta");
        if (role is not null)
        {
            w.WriteString("role", role);
        }

        if (content is not null)
        {
            w.WriteString("content", content);
        }

        w.WriteEndObject();
        if (finish is null)
        {
            w.WriteNull("finish_reason");
        }
        else
        {
            w.WriteString("finish_reason", finish);
        }

        w.WriteEndObject();
        w.WriteEndArray();
    }

    private static void WriteUsage(Utf8JsonWriter w, ChatOutput chat)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", chat.PromptTokens);
        w.WriteNumber("completion_tokens", chat.CompletionTokens);
        w.WriteNumber("total_tokens", chat.PromptTokens + chat.CompletionTokens);
        w.WriteEndObject();
    }

    private static void WriteErrorProperties(Utf8JsonWriter w, GatewayException error)
    {
        w.WriteStartObject("error");
        w.WriteString("message", error.Message);
        w.WriteString("type", error.Type);
        if (error.Param is null)
        {
            w.WriteNull("param");
        }
        else
        {
            w.WriteString("param", error.Param);
        }

        w.WriteString("code", error.Code);
        w.WriteEndObject();
    }

    private static async Task WriteJsonAsync(HttpContext http, int status, Action<Utf8JsonWriter> write, CancellationToken ct)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        await using (var writer = new Utf8JsonWriter(http.Response.Body, WriterOptions))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
            await writer.FlushAsync(ct);
        }
    }

    private static async Task WriteEventAsync(HttpContext http, Action<Utf8JsonWriter> write, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write("data: "u8);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        buffer.Write("\n\n"u8);
        await http.Response.Body.WriteAsync(buffer.WrittenMemory, ct);
        await http.Response.Body.FlushAsync(ct);
    }

    private static async Task WriteDoneAsync(HttpContext http, CancellationToken ct)
    {
        await http.Response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), ct);
        await http.Response.Body.FlushAsync(ct);
    }

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Gateway {Endpoint} answered {Status} ({Code}): {Message}")]
    private partial void LogFailed(string endpoint, int status, string code, string message);

    [LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Gateway could not cancel job {JobId} after its client hung up: {Error}")]
    private partial void LogCancelFailed(string jobId, string error);
}

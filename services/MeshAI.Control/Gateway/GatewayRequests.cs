using System.Globalization;
using System.Text.Json;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Scheduling;

namespace MeshAI.Control.Gateway;

/// <summary>A parsed POST /v1/embeddings.</summary>
public sealed record EmbeddingsCall(string Model, IReadOnlyList<string> Inputs, bool Base64)
{
    /// <summary>The workload input the devices run.</summary>
    public WorkloadInput ToInput()
    {
        var input = new EmbeddingsInput { Model = Model };
        input.Texts.Add(Inputs);
        return new WorkloadInput { Embeddings = input };
    }
}

/// <summary>A parsed POST /v1/chat/completions.</summary>
public sealed record ChatCall(string Model, IReadOnlyList<ChatMessage> Messages, int MaxTokens, float Temperature, IReadOnlyList<string> Stop, bool Stream, bool IncludeUsage)
{
    /// <summary>The workload input the devices run (0 max tokens / temperature: the handler's defaults).</summary>
    public WorkloadInput ToInput()
    {
        var chat = new ChatInput { Model = Model, MaxTokens = MaxTokens, Temperature = Temperature };
        chat.Messages.Add(Messages);
        chat.Stop.Add(Stop);
        return new WorkloadInput { Chat = chat };
    }
}

/// <summary>
/// Strict, bounded parsing of OpenAI request bodies into workload inputs (pure; docs/gateway.md lists what is accepted).
/// Fields whose meaning the mesh cannot honour (tools, response formats other than text, n &gt; 1, logprobs, audio, penalties)
/// are refused with 400 rather than silently ignored; other chat fields (user, seed, top_p, store, metadata…) are ignored.
/// </summary>
public static class GatewayRequests
{
    private static readonly HashSet<string> EmbeddingFields = new(StringComparer.Ordinal) { "input", "model", "encoding_format", "dimensions", "user" };

    private static readonly HashSet<string> ChatRefused = new(StringComparer.Ordinal)
    {
        "tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "prediction", "web_search_options",
    };

    /// <summary>Parses an embeddings request.</summary>
    public static EmbeddingsCall ParseEmbeddings(JsonElement body, GatewayOptions limits, int maxInputs)
    {
        ArgumentNullException.ThrowIfNull(limits);
        RequireObject(body);
        foreach (var property in body.EnumerateObject())
        {
            if (!EmbeddingFields.Contains(property.Name))
            {
                throw GatewayException.Invalid(property.Name, $"unrecognized request argument '{Clip(property.Name)}'", "unknown_parameter");
            }
        }

        var model = Model(body);
        var inputs = new List<string>();
        if (!body.TryGetProperty("input", out var input) || input.ValueKind == JsonValueKind.Null)
        {
            throw GatewayException.Invalid("input", "input is required: a string or an array of strings", "missing_required_parameter");
        }

        if (input.ValueKind == JsonValueKind.String)
        {
            inputs.Add(input.GetString()!);
        }
        else if (input.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in input.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String)
                {
                    throw GatewayException.Invalid("input", "input must be a string or an array of strings (token arrays are not supported: the devices tokenize)");
                }

                if (inputs.Count == maxInputs)
                {
                    throw GatewayException.Invalid("input", $"at most {maxInputs} inputs per request");
                }

                inputs.Add(item.GetString()!);
            }
        }
        else
        {
            throw GatewayException.Invalid("input", "input must be a string or an array of strings");
        }

        if (inputs.Count == 0)
        {
            throw GatewayException.Invalid("input", "input must not be an empty array");
        }

        for (var i = 0; i < inputs.Count; i++)
        {
            if (inputs[i].Length == 0)
            {
                throw GatewayException.Invalid($"input[{i}]", "inputs must not be empty strings");
            }

            if (inputs[i].Length > limits.MaxInputChars)
            {
                throw GatewayException.Invalid($"input[{i}]", $"an input is at most {limits.MaxInputChars} characters (got {inputs[i].Length})");
            }
        }

        var base64 = false;
        if (body.TryGetProperty("encoding_format", out var format) && format.ValueKind != JsonValueKind.Null)
        {
            base64 = (format.ValueKind == JsonValueKind.String ? format.GetString() : null) switch
            {
                "float" => false,
                "base64" => true,
                _ => throw GatewayException.Invalid("encoding_format", "encoding_format is 'float' or 'base64'"),
            };
        }

        if (body.TryGetProperty("dimensions", out var dimensions) && dimensions.ValueKind != JsonValueKind.Null)
        {
            throw GatewayException.Invalid("dimensions", "dimensions is not supported: each model has its own fixed dimension (see GET /v1/models)", "unsupported_parameter");
        }

        OptionalString(body, "user", 256);
        return new EmbeddingsCall(model, inputs, base64);
    }

    /// <summary>Parses a chat completions request.</summary>
    public static ChatCall ParseChat(JsonElement body, GatewayOptions limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        RequireObject(body);
        foreach (var property in body.EnumerateObject())
        {
            if (ChatRefused.Contains(property.Name) && property.Value.ValueKind is not (JsonValueKind.Null or JsonValueKind.False))
            {
                throw GatewayException.Invalid(property.Name, $"'{property.Name}' is not supported by this gateway (the mesh runs plain text chat)", "unsupported_parameter");
            }
        }

        var model = Model(body);
        var messages = Messages(body, limits);
        var maxTokens = 0;
        foreach (var name in new[] { "max_completion_tokens", "max_tokens" })
        {
            if (body.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null)
            {
                if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var tokens) || tokens < 1 || tokens > limits.MaxCompletionTokens)
                {
                    throw GatewayException.Invalid(name, $"{name} is an integer from 1 to {limits.MaxCompletionTokens}");
                }

                maxTokens = tokens;
                break;
            }
        }

        var temperature = 0f;
        if (body.TryGetProperty("temperature", out var t) && t.ValueKind != JsonValueKind.Null)
        {
            if (t.ValueKind != JsonValueKind.Number || !t.TryGetDouble(out var value) || value is < 0 or > 2 || !double.IsFinite(value))
            {
                throw GatewayException.Invalid("temperature", "temperature is a number from 0 to 2");
            }

            // 0 means "greedy" to OpenAI; the handler treats 0 as "default", so the smallest positive value stands in.
            temperature = value == 0 ? 1e-3f : (float)value;
        }

        var stop = Stops(body, limits);
        var stream = Bool(body, "stream");
        var includeUsage = false;
        if (body.TryGetProperty("stream_options", out var options) && options.ValueKind != JsonValueKind.Null)
        {
            if (options.ValueKind != JsonValueKind.Object)
            {
                throw GatewayException.Invalid("stream_options", "stream_options is an object");
            }

            includeUsage = Bool(options, "include_usage");
        }

        if (body.TryGetProperty("n", out var n) && n.ValueKind != JsonValueKind.Null && !(n.ValueKind == JsonValueKind.Number && n.TryGetInt32(out var count) && count == 1))
        {
            throw GatewayException.Invalid("n", "only n = 1 is supported", "unsupported_parameter");
        }

        foreach (var penalty in new[] { "presence_penalty", "frequency_penalty" })
        {
            if (body.TryGetProperty(penalty, out var p) && p.ValueKind != JsonValueKind.Null && !(p.ValueKind == JsonValueKind.Number && p.GetDouble() == 0))
            {
                throw GatewayException.Invalid(penalty, $"{penalty} other than 0 is not supported", "unsupported_parameter");
            }
        }

        if (body.TryGetProperty("response_format", out var rf) && rf.ValueKind != JsonValueKind.Null &&
            !(rf.ValueKind == JsonValueKind.Object && rf.TryGetProperty("type", out var rfType) && rfType.ValueKind == JsonValueKind.String && rfType.GetString() == "text"))
        {
            throw GatewayException.Invalid("response_format", "only response_format {\"type\": \"text\"} is supported", "unsupported_parameter");
        }

        OptionalString(body, "user", 256);
        return new ChatCall(model, messages, maxTokens, temperature, stop, stream, includeUsage);
    }

    /// <summary>The OpenAI role name of a chat role.</summary>
    public static ChatRole Role(string role, int index) => role switch
    {
        "system" or "developer" => ChatRole.System,
        "user" => ChatRole.User,
        "assistant" => ChatRole.Assistant,
        _ => throw GatewayException.Invalid($"messages[{index}].role", $"role '{Clip(role)}' is not supported (system, developer, user, assistant)"),
    };

    private static List<ChatMessage> Messages(JsonElement body, GatewayOptions limits)
    {
        if (!body.TryGetProperty("messages", out var list) || list.ValueKind != JsonValueKind.Array)
        {
            throw GatewayException.Invalid("messages", "messages is a required array", "missing_required_parameter");
        }

        var messages = new List<ChatMessage>();
        var total = 0;
        foreach (var item in list.EnumerateArray())
        {
            var i = messages.Count;
            if (i == limits.MaxMessages)
            {
                throw GatewayException.Invalid("messages", $"at most {limits.MaxMessages} messages");
            }

            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
            {
                throw GatewayException.Invalid($"messages[{i}]", "each message is an object with a role and content");
            }

            var content = Content(item, i);
            if (content.Length > limits.MaxMessageChars)
            {
                throw GatewayException.Invalid($"messages[{i}].content", $"a message is at most {limits.MaxMessageChars} characters (got {content.Length})");
            }

            total += content.Length;
            if (total > limits.MaxPromptChars)
            {
                throw GatewayException.Invalid("messages", $"the messages are at most {limits.MaxPromptChars} characters together");
            }

            messages.Add(new ChatMessage { Role = Role(role.GetString()!, i), Content = content });
        }

        if (messages.Count == 0 || messages.All(m => string.IsNullOrWhiteSpace(m.Content)))
        {
            throw GatewayException.Invalid("messages", "at least one message with content is required");
        }

        return messages;
    }

    // A string, or an array of parts of which only {"type": "text", "text": …} is supported.
    private static string Content(JsonElement message, int index)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
        {
            throw GatewayException.Invalid($"messages[{index}].content", "content is required (tool calls are not supported)");
        }

        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            throw GatewayException.Invalid($"messages[{index}].content", "content is a string or an array of text parts");
        }

        var text = new System.Text.StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "text" ||
                !part.TryGetProperty("text", out var partText) || partText.ValueKind != JsonValueKind.String)
            {
                throw GatewayException.Invalid($"messages[{index}].content", "only text content parts are supported");
            }

            text.Append(partText.GetString());
        }

        return text.ToString();
    }

    private static List<string> Stops(JsonElement body, GatewayOptions limits)
    {
        var stops = new List<string>();
        if (!body.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null)
        {
            return stops;
        }

        if (stop.ValueKind == JsonValueKind.String)
        {
            stops.Add(stop.GetString()!);
        }
        else if (stop.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in stop.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String)
                {
                    throw GatewayException.Invalid("stop", "stop is a string or an array of strings");
                }

                stops.Add(item.GetString()!);
            }
        }
        else
        {
            throw GatewayException.Invalid("stop", "stop is a string or an array of strings");
        }

        if (stops.Count > limits.MaxStops)
        {
            throw GatewayException.Invalid("stop", $"at most {limits.MaxStops} stop sequences");
        }

        if (stops.Any(s => s.Length == 0 || s.Length > limits.MaxStopChars))
        {
            throw GatewayException.Invalid("stop", $"a stop sequence has 1 to {limits.MaxStopChars} characters");
        }

        return stops;
    }

    private static string Model(JsonElement body)
    {
        if (!body.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(model.GetString()))
        {
            throw GatewayException.Invalid("model", "model is required (GET /v1/models lists the models this network's online devices serve)", "missing_required_parameter");
        }

        var name = model.GetString()!;
        if (name.Length > JobModels.MaxNameLength || name.Any(char.IsControl))
        {
            throw GatewayException.Invalid("model", $"a model name has at most {JobModels.MaxNameLength} printable characters");
        }

        return name;
    }

    private static bool Bool(JsonElement body, string name) =>
        !body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? false
        : value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean()
        : throw GatewayException.Invalid(name, $"{name} is a boolean");

    private static void OptionalString(JsonElement body, string name, int maxChars)
    {
        if (body.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null &&
            (value.ValueKind != JsonValueKind.String || value.GetString()!.Length > maxChars))
        {
            throw GatewayException.Invalid(name, string.Create(CultureInfo.InvariantCulture, $"{name} is a string of at most {maxChars} characters"));
        }
    }

    private static void RequireObject(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw new GatewayException(400, "invalid_request_error", "invalid_json", "the request body must be a JSON object");
        }
    }

    private static string Clip(string text) => text.Length <= 64 ? text : text[..64] + "…";
}

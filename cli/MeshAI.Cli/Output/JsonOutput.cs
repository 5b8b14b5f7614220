using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;

namespace MeshAI.Cli.Output;

/// <summary>Machine-readable output: proto messages through the protobuf JSON mapping, everything else through System.Text.Json.</summary>
public static class JsonOutput
{
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    private static readonly JsonSerializerOptions WriteOptions = new()
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>A proto message as a JSON node (camelCase names, enums by name, int64 as strings, default values included).</summary>
    public static JsonNode Node(IMessage message) => JsonNode.Parse(Formatter.Format(message))!;

    /// <summary>A list of proto messages as a JSON array.</summary>
    public static JsonArray Array<T>(IEnumerable<T> messages)
        where T : IMessage => new(messages.Select(m => (JsonNode?)Node(m)).ToArray());

    /// <summary>Indented JSON text of <paramref name="node"/>.</summary>
    public static string Text(JsonNode? node) => node?.ToJsonString(WriteOptions) ?? "null";
}

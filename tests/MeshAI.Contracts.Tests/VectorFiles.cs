using NUnit.Framework;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Contracts.Tests;

/// <summary>Locates tests/vectors/ and renders expected.json from <see cref="VectorFixtures"/>.</summary>
public static class VectorFiles
{
    public const string UpdateVariable = "MESHAI_UPDATE_VECTORS";

    /// <summary>True when MESHAI_UPDATE_VECTORS=1: the tests rewrite the committed vectors instead of comparing.</summary>
    public static bool UpdateRequested =>
        Environment.GetEnvironmentVariable(UpdateVariable) == "1";

    /// <summary>The repository root: the first directory above the test binaries that holds MeshAI.sln.</summary>
    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MeshAI.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException(
            $"No MeshAI.sln above {TestContext.CurrentContext.TestDirectory}; run the tests from inside the repository.");
    }

    public static string VectorsDir() => Path.Combine(RepoRoot(), "tests", "vectors");

    public static string PathOf(string fileName) => Path.Combine(VectorsDir(), fileName);

    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default);

    private static JsonNode MessageJson(IMessage message) =>
        JsonNode.Parse(Formatter.Format(message))
        ?? throw new InvalidOperationException("JsonFormatter produced null.");

    /// <summary>
    /// expected.json: for each vector the message type, the SHA-256 of its bytes and the message in canonical
    /// proto3 JSON (int64 as strings, bytes as base64, enums by name; default values omitted, so every field
    /// present in the JSON is a field the fixture sets). LF line endings, trailing newline.
    /// </summary>
    public static string RenderExpectedJson()
    {
        var vectors = new JsonObject();
        foreach (var (file, message) in VectorFixtures.All())
        {
            vectors[Path.GetFileNameWithoutExtension(file)] = new JsonObject
            {
                ["file"] = file,
                ["type"] = message.Descriptor.FullName,
                ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(message.ToByteArray())),
                ["message"] = MessageJson(message),
            };
        }

        var details = VectorFixtures.PlacementTicketDetails();
        var root = new JsonObject
        {
            ["comment"] = "Generated from tests/MeshAI.Contracts.Tests/VectorFixtures.cs by running the contract tests with "
                + "MESHAI_UPDATE_VECTORS=1. Do not edit by hand; see README.md.",
            ["vectors"] = vectors,
            ["embedded"] = new JsonObject
            {
                ["placement_ticket_details"] = new JsonObject
                {
                    ["in"] = "relay_connect_response_job_offer: jobOffer.ticket.details",
                    ["type"] = PlacementTicketDetails.Descriptor.FullName,
                    ["message"] = MessageJson(details),
                },
            },
        };

        var options = new JsonSerializerOptions
        {
            WriteIndented = true,
            NewLine = "\n",
            // Readable file: keep '+' in base64 and non-ASCII text as is (the file is UTF-8).
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        };
        return root.ToJsonString(options) + "\n";
    }

    public static byte[] RenderExpectedJsonBytes() => new UTF8Encoding(false).GetBytes(RenderExpectedJson());
}

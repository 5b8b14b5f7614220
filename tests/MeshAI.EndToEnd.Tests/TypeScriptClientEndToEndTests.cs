using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Issue 6: the TypeScript client receives streamed chat tokens too. A real server and one agent serving small_chat
/// from the generated tiny GGUF; <c>clients/typescript/scripts/stream-chat.mjs</c> imports the BUILT client
/// (<c>clients/typescript/dist</c>), submits a plaintext chat over gRPC-Web with the session token and prints every
/// WatchJob frame as a JSON line.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed class TypeScriptClientEndToEndTests
{
    private const int MaxTokens = 24;

    private static readonly string ClientDirectory = RepoPaths.Combine("clients", "typescript");

    private LocalMesh _mesh = null!;
    private string _token = null!;
    private string _networkId = null!;
    private MeshAgent _agent = null!;

    /// <summary>Server, sign-in, the tiny GGUF and a network with one agent that serves chat from it.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 10 });
        _token = await _mesh.SignInAsync("ts-client@example.com");
        using var channel = _mesh.Channel(_token);
        var modelDir = await MeshJobs.GenerateTinyChatModelAsync(Path.Combine(_mesh.DataDirectory, "tiny-chat"));
        var (networkId, agents) = await MeshJobs.NetworkWithAgentsAsync(_mesh, channel, "ts-chat", count: 1, agentArguments: ["--chat-model-dir", modelDir]);
        _networkId = networkId;
        _agent = agents[0];
    }

    /// <summary>Stops everything.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    [Test]
    public async Task TypeScript_client_streams_chat_tokens_over_grpc_web_before_the_result()
    {
        var node = FindOnPath("node") ?? throw new AssertionException("node is not on PATH: install Node.js >= 20 (./test.sh requires it)");
        await EnsureClientBuiltAsync();

        // The server's certificate is self-signed: trust exactly that certificate in the node child process.
        var caFile = Path.Combine(_mesh.DataDirectory, "server-cert.pem");
        using (var certificate = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(_mesh.DataDirectory, "tls", "server.pfx"), password: null))
        {
            await File.WriteAllTextAsync(caFile, certificate.ExportCertificatePem());
        }

        await using var run = await ProcessRunner.RunAsync(new ProcessRunnerOptions
        {
            FileName = node,
            Arguments =
            [
                Path.Combine(ClientDirectory, "scripts", "stream-chat.mjs"),
                "--url", _mesh.Url, "--token", _token, "--network", _networkId, "--device", _agent.DeviceId,
                "--max-tokens", MaxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ],
            WorkingDirectory = ClientDirectory,
            Environment = new Dictionary<string, string?> { ["NODE_EXTRA_CA_CERTS"] = caFile, ["NODE_TLS_REJECT_UNAUTHORIZED"] = null },
            Name = "ts-stream-chat",
        }, TimeSpan.FromSeconds(180));
        Assert.That(run.ExitCode, Is.Zero, $"{run.Output}\n--- agent ---\n{_agent.Process.OutputTail()}");

        var frames = run.Lines.Where(l => !l.IsStandardError && l.Text.StartsWith('{')).Select(l => JsonDocument.Parse(l.Text).RootElement.Clone()).ToList();
        var kinds = frames.Select(f => f.GetProperty("kind").GetString()).ToList();
        var resultAt = kinds.IndexOf("result");
        Assert.That(resultAt, Is.EqualTo(frames.Count - 1), "the result is the last frame printed\n" + run.Output);
        var tokens = frames.Take(resultAt).Where(f => f.GetProperty("kind").GetString() == "token").ToList();
        var result = frames[resultAt];
        var streamed = Encoding.UTF8.GetString(tokens.SelectMany(t => Convert.FromBase64String(t.GetProperty("b64").GetString()!)).ToArray());
        TestContext.Out.WriteLine($"{tokens.Count} token frames before the result: \"{streamed}\"");

        Assert.That(tokens, Has.Count.GreaterThanOrEqualTo(2).And.Count.LessThanOrEqualTo(MaxTokens), "token frames arrive before the result frame\n" + run.Output);
        Assert.That(tokens.Select(t => t.GetProperty("index").GetInt32()), Is.Ordered.Ascending, "token indexes");
        Assert.That(result.GetProperty("completionTokens").GetInt32(), Is.EqualTo(MaxTokens), "runs to max_tokens");
        Assert.That(result.GetProperty("finishReason").GetString(), Is.EqualTo("length"));
        Assert.That(result.GetProperty("text").GetString(), Does.StartWith(streamed), "the streamed tokens are the chat text (or a prefix of it)");
    }

    /// <summary>
    /// ./test.sh builds the client in its typescript ring before the dotnet ring; a run of this test alone builds it
    /// here when dist/ is missing or older than the sources or protos.
    /// </summary>
    private static async Task EnsureClientBuiltAsync()
    {
        var built = new FileInfo(Path.Combine(ClientDirectory, "dist", "index.js"));
        var sources = Directory.EnumerateFiles(Path.Combine(ClientDirectory, "src"), "*.ts", SearchOption.AllDirectories)
            .Where(f => !f.Contains(Path.Combine("src", "gen"), StringComparison.Ordinal))
            .Concat(Directory.EnumerateFiles(RepoPaths.Combine("protos"), "*.proto", SearchOption.AllDirectories))
            .Append(Path.Combine(ClientDirectory, "package.json"));
        if (built.Exists && sources.All(f => File.GetLastWriteTimeUtc(f) <= built.LastWriteTimeUtc))
        {
            return;
        }

        if (!Directory.Exists(Path.Combine(ClientDirectory, "node_modules", "@connectrpc", "connect-web")))
        {
            Assert.Fail($"the TypeScript client's dependencies are not installed: run `npm ci` in {ClientDirectory} (./test.sh does)");
        }

        var npm = FindOnPath("npm") ?? throw new AssertionException("npm is not on PATH: install Node.js >= 20 (./test.sh requires it)");
        TestContext.Progress.WriteLine($"building the TypeScript client ({(built.Exists ? "dist/ is older than its sources" : "no dist/")})");
        await using var build = await ProcessRunner.RunAsync(
            new ProcessRunnerOptions { FileName = npm, Arguments = ["run", "build"], WorkingDirectory = ClientDirectory, Name = "npm-build" },
            TimeSpan.FromSeconds(300));
        Assert.That(build.ExitCode, Is.Zero, "npm run build in clients/typescript\n" + build.Output);
    }

    private static string? FindOnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, tool))
            .FirstOrDefault(File.Exists);
}

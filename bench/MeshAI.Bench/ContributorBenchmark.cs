using System.Globalization;
using System.Text.Json;
using MeshAI.Testing;

namespace MeshAI.Bench;

/// <summary>
/// Embeddings per second in the web contributor page (onnxruntime-web, WebAssembly, headless Chromium with phone emulation)
/// against the native agent (ONNX Runtime, C#) on the same machine, the same real all-MiniLM-L6-v2 files and the same
/// texts (tests/data/retrieval-documents.tsv), in the same run. Each device runs <c>rounds</c> jobs of all the texts after
/// one warm-up job; the rate is texts ÷ the device's own runtime (metering), so relay and queueing are left out.
/// </summary>
public static class ContributorBenchmark
{
    /// <summary>Runs both devices and prints one line each and the ratio.</summary>
    public static async Task<int> RunAsync(int rounds)
    {
        var texts = File.ReadLines(RepoPaths.Combine("tests", "data", "retrieval-documents.tsv"))
            .Where(l => !l.StartsWith('#') && l.Contains('\t', StringComparison.Ordinal)).Select(l => l[(l.IndexOf('\t', StringComparison.Ordinal) + 1)..]).ToArray();
        var models = await ProvisionedModels.EnsureAsync();
        await using var mesh = await LocalMesh.StartAsync(new LocalMeshOptions { ExtraServerArguments = ["--models-dir", models] });
        var cli = Path.Combine(mesh.DataDirectory, "bench-cli.json");
        await mesh.SignInWithCliAsync(cli, "bench-contributor@example.com");
        await Cli(cli, "net", "create", "bench-phones");
        await Cli(cli, "models", "publish", ProvisionedModels.MiniLm);
        var agent = await mesh.StartAgentAsync(JsonDocument.Parse(await Cli(cli, "device", "join", "--json")).RootElement.GetProperty("joinLink").GetString()!, "bench-agent");
        await using var page = ContributorPage.Start();
        await page.OpenAsync(JsonDocument.Parse(await Cli(cli, "device", "join", "--web", "--json")).RootElement.GetProperty("webJoinLink").GetString()!);
        await page.JoinAsync("bench-phone");
        var phone = (await page.WaitAsync(phase: "contributing", timeout: TimeSpan.FromMinutes(5))).DeviceId;

        var native = await MeasureAsync(cli, agent.DeviceId, texts, rounds);
        var web = await MeasureAsync(cli, phone, texts, rounds);
        Console.WriteLine($"texts per job: {texts.Length} (tests/data/retrieval-documents.tsv), rounds: {rounds} after 1 warm-up, model {ProvisionedModels.MiniLm}, {Environment.ProcessorCount} cores");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"native agent (ONNX Runtime, C#)",-42} {native,8:F1} texts/s"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"web contributor (onnxruntime-web, WASM)",-42} {web,8:F1} texts/s"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio web / native: {web / native:F2}"));
        return 0;
    }

    /// <summary>Texts per second from the median device runtime of <paramref name="rounds"/> jobs pinned to the device.</summary>
    private static async Task<double> MeasureAsync(string cli, string deviceId, string[] texts, int rounds)
    {
        var runtimes = new List<double>();
        for (var i = 0; i <= rounds; i++)
        {
            var run = JsonDocument.Parse(await Cli(cli, ["run", "embeddings", .. texts.SelectMany(t => new[] { "--text", t }), "--routing", "pinned_device", "--device", deviceId, "--json"]));
            if (i > 0)
            {
                runtimes.Add(run.RootElement.GetProperty("runtimeMs").GetDouble());
            }
        }

        runtimes.Sort();
        return texts.Length / (runtimes[runtimes.Count / 2] / 1000.0);
    }

    private static async Task<string> Cli(string config, params string[] arguments)
    {
        var result = await LocalMesh.RunCliAsync(config, arguments, TimeSpan.FromMinutes(5));
        return result.ExitCode == 0 ? result.StandardOutput : throw new InvalidOperationException($"meshnet {arguments[0]} {arguments[1]} failed: {result.StandardError}");
    }
}

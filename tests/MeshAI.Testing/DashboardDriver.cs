using System.Globalization;
using System.Text.Json;
using NUnit.Framework;

namespace MeshAI.Testing;

/// <summary>
/// Runs one flow of tests/browser/dashboard.mjs (headless system Chromium, playwright-core) against a server and hands its
/// EVENT lines to the test while the browser waits; returns the flow's RESULT. Screenshots go to
/// <c>.artifacts/dashboard/</c> at the repository root.
/// </summary>
public sealed class DashboardDriver(string url)
{
    /// <summary>tests/browser (the playwright-core driver).</summary>
    public static readonly string BrowserDirectory = RepoPaths.Combine("tests", "browser");

    /// <summary>Where screenshots go.</summary>
    public static readonly string Artifacts = RepoPaths.Combine(".artifacts", "dashboard");

    /// <summary>Fails with a clear message when a prerequisite of the browser tests is missing.</summary>
    public static void RequireTools()
    {
        if (!File.Exists(RepoPaths.Combine("clients", "dashboard", "dist", "index.html")))
        {
            Assert.Fail("the dashboard is not built: run `npm ci && npm run build` in clients/dashboard (./test.sh does)");
        }

        if (!Directory.Exists(Path.Combine(BrowserDirectory, "node_modules", "playwright-core")) || !Directory.Exists(Path.Combine(BrowserDirectory, "node_modules", "axe-core")))
        {
            Assert.Fail($"playwright-core / axe-core are not installed: run `npm ci` in {BrowserDirectory} (./test.sh does)");
        }

        if (!File.Exists(Environment.GetEnvironmentVariable("MESHAI_CHROMIUM") ?? "/usr/bin/chromium"))
        {
            Assert.Fail("Chromium is missing: install the chromium package (./test.sh does)");
        }
    }

    /// <summary>
    /// Runs <paramref name="flow"/>; every "EVENT {json}" line goes to <paramref name="onEvent"/> (which may answer on the
    /// flow's stdin); returns the RESULT object. A FAILED line or a non-zero exit fails the test with the browser's output.
    /// </summary>
    public async Task<JsonElement> RunAsync(string flow, IReadOnlyDictionary<string, string>? arguments = null, Func<JsonElement, ProcessRunner, Task>? onEvent = null, TimeSpan? timeout = null, string? atUrl = null)
    {
        Directory.CreateDirectory(Artifacts);
        List<string> argv = [Path.Combine(BrowserDirectory, "dashboard.mjs"), "--flow", flow, "--url", atUrl ?? url, "--out", Artifacts];
        foreach (var (key, value) in arguments ?? new Dictionary<string, string>())
        {
            argv.AddRange(["--" + key, value]);
        }

        await using var run = ProcessRunner.Start(new ProcessRunnerOptions
        {
            FileName = "node",
            Arguments = argv,
            WorkingDirectory = BrowserDirectory,
            RedirectStandardInput = true,
            Name = "dashboard-" + flow,
        });
        var limit = timeout ?? TimeSpan.FromSeconds(180);
        var deadline = DateTimeOffset.UtcNow + limit;
        var next = 0;
        while (true)
        {
            var remaining = deadline - DateTimeOffset.UtcNow;
            if (remaining <= TimeSpan.Zero)
            {
                Assert.Fail($"flow {flow} did not finish within {limit.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s:\n{run.Output}");
            }

            ProcessOutputLine line;
            try
            {
                line = await run.WaitForLineAsync(
                    l => l.StartsWith("EVENT ", StringComparison.Ordinal) || l.StartsWith("RESULT ", StringComparison.Ordinal) || l.StartsWith("FAILED ", StringComparison.Ordinal),
                    remaining, next);
            }
            catch (TimeoutException)
            {
                Assert.Fail($"flow {flow} did not finish within {limit.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s:\n{run.Output}");
                throw;
            }

            next = line.Index + 1;
            if (line.Text.StartsWith("FAILED ", StringComparison.Ordinal))
            {
                Assert.Fail($"flow {flow} failed in the browser: {line.Text[7..]}\n--- output ---\n{run.Output}");
            }

            var json = JsonDocument.Parse(line.Text[(line.Text.IndexOf(' ', StringComparison.Ordinal) + 1)..]).RootElement.Clone();
            if (line.Text.StartsWith("RESULT ", StringComparison.Ordinal))
            {
                TestContext.Out.WriteLine($"flow {flow}: {line.Text}");
                // The page runs under the server's Content-Security-Policy: a violation means a screen relies on something it forbids.
                var violations = json.GetProperty("consoleErrors").EnumerateArray().Select(e => e.GetString() ?? "").Where(e => e.Contains("Content Security Policy", StringComparison.OrdinalIgnoreCase)).ToList();
                Assert.That(violations, Is.Empty, $"flow {flow} hit the CSP");
                return json;
            }

            if (onEvent is null)
            {
                Assert.Fail($"flow {flow} raised an event the test does not handle: {line.Text}");
            }

            await onEvent!(json, run);
        }
    }

    /// <summary>Tells a waiting flow to go on (one line on its stdin).</summary>
    public static async Task ContinueAsync(ProcessRunner run, string line = "go")
    {
        await run.StandardInput.WriteLineAsync(line);
        await run.StandardInput.FlushAsync();
    }
}

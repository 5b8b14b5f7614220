using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MeshAI.Testing;

/// <summary>What the contributor page shows (read from its DOM by tests/browser/contribute.mjs).</summary>
public sealed record ContributorPageState(
    string Phase, string DeviceId, string Headline, string Reason, string Job, string Model, string JobsToday, string CreditsToday,
    bool SwitchedOn, bool CrossOriginIsolated, IReadOnlyList<ContributorRule> Rules, IReadOnlyList<ContributorEvent> Events)
{
    /// <summary>The activity entries of a job, newest first.</summary>
    public IEnumerable<ContributorEvent> EventsOf(string jobId) => Events.Where(e => e.JobId == jobId);
}

/// <summary>One contribution rule as the page shows it: ok, blocked or unknown (cannot be checked).</summary>
public sealed record ContributorRule(string Id, string State, string Text);

/// <summary>One entry of the page's recent activity: done, declined, refused, handed-back, failed, info.</summary>
public sealed record ContributorEvent(string Kind, string JobId, string Text);

/// <summary>
/// One phone page of the web contributor (/contribute) held open in headless Chromium with phone emulation by
/// tests/browser/contribute.mjs, which the test drives command by command (open, join, change a browser signal, wait for a
/// phase or an activity entry, screenshot). Screenshots land in <see cref="Artifacts"/>.
/// </summary>
public sealed class ContributorPage : IAsyncDisposable
{
    /// <summary>Where the screenshots go (.artifacts/contribute).</summary>
    public static readonly string Artifacts = RepoPaths.Combine(".artifacts", "contribute");

    private static readonly string BrowserDirectory = RepoPaths.Combine("tests", "browser");
    private readonly ProcessRunner _node;
    private int _next;

    private ContributorPage(ProcessRunner node) => _node = node;

    /// <summary>The driver's output so far (for failure messages).</summary>
    public string Output => _node.OutputTail(80);

    /// <summary>
    /// Starts the browser; fails with a clear message when a prerequisite is missing. <paramref name="realSignals"/>: leave the
    /// browser's own battery/connection/pressure signals (headless Linux Chromium has no connection type) instead of a phone's.
    /// </summary>
    public static ContributorPage Start(bool realSignals = false)
    {
        if (!File.Exists(RepoPaths.Combine("clients", "dashboard", "dist", "contribute.html")))
        {
            throw new InvalidOperationException("the web pages are not built: run `npm ci && npm run build` in clients/dashboard (./test.sh does)");
        }

        if (!Directory.Exists(Path.Combine(BrowserDirectory, "node_modules", "playwright-core")))
        {
            throw new InvalidOperationException($"playwright-core is not installed: run `npm ci` in {BrowserDirectory} (./test.sh does)");
        }

        if (!File.Exists(Environment.GetEnvironmentVariable("MESHAI_CHROMIUM") ?? "/usr/bin/chromium"))
        {
            throw new InvalidOperationException("Chromium is missing: install the chromium package (./test.sh does)");
        }

        Directory.CreateDirectory(Artifacts);
        return new ContributorPage(ProcessRunner.Start(new ProcessRunnerOptions
        {
            FileName = "node",
            Arguments = [Path.Combine(BrowserDirectory, "contribute.mjs"), "--out", Artifacts, "--signals", realSignals ? "real" : "phone"],
            WorkingDirectory = BrowserDirectory,
            RedirectStandardInput = true,
            Name = "contribute-page",
        }));
    }

    /// <summary>Opens the page (a join link or /contribute).</summary>
    public Task OpenAsync(string url) => SendAsync(new JsonObject { ["op"] = "open", ["url"] = url });

    /// <summary>Names the phone and taps "Join and contribute".</summary>
    public Task JoinAsync(string name) => SendAsync(new JsonObject { ["op"] = "join", ["name"] = name });

    /// <summary>Taps the big on/off switch.</summary>
    public Task ToggleAsync() => SendAsync(new JsonObject { ["op"] = "toggle" });

    /// <summary>Changes browser signals (charging, level, type, visible, pressure) and fires their events, as a phone would.</summary>
    /// <paramref name="afterHeartbeat"/>: right after the page's next heartbeat was answered (control then keeps the old state for
    /// a heartbeat interval).
    public Task SignalsAsync(object change, bool afterHeartbeat = false) =>
        SendAsync(new JsonObject { ["op"] = "signals", ["set"] = JsonSerializer.SerializeToNode(change), ["afterHeartbeat"] = afterHeartbeat }, TimeSpan.FromSeconds(90));

    /// <summary>Waits until the page shows <paramref name="phase"/> (and, when given, an activity entry of a kind for a job).</summary>
    public async Task<ContributorPageState> WaitAsync(string? phase = null, string? eventKind = null, string? jobId = null, TimeSpan? timeout = null)
    {
        var request = new JsonObject { ["op"] = "wait", ["timeoutMs"] = (long)(timeout ?? TimeSpan.FromSeconds(60)).TotalMilliseconds };
        if (phase is not null)
        {
            request["phase"] = phase;
        }

        if (eventKind is not null)
        {
            request["event"] = new JsonObject { ["kind"] = eventKind, ["jobId"] = jobId };
        }

        return State(await SendAsync(request, (timeout ?? TimeSpan.FromSeconds(60)) + TimeSpan.FromSeconds(30)));
    }

    /// <summary>What the page shows now.</summary>
    public async Task<ContributorPageState> StateAsync() => State(await SendAsync(new JsonObject { ["op"] = "state" }));

    /// <summary>A 390×844 screenshot (viewport, or the whole page) as .artifacts/contribute/contribute-NAME.png; returns its path.</summary>
    public async Task<string> ScreenshotAsync(string name, bool fullPage = false) =>
        (await SendAsync(new JsonObject { ["op"] = "shot", ["name"] = name, ["fullPage"] = fullPage }))["path"]!.GetValue<string>();

    private async Task<JsonObject> SendAsync(JsonObject request, TimeSpan? timeout = null)
    {
        var id = Interlocked.Increment(ref _next);
        request["id"] = id;
        var from = _node.LineCount;
        await _node.StandardInput.WriteLineAsync(request.ToJsonString());
        await _node.StandardInput.FlushAsync();
        var marker = "{\"id\":" + id.ToString(CultureInfo.InvariantCulture) + ",";
        ProcessOutputLine line;
        try
        {
            line = await _node.WaitForLineAsync(l => l.StartsWith(marker, StringComparison.Ordinal), timeout ?? TimeSpan.FromSeconds(90), from);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"the contributor page did not answer {request["op"]}:\n{Output}");
        }

        var answer = JsonNode.Parse(line.Text)!.AsObject();
        if (!answer["ok"]!.GetValue<bool>())
        {
            throw new InvalidOperationException($"contributor page: {request["op"]} failed: {answer["error"]}\n{Output}");
        }

        return answer;
    }

    private static ContributorPageState State(JsonObject answer)
    {
        var s = answer["state"]!.AsObject();
        string Text(string name) => s[name]?.GetValue<string>() ?? "";
        return new ContributorPageState(
            Text("phase"), Text("deviceId"), Text("headline"), Text("reason"), Text("job"), Text("model"), Text("jobsToday"), Text("creditsToday"),
            s["switchedOn"]?.GetValue<bool>() ?? false, s["crossOriginIsolated"]?.GetValue<bool>() ?? false,
            [.. s["rules"]!.AsArray().Select(r => new ContributorRule(r!["id"]!.GetValue<string>(), r["state"]!.GetValue<string>(), r["text"]!.GetValue<string>()))],
            [.. s["events"]!.AsArray().Select(e => new ContributorEvent(e!["kind"]!.GetValue<string>(), e["jobId"]?.GetValue<string>() ?? "", e["text"]!.GetValue<string>()))]);
    }

    /// <summary>Closes the browser.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _node.StandardInput.WriteLineAsync("{\"id\":0,\"op\":\"close\"}");
            await _node.StandardInput.FlushAsync();
            await _node.WaitForExitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception ex) when (ex is IOException or TimeoutException or InvalidOperationException)
        {
            // the process is killed below either way
        }

        await _node.DisposeAsync();
    }
}

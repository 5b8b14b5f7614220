using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Google.Protobuf;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Testing;

namespace MeshAI.Bench;

/// <summary>
/// Issue #11's dead-agent goal: a job runs on a real agent process, the agent is made to fail, and the harness reads from the
/// job's own attempt timestamps when control noticed (attempt 1 ended) and when the job was re-offered (attempt 2 started),
/// measured from the failure. Two kinds of failure:
/// <list type="bullet">
/// <item><b>dead</b>: the agent process is killed (SIGKILL): the kernel closes its sockets, the relay sees the stream end.
/// Goal: re-offered within 1 s.</item>
/// <item><b>silent</b>: the agent process is stopped (SIGSTOP): its TCP connection stays open but nothing arrives; the relay's
/// heartbeat watchdog cuts the stream once the configured grace passes without a frame. Goal: re-offered within the grace
/// (measured from the stop, so the time since the agent's last heartbeat is on the harness's side of the figure).</item>
/// </list>
/// The server's own log timestamps split each figure: when the relay saw the stream end (its "disconnected" line) and when
/// the job's execution handled it (the attempt's end), so a slow figure says where the time went.
/// </summary>
public static class DeadAgentHarness
{
    private const int SigStop = 19;
    private const int SigCont = 18;

    /// <summary>Runs <paramref name="trials"/> kills and <paramref name="silentTrials"/> stops, printing one line per trial and a summary.</summary>
    public static async Task<int> RunAsync(int trials, int silentTrials = 1, int graceSeconds = 20)
    {
        // Information: the relay's "disconnected" line and the job's attempt lines carry the server's own timestamps.
        await using var mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = graceSeconds, ExtraServerArguments = ["--log-level", "Information"] });
        var token = await mesh.SignInAsync("bench@example.com");
        using var channel = mesh.Channel(token);
        var network = (await new NetworkService.NetworkServiceClient(channel).CreateNetworkAsync(new CreateNetworkRequest { Name = "dead-agent" })).Network;
        var devices = new DeviceService.DeviceServiceClient(channel);
        var agents = new List<MeshAgent>();
        for (var i = 0; i <= trials + silentTrials; i++)
        {
            var join = await devices.CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId });
            agents.Add(await mesh.StartAgentAsync(join.JoinLink, $"agent-{i}"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{agents.Count} agents; heartbeat grace {graceSeconds} s; {trials} kill(s) (SIGKILL) and {silentTrials} stop(s) (SIGSTOP) of the agent running an echo job [load {Load()}]"));
        var jobs = new JobService.JobServiceClient(channel);
        var results = new Dictionary<string, List<(double Seen, double Noticed, double Offered)>>(StringComparer.Ordinal) { ["dead"] = [], ["silent"] = [] };
        for (var trial = 0; trial < trials + silentTrials; trial++)
        {
            var kind = trial < trials ? "dead" : "silent";
            var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("dead-agent"), DelayMs = 3_000 } };
            var envelope = LoadHarness.EchoEnvelope(network.NetworkId, input.ToByteString(), 120_000);
            var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = envelope })).Job;
            var running = await PollAsync(jobs, network.NetworkId, job.JobId, j => j.State == JobState.Running, TimeSpan.FromSeconds(60));
            var victim = agents.Single(a => a.DeviceId == running.DeviceId);
            var serverLines = mesh.Server.LineCount;
            var failedMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var goneMs = double.NaN;
            if (kind == "dead")
            {
                victim.Process.Kill();
                await victim.Process.WaitForExitAsync(TimeSpan.FromSeconds(30));
                goneMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - failedMs;
            }
            else
            {
                _ = Kill(victim.Process.Id, SigStop);
            }

            agents.Remove(victim);
            var retried = await PollAsync(jobs, network.NetworkId, job.JobId, j => j.Attempts.Count >= 2, TimeSpan.FromSeconds(graceSeconds + 60));
            var first = retried.Attempts.Single(a => a.Attempt == 1);
            var second = retried.Attempts.Single(a => a.Attempt == 2);
            var endMs = first.EndTime.ToDateTimeOffset().ToUnixTimeMilliseconds() - failedMs;
            var offerMs = second.StartTime.ToDateTimeOffset().ToUnixTimeMilliseconds() - failedMs;
            var seenMs = DisconnectSeenMs(mesh.Server, serverLines, victim.DeviceId) is { } seen ? seen - failedMs : double.NaN;
            results[kind].Add((seenMs, endMs, offerMs));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{kind} trial {results[kind].Count}: {(kind == "dead" ? $"killed {victim.Name} (its exit seen here after {goneMs:F0} ms)" : $"stopped {victim.Name}")}; relay saw the stream end after {seenMs:F0} ms; attempt 1 ended {first.Cause} (\"{first.Detail}\") after {endMs} ms; attempt 2 offered to {second.DeviceId} after {offerMs} ms [load {Load()}]"));
            var done = await PollAsync(jobs, network.NetworkId, job.JobId, j => j.State is JobState.Completed or JobState.Failed, TimeSpan.FromSeconds(120));
            Console.WriteLine($"  job {done.State} on {done.DeviceId} after {done.Attempts.Count} attempt(s)");
            if (kind == "silent")
            {
                _ = Kill(victim.Process.Id, SigCont);
                victim.Process.Kill();
            }
        }

        static string Figures(List<(double Seen, double Noticed, double Offered)> r) => r.Count == 0 ? "no trials" : string.Create(CultureInfo.InvariantCulture,
            $"stream end seen in median {Median(r.Select(x => x.Seen))} ms, attempt ended in median {Median(r.Select(x => x.Noticed))} ms, re-offered in median {Median(r.Select(x => x.Offered))} ms (max {r.Max(x => x.Offered):F0}; {r.Count} trial(s))");
        Console.WriteLine($"bench: dead agent (SIGKILL): {Figures(results["dead"])}, goal 1000 ms; silent agent (SIGSTOP): {Figures(results["silent"])}, goal {graceSeconds * 1000} ms (the grace) [load {Load()}]");
        return 0;
    }

    /// <summary>When the relay logged the end of <paramref name="deviceId"/>'s stream (server clock, ms since the epoch), from line <paramref name="from"/> on.</summary>
    private static long? DisconnectSeenMs(ProcessRunner server, int from, string deviceId)
    {
        foreach (var line in server.Lines.Skip(from))
        {
            if (!line.Text.Contains($"Device {deviceId} disconnected", StringComparison.Ordinal))
            {
                continue;
            }

            try
            {
                using var json = JsonDocument.Parse(line.Text);
                return DateTimeOffset.Parse(json.RootElement.GetProperty("Timestamp").GetString()!, CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or FormatException or InvalidOperationException)
            {
                return line.Timestamp.ToUnixTimeMilliseconds();
            }
        }

        return null;
    }

    private static string Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToList();
        return sorted.Count == 0 ? "?" : sorted[sorted.Count / 2].ToString("F0", CultureInfo.InvariantCulture);
    }

    private static string Load() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    private static async Task<Job> PollAsync(JobService.JobServiceClient jobs, string networkId, string jobId, Func<Job, bool> done, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var job = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = jobId })).Job;
            if (done(job))
            {
                return job;
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"job {jobId} stuck in {job.State}");
            }

            await Task.Delay(20);
        }
    }
}

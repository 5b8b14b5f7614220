using System.Globalization;
using Google.Protobuf;
using MeshAI.Agent.Sandbox;
using MeshAI.Agent.Workloads;
using MeshAI.Contracts.Job.V1;
using MeshAI.Testing;

namespace MeshAI.Bench;

/// <summary>
/// The agent → sandbox worker hop alone (issue #11, "a worker-process hop that costs microseconds"): the same
/// <see cref="EchoHandler"/> called in this process (the baseline) and through <see cref="SandboxedHandler"/>, i.e. a real
/// <c>meshai-agent worker --class diagnostic_echo</c> process fed framed protobuf over its stdin/stdout, both in the same
/// run, for a small payload and for an embeddings-sized one (64 vectors of 384 floats ≈ 98 KB). Prints wall time and CPU
/// per job of this process (the agent's side of the hop) and of the worker.
/// </summary>
public static class WorkerHopHarness
{
    /// <summary>Runs both paths for each payload size and prints one <c>bench:</c> line per size.</summary>
    public static async Task<int> RunAsync(int jobs, IReadOnlyList<int> payloadSizes)
    {
        var agentDll = RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent");
        var root = Directory.CreateTempSubdirectory("meshai-hop-").FullName;
        try
        {
            var options = new SandboxOptions { Root = root, MaxWorkersPerClass = 1, Command = (ProcessRunner.DotnetHostPath, [agentDll]) };
            await using var sandboxed = new SandboxedHandler(new EchoHandler(), options);
            var direct = new EchoHandler();
            var context = new BenchJobContext();
            var c = CultureInfo.InvariantCulture;
            foreach (var size in payloadSizes)
            {
                var input = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFrom(new byte[size]) } };
                async Task Check(Task<WorkloadOutput> run)
                {
                    if ((await run).Echo.Data.Length != size)
                    {
                        throw new InvalidOperationException("echo size mismatch");
                    }
                }

                var inProcess = await LoadHarness.MeasureAsync($"echo handler in this process, {size} B", jobs, 1, ct => Check(direct.RunAsync(input, context, ct)));
                var hop = await LoadHarness.MeasureAsync($"echo through the sandbox worker process, {size} B", jobs, 1, ct => Check(sandboxed.RunAsync(input, context, ct)));
                LoadHarness.Print([inProcess, hop], size, 1);
                var agentSide = hop.CpuMsPerCallByProcess.GetValueOrDefault("bench");
                var worker = hop.CpuMsPerCallByProcess.GetValueOrDefault("worker");
                Console.WriteLine(string.Create(c,
                    $"bench: worker hop {size} B: p50 {hop.P50Ms * 1000:F0} us, p99 {hop.P99Ms * 1000:F0} us, CPU {hop.CpuMsPerCall * 1000:F0} us per job (agent side {agentSide * 1000:F0}, worker {worker * 1000:F0}); in-process handler p50 {inProcess.P50Ms * 1000:F1} us [load {AgentStreamsHarness.Load()}]"));
            }

            return 0;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private sealed class BenchJobContext : IJobContext
    {
        public ValueTask ReportProgressAsync(double fraction, string message, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask LogAsync(LogLevel level, string message, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}

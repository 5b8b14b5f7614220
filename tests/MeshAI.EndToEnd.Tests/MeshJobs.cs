using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>Steps several end-to-end fixtures share: a network with online agents, polling a job, a job's ledger events.</summary>
internal static class MeshJobs
{
    /// <summary>
    /// A fresh network with <paramref name="count"/> real agents, returned once all of them are online;
    /// <paramref name="agentArguments"/> go to every agent's <c>run</c> (e.g. <c>--chat-model-dir</c>).
    /// </summary>
    public static async Task<(string NetworkId, IReadOnlyList<MeshAgent> Agents)> NetworkWithAgentsAsync(
        LocalMesh mesh, Grpc.Net.Client.GrpcChannel channel, string name, int count = 3, IReadOnlyList<string>? agentArguments = null)
    {
        var networks = new NetworkService.NetworkServiceClient(channel);
        var network = (await networks.CreateNetworkAsync(new CreateNetworkRequest { Name = "sched-" + name })).Network;
        var devices = new DeviceService.DeviceServiceClient(channel);
        var agents = new List<MeshAgent>();
        for (var i = 0; i < count; i++)
        {
            var join = await devices.CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = network.NetworkId });
            agents.Add(await mesh.StartAgentAsync(join.JoinLink, $"{name}-{i}", agentArguments ?? [], null));
        }

        var deadline = DateTimeOffset.UtcNow.AddSeconds(30);
        while ((await devices.ListDevicesAsync(new ListDevicesRequest { NetworkId = network.NetworkId })).Devices.Count(d => d.OnlineStatus == OnlineStatus.Online) < count)
        {
            Assert.That(DateTimeOffset.UtcNow, Is.LessThan(deadline), $"{count} agents online");
            await Task.Delay(250);
        }

        return (network.NetworkId, agents);
    }

    /// <summary>Writes the tiny llama GGUF chat model (random weights) with <c>meshai-agent models generate-tiny-chat</c>.</summary>
    public static async Task<string> GenerateTinyChatModelAsync(string directory)
    {
        await using var generate = await ProcessRunner.RunAsync(
            new ProcessRunnerOptions { FileName = ProcessRunner.DotnetHostPath, Arguments = [RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent"), "models", "generate-tiny-chat", "--out", directory], Name = "generate-tiny-chat" },
            TimeSpan.FromSeconds(60));
        Assert.That(generate.ExitCode, Is.Zero, generate.Output);
        return directory;
    }

    /// <summary>Polls GetJob until <paramref name="condition"/> holds; fails with the attempts when it never does.</summary>
    public static async Task<Job> WaitForJobAsync(JobService.JobServiceClient jobs, string networkId, string jobId, Func<Job, bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTimeOffset.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        Job job;
        do
        {
            job = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = networkId, JobId = jobId })).Job;
            if (condition(job))
            {
                return job;
            }

            await Task.Delay(100);
        }
        while (DateTimeOffset.UtcNow < deadline);
        Assert.Fail($"job {jobId} is {job.State} ({job.ErrorMessage}); attempts: " + string.Join(", ", job.Attempts.Select(a => $"{a.Attempt}:{a.ChunkId}@{a.DeviceId}={a.Cause}")));
        return job;
    }

    /// <summary>Every ledger event of one job.</summary>
    public static async Task<IReadOnlyList<LedgerEvent>> LedgerEventsAsync(Grpc.Net.Client.GrpcChannel channel, string networkId, string jobId)
    {
        var ledger = new LedgerService.LedgerServiceClient(channel);
        return (await ledger.ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = networkId, JobId = jobId, PageSize = 1000 })).Events;
    }

    /// <summary>Levenshtein distance over tokens divided by the reference length (CER over characters, WER over words).</summary>
    public static double ErrorRate(string[] reference, string[] hypothesis)
    {
        var d = new int[reference.Length + 1, hypothesis.Length + 1];
        for (var i = 0; i <= reference.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= hypothesis.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= reference.Length; i++)
        {
            for (var j = 1; j <= hypothesis.Length; j++)
            {
                var cost = string.Equals(reference[i - 1], hypothesis[j - 1], StringComparison.Ordinal) ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
            }
        }

        return reference.Length == 0 ? 0 : (double)d[reference.Length, hypothesis.Length] / reference.Length;
    }

    /// <summary>Runs a command-line tool (espeak-ng, text2image, …) and fails the test when it exits non-zero.</summary>
    public static async Task RunToolAsync(string tool, IReadOnlyList<string> arguments)
    {
        await using var run = await ProcessRunner.RunAsync(new ProcessRunnerOptions { FileName = tool, Arguments = arguments, Name = tool }, TimeSpan.FromSeconds(60));
        Assert.That(run.ExitCode, Is.Zero, run.Output);
    }
}

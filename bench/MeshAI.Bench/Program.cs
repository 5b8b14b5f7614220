using System.Globalization;
using BenchmarkDotNet.Running;
using MeshAI.Bench;

// dotnet run -c Release --project bench/MeshAI.Bench -- load [jobs] [concurrency] [payloadBytes] [sqlite|postgres|both]
// dotnet run -c Release --project bench/MeshAI.Bench -- micro [BenchmarkDotNet args]
// dotnet run -c Release --project bench/MeshAI.Bench -- chaos [jobs] [agents] [killEverySeconds] [sqlite|postgres] [report.json]
// dotnet run -c Release --project bench/MeshAI.Bench -- scale-out [jobs] [agents]   (scripts/scale-out.sh)
// dotnet run -c Release --project bench/MeshAI.Bench -- dead-agent [trials] [silentTrials] [graceSeconds]
// dotnet run -c Release --project bench/MeshAI.Bench -- embeddings [batches] [batchSize] [model] [concurrency] [meshWarmUp]
// dotnet run -c Release --project bench/MeshAI.Bench -- worker-hop [jobs] [payload sizes in bytes...]
// dotnet run -c Release --project bench/MeshAI.Bench -- agent-streams [agents] [swarms] [windowSeconds] [connectInFlight]
// dotnet run -c Release --project bench/MeshAI.Bench -- agent-swarm <credentials> <from> <count> <connectInFlight>   (started by agent-streams)
// dotnet run -c Release --project bench/MeshAI.Bench -- payload [calls] [sizes: bytes or NMiB, "max" = the largest single-message payload; default 1MiB 64MiB]
// dotnet run -c Release --project bench/MeshAI.Bench -- contributor [rounds]   (embeddings/s: web contributor page vs native agent)
var mode = args.Length > 0 ? args[0] : "load";
if (mode == "micro")
{
    BenchmarkSwitcher.FromAssembly(typeof(TicketAndCertificateBenchmarks).Assembly).Run(args[1..]);
    return 0;
}

if (mode == "load")
{
    int Arg(int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
    var stores = args.Length > 4 && args[4] != "both" ? new[] { args[4] } : new[] { "sqlite", "postgres" };
    return await LoadHarness.RunAsync(jobs: Arg(1, 300), concurrency: Arg(2, 64), payloadBytes: Arg(3, 256), stores);
}

if (mode == "chaos")
{
    string Text(int index, string fallback) => args.Length > index ? args[index] : fallback;
    return await ChaosHarness.RunAsync(new ChaosOptions(
        Jobs: int.Parse(Text(1, "1000"), CultureInfo.InvariantCulture),
        Agents: int.Parse(Text(2, "4"), CultureInfo.InvariantCulture),
        KillEverySeconds: double.Parse(Text(3, "3"), CultureInfo.InvariantCulture),
        Store: Text(4, "sqlite"),
        ReportPath: Text(5, ".artifacts/chaos-report.json")));
}

if (mode == "scale-out")
{
    int Arg(int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
    await using var postgres = await MeshAI.Testing.PostgresServer.StartAsync();
    await using var redis = await MeshAI.Testing.RedisServer.StartAsync();
    Console.WriteLine($"postgres and redis up ({redis}); starting 2 control + 2 relay instances and nginx");
    await using var mesh = await MeshAI.Testing.ScaleOutMesh.StartAsync(postgres, redis);
    var outcome = await MeshAI.Testing.ScaleOutRun.RunAsync(mesh, jobs: Arg(1, 200), agents: Arg(2, 4), line => Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {line}"));
    foreach (var problem in outcome.Problems.Take(20))
    {
        Console.WriteLine("problem: " + problem);
    }

    if (!outcome.Ok || Environment.GetEnvironmentVariable("MESHAI_SCALE_OUT_VERBOSE") == "1")
    {
        foreach (var (id, process) in mesh.Controls.Concat(mesh.Relays))
        {
            Console.Error.WriteLine($"---- {id} (last lines) ----\n{process.OutputTail(80)}");
        }
    }

    Console.WriteLine(outcome.Line);
    return outcome.Ok ? 0 : 1;
}

if (mode == "embeddings")
{
    int Arg(int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
    return await EmbeddingsHarness.RunAsync(batches: Arg(1, 30), batchSize: Arg(2, 64), model: args.Length > 3 ? args[3] : "all-minilm-l6-v2", concurrency: Arg(4, 2), meshWarmUp: Arg(5, 60));
}

if (mode == "worker-hop")
{
    return await WorkerHopHarness.RunAsync(jobs: args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 2000,
        args.Length > 2 ? args[2..].Select(a => int.Parse(a, CultureInfo.InvariantCulture)).ToList() : [256, 98_304]);
}

if (mode == "agent-streams")
{
    int Arg(int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
    return await AgentStreamsHarness.RunAsync(agents: Arg(1, 1000), swarms: Arg(2, 0), windowSeconds: Arg(3, 30), connectInFlight: Arg(4, 64));
}

if (mode == "agent-swarm" && args.Length == 5)
{
    // What meshai-agent's runtimeconfig sets (agent/MeshAI.Agent/MeshAI.Agent.csproj): no RTT-probe PING per heartbeat ack.
    AppContext.SetSwitch("System.Net.SocketsHttpHandler.Http2FlowControl.DisableDynamicWindowSizing", true);
    return await AgentSwarm.RunAsync(args[1], int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture), int.Parse(args[4], CultureInfo.InvariantCulture));
}

if (mode == "payload")
{
    long Size(string text) => text == "max" ? PayloadHarness.SingleMessageMaxBytes
        : text.EndsWith("MiB", StringComparison.Ordinal) ? long.Parse(text[..^3], CultureInfo.InvariantCulture) * 1024 * 1024
        : long.Parse(text, CultureInfo.InvariantCulture);
    var sizes = args.Length > 2 ? args[2..].Select(Size).ToList() : [1024 * 1024, 64L * 1024 * 1024];
    return await PayloadHarness.RunAsync(calls: args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10, sizes);
}

if (mode == "contributor")
{
    return await ContributorBenchmark.RunAsync(rounds: args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3);
}

if (mode == "dead-agent")
{
    return await DeadAgentHarness.RunAsync(
        trials: args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3,
        silentTrials: args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1,
        graceSeconds: args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 20);
}

Console.Error.WriteLine("usage: MeshAI.Bench load [jobs] [concurrency] [payloadBytes] [sqlite|postgres|both] | micro [BenchmarkDotNet args] | chaos [jobs] [agents] [killEverySeconds] [store] [report] | embeddings [batches] [batchSize] [model] [concurrency] [meshWarmUp] | worker-hop [jobs] [sizes] | scale-out [jobs] [agents] | contributor [rounds] | dead-agent [trials] [silentTrials] [graceSeconds] | agent-streams [agents] [swarms] [windowSeconds] [connectInFlight] | payload [calls] [sizes]");
return 2;

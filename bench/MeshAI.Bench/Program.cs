using System.Globalization;
using BenchmarkDotNet.Running;
using MeshAI.Bench;

// dotnet run -c Release --project bench/MeshAI.Bench -- load [jobs] [concurrency] [payloadBytes]
// dotnet run -c Release --project bench/MeshAI.Bench -- micro [BenchmarkDotNet args]
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
    return await LoadHarness.RunAsync(jobs: Arg(1, 300), concurrency: Arg(2, 8), payloadBytes: Arg(3, 256));
}

if (mode == "contributor")
{
    return await ContributorBenchmark.RunAsync(rounds: args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3);
}

Console.Error.WriteLine("usage: MeshAI.Bench load [jobs] [concurrency] [payloadBytes] | micro [BenchmarkDotNet args] | contributor [rounds]");
return 2;

using System.Globalization;
using BenchmarkDotNet.Running;
using MeshAI.Bench;

// dotnet run -c Release --project bench/MeshAI.Bench -- load [jobs] [concurrency] [payloadBytes]
// dotnet run -c Release --project bench/MeshAI.Bench -- micro [BenchmarkDotNet args]
// dotnet run -c Release --project bench/MeshAI.Bench -- embeddings [batches] [batchSize] [model] [concurrency]
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

if (mode == "embeddings")
{
    int Arg(int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
    return await EmbeddingsHarness.RunAsync(batches: Arg(1, 30), batchSize: Arg(2, 64), model: args.Length > 3 ? args[3] : "all-minilm-l6-v2", concurrency: Arg(4, 2));
}

Console.Error.WriteLine("usage: MeshAI.Bench load [jobs] [concurrency] [payloadBytes] | micro [BenchmarkDotNet args] | embeddings [batches] [batchSize] [model] [concurrency]");
return 2;

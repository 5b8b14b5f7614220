using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;

namespace MeshAI.Client;

/// <summary>A finished job: its final record and decoded output.</summary>
public sealed record JobRun(Job Job, WorkloadOutput Output);

/// <summary>Balances and the first page of ledger events of a network.</summary>
public sealed record LedgerView(Balances Balances, IReadOnlyList<LedgerEvent> Events, string NextPageToken);

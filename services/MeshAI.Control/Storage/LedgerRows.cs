namespace MeshAI.Control.Storage;

/// <summary>
/// A job_meterings row: the execution record of one settled job (or chunk) — what ran where, for how long, with how many
/// heartbeats, and the rates in force then. The ledger's amounts are a pure function of these fields (LedgerPricing.Price).
/// </summary>
public sealed class JobMeteringRow
{
    public string NetworkId { get; set; } = "";
    public string JobId { get; set; } = "";
    public string ChunkId { get; set; } = "";
    public int Attempt { get; set; }
    public string DeviceId { get; set; } = "";
    public string DeviceOwnerUserId { get; set; } = "";
    public string SubmittedByUserId { get; set; } = "";
    /// <summary>meshai.ledger.v1.AccountKind the burn comes from (pool when shared, else the submitter).</summary>
    public int BurnAccountKind { get; set; }
    public int Tier { get; set; }
    public int WorkloadId { get; set; }
    public long RuntimeMs { get; set; }
    public long RelayBytes { get; set; }
    public int HeartbeatsDuringRun { get; set; }
    public long BurnMicroPerMin { get; set; }
    public long EarnMicroPerMin { get; set; }
    public long MultiplierBps { get; set; }
    public long BillingGranularityMs { get; set; }
    /// <summary>0 when the relay surcharge is off.</summary>
    public long RelaySurchargeMicroPerMib { get; set; }
    /// <summary>Share of the mint paid out, in basis points (mobile on battery / hot).</summary>
    public long MintCapBps { get; set; } = 10_000;
    /// <summary>The job's max_cost_credits (micro-credits); 0 = uncapped.</summary>
    public long MaxCostMicro { get; set; }
    /// <summary>What earlier settlements of the same job (other chunks) already burned; the cap covers the job as a whole.</summary>
    public long PriorBurnMicro { get; set; }
    /// <summary>Why nothing is minted; empty when minting is allowed.</summary>
    public string MintWithheldReason { get; set; } = "";
    public long CreateTimeMs { get; set; }
}

/// <summary>A device_flags row: a device an anti-abuse check flagged; flagged devices mint nothing.</summary>
public sealed class DeviceFlagRow
{
    public string FlagId { get; set; } = "";
    public string NetworkId { get; set; } = "";
    public string DeviceId { get; set; } = "";
    public string JobId { get; set; } = "";
    public string Reason { get; set; } = "";
    public long CreateTimeMs { get; set; }
}

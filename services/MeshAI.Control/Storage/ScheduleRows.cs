namespace MeshAI.Control.Storage;

/// <summary>A job_chunks row: the first result of one chunk of a chunked job.</summary>
public sealed class JobChunkRow
{
    public string JobId { get; set; } = "";
    public string ChunkId { get; set; } = "";
    public int ChunkIndex { get; set; }
    public int Attempt { get; set; }
    public string DeviceId { get; set; } = "";
    public byte[] Output { get; set; } = [];
    public long RuntimeMs { get; set; }
    public long CostMicro { get; set; }
    public long EndTimeMs { get; set; }
}

/// <summary>A policies row: the network's policy (serialized meshai.network.v1.Policy) and its version.</summary>
public sealed class PolicyRow
{
    public string NetworkId { get; set; } = "";
    public long Version { get; set; }
    public byte[] Policy { get; set; } = [];
    public long UpdateTimeMs { get; set; }
    public string UpdatedBy { get; set; } = "";
}

using Dapper;

namespace MeshAI.Control.Storage;

/// <summary>A model_manifests row: one published, signed manifest version.</summary>
public sealed class ModelManifestRow
{
    public string ManifestId { get; set; } = "";
    public string NetworkId { get; set; } = "";
    public string Name { get; set; } = "";
    public string Version { get; set; } = "";
    public byte[] Manifest { get; set; } = [];
    public long PublishTimeMs { get; set; }
    public string PublishedBy { get; set; } = "";
}

/// <summary>Signed model manifests per network; every version is kept, the newest per name is current.</summary>
public sealed class ModelRepository(Database database)
{
    private const string Columns = "manifest_id, network_id, name, version, manifest, publish_time_ms, published_by";

    /// <summary>Stores a new version; false when (network, name, version) already exists.</summary>
    public Task<bool> InsertAsync(ModelManifestRow row, CancellationToken ct) =>
        database.RunAsync(async c => await c.ExecuteAsync(Database.Command(
            $"INSERT INTO model_manifests ({Columns}) VALUES (@ManifestId, @NetworkId, @Name, @Version, @Manifest, @PublishTimeMs, @PublishedBy) " +
            "ON CONFLICT (network_id, name, version) DO NOTHING", row, ct)) > 0, ct);

    /// <summary>The newest version of <paramref name="name"/> in the network, or null.</summary>
    public Task<ModelManifestRow?> GetLatestAsync(string networkId, string name, CancellationToken ct) =>
        database.RunAsync(c => c.QueryFirstOrDefaultAsync<ModelManifestRow>(Database.Command(
            $"SELECT {Columns} FROM model_manifests WHERE network_id = @networkId AND name = @name ORDER BY publish_time_ms DESC, manifest_id DESC",
            new { networkId, name }, ct)), ct);

    /// <summary>The newest version of every model name in the network, by name.</summary>
    public async Task<IReadOnlyList<ModelManifestRow>> ListLatestAsync(string networkId, CancellationToken ct)
    {
        var rows = await database.RunAsync(c => c.QueryAsync<ModelManifestRow>(Database.Command(
            $"SELECT {Columns} FROM model_manifests WHERE network_id = @networkId ORDER BY name, publish_time_ms DESC, manifest_id DESC",
            new { networkId }, ct)), ct);
        return rows.GroupBy(r => r.Name, StringComparer.Ordinal).Select(g => g.First()).ToList();
    }
}

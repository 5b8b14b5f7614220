using Google.Protobuf.WellKnownTypes;
using MeshAI.Contracts.Audit.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Security;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Networks;

/// <summary>
/// Rotates a network's CA and control signing keys: new keys sign from now on; the previous ones keep verifying until the
/// grace window ends. The new key set is pushed to online agents as a NetworkUpdate (recorded in the rotation's transaction):
/// they trust it without reconnecting, and once a device acknowledges it its tickets are signed with the new control key.
/// Until then (and for devices that were offline) tickets use the control key the device was last given; certificates from
/// the new CA come with the next RenewCertificate, which the agent calls on every connect.
/// </summary>
public sealed class NetworkKeyRotation(
    Database database,
    NetworkAccess access,
    NetworkKeyVault keys,
    NetworkUpdates updates,
    AuditLog audit,
    IOptions<SecurityOptions> options,
    TimeProvider clock)
{
    /// <summary>Admin-triggered rotation.</summary>
    public async Task<RotateNetworkKeysResponse> RotateAsync(Caller caller, string networkId, CancellationToken ct)
    {
        await access.RequireAdminAsync(caller, networkId, "rotate network keys", ct);
        return await RotateAsync(networkId, caller.UserId, "admin", ct);
    }

    /// <summary>Rotates now; <paramref name="actorUserId"/> is empty for scheduled rotation.</summary>
    public async Task<RotateNetworkKeysResponse> RotateAsync(string networkId, string actorUserId, string trigger, CancellationToken ct)
    {
        var graceEnd = clock.GetUtcNow().AddHours(options.Value.KeyRotationGraceHours);
        var (ca, control, update) = await database.InTransactionAsync(async (c, tx) =>
        {
            await NetworkKeyRotationStore.RetireCurrentKeysAsync(c, tx, networkId, graceEnd.ToUnixTimeMilliseconds(), ct);
            var (newCa, newControl) = await keys.CreateKeysAsync(c, tx, networkId, ct);
            return (newCa, newControl, await updates.RecordKeysAsync(c, tx, networkId, ct));
        }, ct);
        keys.KeysChanged(); // committed: tickets are signed from the new rows on every instance
        updates.Push(networkId, update);
        await audit.RecordAsync(networkId, actorUserId, AuditAction.KeyRotation, networkId, new Dictionary<string, string>
        {
            ["trigger"] = trigger, ["new_ca_key_id"] = ca.KeyId, ["new_control_key_id"] = control.KeyId, ["grace_end"] = graceEnd.ToString("O"),
        }, ct);
        return new RotateNetworkKeysResponse { NewCaKeyId = ca.KeyId, NewSigningKeyId = control.KeyId, GraceEndTime = Timestamp.FromDateTimeOffset(graceEnd) };
    }
}

/// <summary>
/// Scheduled rotation: rotates networks whose newest keys are older than their settings' key_rotation_days. With several
/// control instances on one store only the holder of the "scheduled-key-rotation" lease (<see cref="ControlLeases"/>) sweeps,
/// so a network is never rotated twice by two instances at once; when the holder dies its lease expires after one sweep
/// interval and another instance takes over.
/// </summary>
public sealed partial class ScheduledKeyRotation(
    NetworkKeyRotation rotation,
    Database database,
    ControlLeases leases,
    MeshAI.Control.Jobs.ControlInstance instance,
    IOptions<SecurityOptions> options,
    TimeProvider clock,
    ILogger<ScheduledKeyRotation> logger) : BackgroundService
{
    /// <summary>The lease name in control_leases.</summary>
    public const string LeaseName = "scheduled-key-rotation";

    /// <summary>One sweep when this instance holds (or takes) the lease; null when another instance holds it.</summary>
    public async Task<IReadOnlyList<string>?> SweepIfLeaderAsync(CancellationToken ct)
    {
        // The lease outlives one interval a little, so the holder renews it on its next tick before anyone else may take it.
        var ttl = TimeSpan.FromMinutes(options.Value.KeyRotationSweepMinutes * 1.5);
        return await leases.TryAcquireAsync(LeaseName, instance.Id, ttl, ct) ? await SweepAsync(ct) : null;
    }

    /// <summary>One sweep; returns the networks rotated.</summary>
    public async Task<IReadOnlyList<string>> SweepAsync(CancellationToken ct)
    {
        var rotated = new List<string>();
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var (networkId, settingsJson, newest) in await NetworkKeyRotationStore.ListKeyAgesAsync(database, ct))
        {
            var days = NetworkDefaults.FromJson(settingsJson).KeyRotationDays;
            if (days > 0 && newest > 0 && now - newest >= days * 86_400_000L)
            {
                await rotation.RotateAsync(networkId, "", "scheduled", ct);
                rotated.Add(networkId);
                LogRotated(logger, networkId, days);
            }
        }

        return rotated;
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(options.Value.KeyRotationSweepMinutes), clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await SweepIfLeaderAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogSweepFailed(logger, ex);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Scheduled key rotation of {NetworkId} (every {Days} days)")]
    private static partial void LogRotated(ILogger logger, string networkId, int days);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Scheduled key rotation sweep failed")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}

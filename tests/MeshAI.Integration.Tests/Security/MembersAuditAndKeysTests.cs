using System.Text;
using Google.Protobuf;
using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Audit.V1;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using MeshAI.Integration.Tests.Control;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Security;

/// <summary>Members (invite, approval, roles, removal), the audit log, API keys and network key rotation, over the real server with real agent sessions.</summary>
[TestFixtureSource(nameof(Stores))]
[Category("Integration")]
[NonParallelizable]
public sealed class MembersAuditAndKeysTests(string store)
{
    public static readonly string[] Stores = ["sqlite", "postgres"];

    private SecureMeshHost _host = null!;
    private string _admin = "";

    [OneTimeSetUp]
    public async Task Start()
    {
        _host = await SecureMeshHost.StartAsync(store);
        _admin = await _host.SignInAsync("root@example.com");
    }

    [OneTimeTearDown]
    public async Task Stop() => await _host.DisposeAsync();

    private NetworkService.NetworkServiceClient Networks(string token) => new(_host.Channel(token));

    private async Task<string> NewNetworkAsync(NetworkSettings? settings = null) =>
        (await Networks(_admin).CreateNetworkAsync(new CreateNetworkRequest { Name = "n-" + Guid.NewGuid().ToString("N")[..6], Settings = settings })).Network.NetworkId;

    [Test]
    public async Task Email_invite_for_someone_else_is_refused_and_removal_cuts_the_members_devices_and_access_at_once()
    {
        var networkId = await NewNetworkAsync();
        var dana = await _host.SignInAsync($"dana-{store}@example.com");
        var eve = await _host.SignInAsync($"eve-{store}@example.com");
        var invite = await Networks(_admin).InviteMemberAsync(new InviteMemberRequest { NetworkId = networkId, InviteType = InviteType.Email, Invitee = $"dana-{store}@example.com" });
        await Rpc.ThrowsAsync(StatusCode.PermissionDenied, () => Networks(eve).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = invite.InviteLink }).ResponseAsync);
        var member = (await Networks(dana).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = invite.InviteLink })).Member;
        Assert.That(member.State, Is.EqualTo(MemberState.Active), "an email invite names the person: the admin's invite is the approval");
        var again = await Networks(dana).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = invite.InviteLink });
        Assert.That(again.Member.State, Is.EqualTo(MemberState.Active), "accepting twice is idempotent");

        // Dana's device comes online; removing Dana revokes it and cuts its stream; Dana's session loses the network on its next call.
        var (device, keys) = await _host.JoinAsync(dana, networkId, "dana-laptop");
        var run = await _host.GoOnlineAsync(device, keys);
        var removed = await Networks(_admin).RemoveMemberAsync(new RemoveMemberRequest { NetworkId = networkId, UserId = member.UserId });
        Assert.That(removed.RevokedDeviceIds, Is.EqualTo(new[] { device.DeviceId }));
        var end = await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(end.Cut, Is.EqualTo(CutReason.Revoked));
        await Rpc.ThrowsAsync(StatusCode.NotFound, () => Networks(dana).GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId }).ResponseAsync);
        var (identity, why) = await _host.Services.GetRequiredService<MeshAI.Common.Seams.IDeviceAuthority>().AuthenticateAsync(device.ParsedCertificate(), CancellationToken.None);
        Assert.That(identity, Is.Null, "a revoked device's reconnect is refused");
        Assert.That(why, Does.Contain("revoked"));

        var audit = await new AuditService.AuditServiceClient(_host.Channel(_admin)).ListAuditEventsAsync(new ListAuditEventsRequest { NetworkId = networkId });
        Assert.That(audit.Events.Select(e => e.Action), Is.SupersetOf(new[]
        {
            AuditAction.Invite, AuditAction.Approval, AuditAction.DeviceJoined, AuditAction.DeviceRevoked, AuditAction.MemberRemoved,
        }));
        Assert.That(audit.Events.Select(e => e.Sequence), Is.Ordered.Ascending);
    }

    [Test]
    public async Task Share_links_wait_for_approval_unless_the_domain_is_auto_approved_and_the_last_admin_stays()
    {
        var networkId = await NewNetworkAsync(new NetworkSettings
        {
            MemberApprovalMode = MemberApprovalMode.AutoApproveDomainOrAllowlist, AutoApproveAllowlist = { "trusted.example" },
        });
        var link = (await Networks(_admin).InviteMemberAsync(new InviteMemberRequest { NetworkId = networkId, InviteType = InviteType.ShareLinkWithApproval, Role = Role.Guest })).InviteLink;
        var trusted = await _host.SignInAsync($"ann-{store}@trusted.example");
        var stranger = await _host.SignInAsync($"sam-{store}@elsewhere.example");
        Assert.That((await Networks(trusted).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = link })).Member.State, Is.EqualTo(MemberState.Active));
        var pending = (await Networks(stranger).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = link })).Member;
        Assert.That(pending.State, Is.EqualTo(MemberState.PendingApproval));
        await Rpc.ThrowsAsync(StatusCode.NotFound, () => Networks(stranger).GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId }).ResponseAsync);
        await Networks(_admin).ApproveMemberAsync(new ApproveMemberRequest { NetworkId = networkId, UserId = pending.UserId });
        Assert.That((await Networks(stranger).GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId })).Network.CallerRole, Is.EqualTo(Role.Guest));

        var promoted = await Networks(_admin).UpdateMemberRoleAsync(new UpdateMemberRoleRequest { NetworkId = networkId, UserId = pending.UserId, Role = Role.Admin });
        Assert.That(promoted.Member.Role, Is.EqualTo(Role.Admin));
        var me = (await new IdentityService.IdentityServiceClient(_host.Channel(_admin)).GetCurrentUserAsync(new GetCurrentUserRequest())).User.UserId;
        await Networks(stranger).UpdateMemberRoleAsync(new UpdateMemberRoleRequest { NetworkId = networkId, UserId = me, Role = Role.Member });
        await Rpc.ThrowsAsync(StatusCode.FailedPrecondition, () => Networks(stranger).UpdateMemberRoleAsync(new UpdateMemberRoleRequest { NetworkId = networkId, UserId = pending.UserId, Role = Role.Member }).ResponseAsync);

        var export = new AuditService.AuditServiceClient(_host.Channel(stranger)).ExportAuditEvents(new ExportAuditEventsRequest { NetworkId = networkId, Format = AuditExportFormat.Csv });
        var csv = new StringBuilder();
        while (await export.ResponseStream.MoveNext(CancellationToken.None))
        {
            csv.Append(export.ResponseStream.Current.Data.ToStringUtf8());
        }

        var lines = csv.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines[0], Does.StartWith("sequence,event_id,network_id,actor_user_id,action"));
        Assert.That(lines.Count(l => l.Contains(",RoleChange,", StringComparison.Ordinal)), Is.EqualTo(2));
        var jsonl = new AuditService.AuditServiceClient(_host.Channel(stranger)).ExportAuditEvents(new ExportAuditEventsRequest { NetworkId = networkId, Format = AuditExportFormat.Jsonl });
        Assert.That(await jsonl.ResponseStream.MoveNext(CancellationToken.None), Is.True);
        var first = System.Text.Json.JsonDocument.Parse(jsonl.ResponseStream.Current.Data.ToStringUtf8().Split('\n')[0]);
        Assert.That(first.RootElement.GetProperty("network_id").GetString(), Is.EqualTo(networkId));

        var database = _host.Services.GetRequiredService<Database>();
        await Assert.ThrowsAsync(Is.InstanceOf<Exception>(), () => database.RunAsync(c => Dapper.SqlMapper.ExecuteAsync(c, "DELETE FROM audit_events"), CancellationToken.None),
            "the audit log is append-only in the store itself");
    }

    [Test]
    public async Task Api_keys_are_shown_once_scoped_to_one_network_and_revocation_applies_on_the_next_call()
    {
        var networkId = await NewNetworkAsync();
        var other = await NewNetworkAsync();
        var identity = new IdentityService.IdentityServiceClient(_host.Channel(_admin));
        var created = await identity.CreateApiKeyAsync(new CreateApiKeyRequest { NetworkId = networkId, Name = "sdk" });
        Assert.That(created.Secret, Does.StartWith("mak_"));
        Assert.That(created.ApiKey.Prefix, Is.EqualTo(created.Secret[..12]));
        var listed = await identity.ListApiKeysAsync(new ListApiKeysRequest { NetworkId = networkId });
        Assert.That(listed.ToString(), Does.Not.Contain(created.Secret));

        var withKey = _host.Channel(created.Secret);
        Assert.That((await new NetworkService.NetworkServiceClient(withKey).GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId })).Network.NetworkId, Is.EqualTo(networkId));
        await Rpc.ThrowsAsync(StatusCode.NotFound, () => new NetworkService.NetworkServiceClient(withKey).GetNetworkAsync(new GetNetworkRequest { NetworkId = other }).ResponseAsync);
        await Rpc.ThrowsAsync(StatusCode.PermissionDenied, () => new NetworkService.NetworkServiceClient(withKey).RotateNetworkKeysAsync(new RotateNetworkKeysRequest { NetworkId = networkId }).ResponseAsync);
        await Rpc.ThrowsAsync(StatusCode.PermissionDenied, () => new IdentityService.IdentityServiceClient(withKey).CreateApiKeyAsync(new CreateApiKeyRequest { NetworkId = networkId, Name = "x" }).ResponseAsync);
        await new JobService.JobServiceClient(withKey).ListJobsAsync(new ListJobsRequest { NetworkId = networkId });

        await identity.RevokeApiKeyAsync(new RevokeApiKeyRequest { ApiKeyId = created.ApiKey.ApiKeyId });
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => new JobService.JobServiceClient(withKey).ListJobsAsync(new ListJobsRequest { NetworkId = networkId }).ResponseAsync);
    }

    [Test]
    public async Task Rotated_keys_keep_online_agents_working_and_renewal_moves_them_to_the_new_ca()
    {
        var networkId = await NewNetworkAsync();
        var (device, keys) = await _host.JoinAsync(_admin, networkId, "rotating");
        var run = await _host.GoOnlineAsync(device, keys);
        var before = (await Networks(_admin).GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId })).Network;
        var rotated = await Networks(_admin).RotateNetworkKeysAsync(new RotateNetworkKeysRequest { NetworkId = networkId });
        var after = (await Networks(_admin).GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId })).Network;
        Assert.Multiple(() =>
        {
            Assert.That(after.CaKeyId, Is.EqualTo(rotated.NewCaKeyId).And.Not.EqualTo(before.CaKeyId));
            Assert.That(after.ControlKeyId, Is.EqualTo(rotated.NewSigningKeyId).And.Not.EqualTo(before.ControlKeyId));
            Assert.That(rotated.GraceEndTime.ToDateTimeOffset(), Is.GreaterThan(DateTimeOffset.UtcNow.AddHours(1)));
        });

        // No restart, no reconnect: the next job verifies (signed with the old control key until the agent acknowledges the
        // pushed key set, with the new one after).
        using var client = new MeshAI.Client.MeshClient(_host.Url, _host.Fingerprint, _admin);
        var output = await client.RunAsync(networkId, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("after rotation") } });
        Assert.That(output.Output.Echo.Data.ToStringUtf8(), Is.EqualTo("after rotation"));
        Assert.That(run.IsCompleted, Is.False, "the agent stayed online");

        // The old certificate still verifies during the grace window; renewal gives one from the new CA.
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var serial = DeviceCertificateDetails.Parser.ParseFrom(device.ParsedCertificate().Details).Serial;
        var renewed = await new DeviceService.DeviceServiceClient(_host.Channel()).RenewCertificateAsync(new RenewCertificateRequest
        {
            CurrentCertificate = device.ParsedCertificate(),
            TimestampUnixMs = now,
            ProofSignature = ByteString.CopyFrom(keys.Signing.Sign(ProofMessages.Renew(serial, now))),
        });
        var details = DeviceCertificateDetails.Parser.ParseFrom(renewed.Certificate.Details);
        Assert.That(details.CaKeyId, Is.EqualTo(rotated.NewCaKeyId));
        Assert.That(renewed.NetworkKeys.Select(k => k.KeyId), Is.SupersetOf(new[] { before.CaKeyId, before.ControlKeyId, after.CaKeyId, after.ControlKeyId }));
        var trusted = renewed.NetworkKeys.Where(k => k.Purpose == NetworkKeyPurpose.CertificateAuthority).ToDictionary(k => k.KeyId, k => k.PublicKey.ToByteArray());
        Assert.That(DeviceCertificates.Verify(renewed.Certificate, trusted, DateTimeOffset.UtcNow, out var reason), Is.Not.Null, reason);
        var ticketKey = await _host.Services.GetRequiredService<NetworkKeyVault>().TicketKeyAsync(networkId, device.DeviceId, CancellationToken.None);
        Assert.That(SigningKeyPair.KeyId(ticketKey.PublicKey), Is.EqualTo(after.ControlKeyId), "after renewal, tickets use the new control key");

        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => new DeviceService.DeviceServiceClient(_host.Channel()).RenewCertificateAsync(new RenewCertificateRequest
        {
            CurrentCertificate = device.ParsedCertificate(), TimestampUnixMs = now, ProofSignature = ByteString.CopyFrom(new byte[64]),
        }).ResponseAsync);
    }

    [Test]
    public async Task Rotation_and_revocation_are_pushed_as_numbered_network_updates_that_online_agents_apply_without_reconnecting()
    {
        var networkId = await NewNetworkAsync();
        var (online, onlineKeys) = await _host.JoinAsync(_admin, networkId, "push-online");
        var (revoked, _) = await _host.JoinAsync(_admin, networkId, "push-revoked");
        var (late, lateKeys) = await _host.JoinAsync(_admin, networkId, "push-late");
        var state = new MeshAI.Agent.State.AgentNetworkState(online);
        var run = await _host.GoOnlineAsync(online, onlineKeys, network: state);
        Assert.That(state.Serial, Is.Zero, "a new network has pushed nothing yet");

        // Rotation: serial 1 carries the new key set down the open stream; the agent trusts it and acknowledges, and from then on
        // control signs its tickets with the new control key (before this push: only after the agent's next reconnect + renewal).
        var rotated = await Networks(_admin).RotateNetworkKeysAsync(new RotateNetworkKeysRequest { NetworkId = networkId });
        await WaitUntilAsync(() => Task.FromResult(state.Serial == 1), "the rotation's update reached the agent");
        Assert.That(state.Enrollment.NetworkKeys.Select(k => k.KeyId), Is.SupersetOf(new[] { rotated.NewCaKeyId, rotated.NewSigningKeyId }));
        Assert.That(state.ControlKeys(DateTimeOffset.UtcNow).Keys, Does.Contain(rotated.NewSigningKeyId));
        var vault = _host.Services.GetRequiredService<NetworkKeyVault>();
        await WaitUntilAsync(async () => SigningKeyPair.KeyId((await vault.TicketKeyAsync(networkId, online.DeviceId, CancellationToken.None)).PublicKey) == rotated.NewSigningKeyId,
            "the acknowledgement moved the device's tickets to the new control key");
        using var client = new MeshAI.Client.MeshClient(_host.Url, _host.Fingerprint, _admin);
        var output = await client.RunAsync(networkId, new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("new key") } });
        Assert.That(output.Output.Echo.Data.ToStringUtf8(), Is.EqualTo("new key"), "a ticket signed with the pushed key verifies");

        // Revocation: serial 2 names the revoked device; the online agent records it.
        await new DeviceService.DeviceServiceClient(_host.Channel(_admin)).RevokeDeviceAsync(new RevokeDeviceRequest { NetworkId = networkId, DeviceId = revoked.DeviceId, Reason = "lost" });
        await WaitUntilAsync(() => Task.FromResult(state.Serial == 2), "the revocation's update reached the agent");
        Assert.That(state.Enrollment.RevokedPeers, Does.Contain(revoked.DeviceId));
        Assert.That(run.IsCompleted, Is.False, "the agent never reconnected");

        // A device that was offline for both names serial 0 in its hello and is sent the whole state (serial 2) right after Welcome.
        var lateState = new MeshAI.Agent.State.AgentNetworkState(late);
        await _host.GoOnlineAsync(late, lateKeys, network: lateState);
        await WaitUntilAsync(() => Task.FromResult(lateState.Serial == 2), "the late device caught up");
        Assert.That(lateState.Enrollment.RevokedPeers, Does.Contain(revoked.DeviceId));
        Assert.That(lateState.ControlKeys(DateTimeOffset.UtcNow).Keys, Does.Contain(rotated.NewSigningKeyId));
        var updates = _host.Services.GetRequiredService<NetworkUpdateRepository>();
        await WaitUntilAsync(async () => await updates.AcknowledgedAsync(late.DeviceId, CancellationToken.None) == 2, "the store records what the device acknowledged");
        Assert.That(await updates.AcknowledgedAsync(online.DeviceId, CancellationToken.None), Is.EqualTo(2));
    }

    [Test]
    public async Task A_published_model_manifest_is_pushed_to_online_agents_and_named_in_a_whole_state_catch_up()
    {
        var networkId = await NewNetworkAsync();
        var (online, onlineKeys) = await _host.JoinAsync(_admin, networkId, "models-online");
        var state = new MeshAI.Agent.State.AgentNetworkState(online);
        var run = await _host.GoOnlineAsync(online, onlineKeys, network: state);
        var models = new MeshAI.Contracts.Model.V1.ModelService.ModelServiceClient(_host.Channel(_admin));
        var published = (await models.PublishModelManifestAsync(new MeshAI.Contracts.Model.V1.PublishModelManifestRequest
        {
            Details = new MeshAI.Contracts.Model.V1.ModelManifestDetails
            {
                NetworkId = networkId, Name = "pushed", Version = "1", WorkloadClass = WorkloadClass.Embeddings, AutoInstall = true,
                Files = { new MeshAI.Contracts.Model.V1.ModelFile { Path = "model.onnx", Sha256 = new string('a', 64), SizeBytes = 1, Source = "https://models.example.com/model.onnx" } },
            },
        })).Manifest;
        var publishMs = MeshAI.Contracts.Model.V1.ModelManifestDetails.Parser.ParseFrom(published.Details).PublishTime.ToDateTimeOffset().ToUnixTimeMilliseconds();

        await WaitUntilAsync(() => Task.FromResult(state.Serial == 1), "the publish's update reached the online agent");
        Assert.That(run.IsCompleted, Is.False, "pushed down the open stream");
        var updates = _host.Services.GetRequiredService<NetworkUpdates>();
        var delta = await updates.CatchUpAsync(networkId, 0, CancellationToken.None);
        Assert.That(delta, Is.Not.Null);
        Assert.That(delta!.FullState, Is.True);
        Assert.That(delta.ModelsChangedUnixMs, Is.EqualTo(publishMs), "the whole state names the newest manifest publish");
        var none = await updates.CatchUpAsync(networkId, 1, CancellationToken.None);
        Assert.That(none, Is.Null, "nothing missed");
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!await condition())
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "timed out waiting until " + what);
            await Task.Delay(25);
        }
    }
}

using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Integration.Tests.Control;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Security;

/// <summary>
/// The authorisation cache (docs/security.md, "Authorisation cache") on one real server whose cache would keep an answer for a
/// minute: every change of who may call is seen by the very next call, because the write clears the cache — a revoked
/// session or API key, a role change, a removed member, a network settings update. (Across two instances:
/// TwoControlInstanceTests.Access_changes_made_on_one_instance_are_seen_by_the_other_through_the_bus.)
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class AccessCacheTests
{
    private SecureMeshHost _host = null!;
    private string _admin = "";

    [OneTimeSetUp]
    public async Task Start()
    {
        _host = await SecureMeshHost.StartAsync("sqlite", ["--Control:Security:AccessCacheTtlMs", "60000"], null, null);
        _admin = await _host.SignInAsync("cache-admin@example.com");
    }

    [OneTimeTearDown]
    public async Task Stop() => await _host.DisposeAsync();

    private NetworkService.NetworkServiceClient Networks(string token) => new(_host.Channel(token));

    private IdentityService.IdentityServiceClient Identity(string token) => new(_host.Channel(token));

    [Test]
    public async Task A_role_change_and_a_removal_are_seen_by_the_next_call()
    {
        var networkId = (await Networks(_admin).CreateNetworkAsync(new CreateNetworkRequest { Name = "cache-members" })).Network.NetworkId;
        var dana = await _host.SignInAsync("cache-dana@example.com");
        var invite = await Networks(_admin).InviteMemberAsync(new InviteMemberRequest { NetworkId = networkId, InviteType = InviteType.Email, Invitee = "cache-dana@example.com", Role = Role.Member });
        var member = (await Networks(dana).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = invite.InviteLink })).Member;

        // Warm: the membership is now in the cache.
        await Networks(dana).ListMembersAsync(new ListMembersRequest { NetworkId = networkId });
        await Networks(dana).ListMembersAsync(new ListMembersRequest { NetworkId = networkId });

        await Networks(_admin).UpdateMemberRoleAsync(new UpdateMemberRoleRequest { NetworkId = networkId, UserId = member.UserId, Role = Role.Guest });
        await Rpc.ThrowsAsync(StatusCode.PermissionDenied, () => Networks(dana).ListMembersAsync(new ListMembersRequest { NetworkId = networkId }).ResponseAsync);
        Assert.That((await Networks(dana).GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId })).Network.NetworkId, Is.EqualTo(networkId), "a guest still sees the network");

        await Networks(_admin).RemoveMemberAsync(new RemoveMemberRequest { NetworkId = networkId, UserId = member.UserId });
        await Rpc.ThrowsAsync(StatusCode.NotFound, () => Networks(dana).GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId }).ResponseAsync);
    }

    [Test]
    public async Task A_revoked_session_and_a_revoked_api_key_are_refused_on_the_next_call()
    {
        var erin = await _host.SignInAsync("cache-erin@example.com");
        var me = (await Identity(erin).GetCurrentUserAsync(new GetCurrentUserRequest())).User;
        Assert.That(me.Email, Is.EqualTo("cache-erin@example.com"));
        var session = (await Identity(erin).ListSessionsAsync(new ListSessionsRequest())).Sessions.Single(s => !s.Revoked);
        await Identity(erin).RevokeSessionAsync(new RevokeSessionRequest { SessionId = session.SessionId });
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => Identity(erin).GetCurrentUserAsync(new GetCurrentUserRequest()).ResponseAsync);

        var networkId = (await Networks(_admin).CreateNetworkAsync(new CreateNetworkRequest { Name = "cache-keys" })).Network.NetworkId;
        var key = await Identity(_admin).CreateApiKeyAsync(new CreateApiKeyRequest { NetworkId = networkId, Name = "cache" });
        Assert.That((await Networks(key.Secret).GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId })).Network.NetworkId, Is.EqualTo(networkId));
        await Identity(_admin).RevokeApiKeyAsync(new RevokeApiKeyRequest { ApiKeyId = key.ApiKey.ApiKeyId });
        await Rpc.ThrowsAsync(StatusCode.Unauthenticated, () => Networks(key.Secret).GetNetworkAsync(new GetNetworkRequest { NetworkId = networkId }).ResponseAsync);
    }
}

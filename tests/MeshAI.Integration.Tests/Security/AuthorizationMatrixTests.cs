using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Security;

/// <summary>
/// The generated authorisation matrix: every RPC of every service descriptor × {admin, member, guest, outsider, removed
/// member, revoked device} × {own network, foreign network}, against the real server. The expectations below are written
/// independently of the server's table; an RPC without an entry here fails the test.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class AuthorizationMatrixTests
{
    private enum Need { Public, Device, Session, Guest, Member, Admin }

    private enum Outcome { Allowed, Hidden, Refused, Unserved }

    private const string Net = "network_id";

    // RPC → who may call it and where its network id lives. Spec network_model.roles; see docs/security.md.
    private static readonly Dictionary<string, (Need Need, string? Field)> Expected = new(StringComparer.Ordinal)
    {
        ["meshai.identity.v1.IdentityService/StartMagicLink"] = (Need.Public, null),
        ["meshai.identity.v1.IdentityService/CompleteMagicLink"] = (Need.Public, null),
        ["meshai.identity.v1.IdentityService/StartDeviceLogin"] = (Need.Public, null),
        ["meshai.identity.v1.IdentityService/PollDeviceLogin"] = (Need.Public, null),
        ["meshai.identity.v1.IdentityService/ApproveDeviceLogin"] = (Need.Session, null),
        ["meshai.identity.v1.IdentityService/GetCurrentUser"] = (Need.Session, null),
        ["meshai.identity.v1.IdentityService/ListSessions"] = (Need.Session, null),
        ["meshai.identity.v1.IdentityService/RevokeSession"] = (Need.Session, null),
        ["meshai.identity.v1.IdentityService/CreateApiKey"] = (Need.Member, Net),
        ["meshai.identity.v1.IdentityService/ListApiKeys"] = (Need.Guest, Net),
        ["meshai.identity.v1.IdentityService/RevokeApiKey"] = (Need.Session, null),
        ["meshai.identity.v1.IdentityService/BeginPasskeyRegistration"] = (Need.Session, null),
        ["meshai.identity.v1.IdentityService/FinishPasskeyRegistration"] = (Need.Session, null),
        ["meshai.identity.v1.IdentityService/BeginPasskeyLogin"] = (Need.Public, null),
        ["meshai.identity.v1.IdentityService/FinishPasskeyLogin"] = (Need.Public, null),
        ["meshai.identity.v1.IdentityService/StartOidcLogin"] = (Need.Public, null),
        ["meshai.identity.v1.IdentityService/CompleteOidcLogin"] = (Need.Public, null),
        ["meshai.identity.v1.IdentityService/GetSignInOptions"] = (Need.Public, null),
        ["meshai.identity.v1.IdentityService/CreateSignInLink"] = (Need.Session, null),
        ["meshai.network.v1.NetworkService/CreateNetwork"] = (Need.Session, null),
        ["meshai.network.v1.NetworkService/GetNetwork"] = (Need.Guest, Net),
        ["meshai.network.v1.NetworkService/ListNetworks"] = (Need.Session, null),
        ["meshai.network.v1.NetworkService/UpdateNetworkSettings"] = (Need.Admin, Net),
        ["meshai.network.v1.NetworkService/ListMembers"] = (Need.Member, Net),
        ["meshai.network.v1.NetworkService/InviteMember"] = (Need.Admin, Net),
        ["meshai.network.v1.NetworkService/ListInvites"] = (Need.Admin, Net),
        ["meshai.network.v1.NetworkService/AcceptInvite"] = (Need.Session, null),
        ["meshai.network.v1.NetworkService/ApproveMember"] = (Need.Admin, Net),
        ["meshai.network.v1.NetworkService/UpdateMemberRole"] = (Need.Admin, Net),
        ["meshai.network.v1.NetworkService/RemoveMember"] = (Need.Admin, Net),
        ["meshai.network.v1.NetworkService/RotateNetworkKeys"] = (Need.Admin, Net),
        ["meshai.network.v1.NetworkService/WatchNetwork"] = (Need.Member, Net),
        ["meshai.network.v1.PolicyService/GetPolicy"] = (Need.Member, Net),
        ["meshai.network.v1.PolicyService/UpdatePolicy"] = (Need.Admin, "policy.network_id"),
        ["meshai.network.v1.PolicyService/EvaluatePolicy"] = (Need.Member, Net),
        ["meshai.device.v1.DeviceService/CreateJoinToken"] = (Need.Member, Net),
        ["meshai.device.v1.DeviceService/RegisterDevice"] = (Need.Public, null),
        ["meshai.device.v1.DeviceService/StartDevicePairing"] = (Need.Public, null),
        ["meshai.device.v1.DeviceService/ApproveDevicePairing"] = (Need.Member, Net),
        ["meshai.device.v1.DeviceService/PollDevicePairing"] = (Need.Public, null),
        ["meshai.device.v1.DeviceService/GetDevice"] = (Need.Member, Net),
        ["meshai.device.v1.DeviceService/ListDevices"] = (Need.Member, Net),
        ["meshai.device.v1.DeviceService/UpdateDevice"] = (Need.Member, Net),
        ["meshai.device.v1.DeviceService/RevokeDevice"] = (Need.Member, Net),
        ["meshai.device.v1.DeviceService/RenewCertificate"] = (Need.Device, null),
        ["meshai.job.v1.JobService/PlanJob"] = (Need.Guest, "envelope.network_id"),
        ["meshai.job.v1.JobService/EstimateJob"] = (Need.Guest, "envelope.network_id"),
        ["meshai.job.v1.JobService/SubmitJob"] = (Need.Guest, "envelope.network_id"),
        ["meshai.job.v1.JobService/WatchJob"] = (Need.Guest, Net),
        ["meshai.job.v1.JobService/RunJob"] = (Need.Guest, "envelope.network_id"),
        ["meshai.job.v1.JobService/GetJob"] = (Need.Guest, Net),
        ["meshai.job.v1.JobService/ListJobs"] = (Need.Member, Net),
        ["meshai.job.v1.JobService/CancelJob"] = (Need.Guest, Net),
        ["meshai.job.v1.JobService/ExplainJob"] = (Need.Member, Net),
        ["meshai.job.v1.BlobService/StartBlobUpload"] = (Need.Guest, Net),
        ["meshai.job.v1.BlobService/UploadBlobChunk"] = (Need.Guest, Net),
        ["meshai.job.v1.BlobService/FinishBlobUpload"] = (Need.Guest, Net),
        ["meshai.job.v1.BlobService/ReadBlob"] = (Need.Guest, Net),
        ["meshai.job.v1.BlobService/ReadJobBlob"] = (Need.Device, null),
        ["meshai.ledger.v1.LedgerService/ListLedgerEvents"] = (Need.Member, Net),
        ["meshai.ledger.v1.LedgerService/GetBalances"] = (Need.Member, Net),
        ["meshai.ledger.v1.LedgerService/ExportLedger"] = (Need.Admin, Net),
        ["meshai.ledger.v1.LedgerService/ReconcileLedger"] = (Need.Admin, Net),
        ["meshai.ledger.v1.LedgerService/GetCreditRates"] = (Need.Guest, Net),
        ["meshai.ledger.v1.LedgerService/UpdateCreditRates"] = (Need.Admin, Net),
        ["meshai.model.v1.ModelService/ListModelManifests"] = (Need.Guest, Net),
        ["meshai.model.v1.ModelService/GetModelManifest"] = (Need.Guest, Net),
        ["meshai.model.v1.ModelService/PublishModelManifest"] = (Need.Admin, "details.network_id"),
        ["meshai.audit.v1.AuditService/ListAuditEvents"] = (Need.Admin, Net),
        ["meshai.audit.v1.AuditService/ExportAuditEvents"] = (Need.Admin, Net),
        ["meshai.relay.v1.RelayService/Connect"] = (Need.Device, null),
        ["meshai.relay.v1.WebRelayService/OpenSession"] = (Need.Device, null),
        ["meshai.relay.v1.WebRelayService/AnswerChallenge"] = (Need.Device, null),
        ["meshai.relay.v1.WebRelayService/SendHeartbeat"] = (Need.Device, null),
        ["meshai.relay.v1.WebRelayService/AcceptJob"] = (Need.Device, null),
        ["meshai.relay.v1.WebRelayService/DeclineJob"] = (Need.Device, null),
        ["meshai.relay.v1.WebRelayService/ReportProgress"] = (Need.Device, null),
        ["meshai.relay.v1.WebRelayService/ReportResult"] = (Need.Device, null),
        ["meshai.relay.v1.WebRelayService/ReportFailure"] = (Need.Device, null),
        ["meshai.relay.v1.WebRelayService/GetDeviceStatus"] = (Need.Device, null),
        ["grpc.health.v1.Health/Check"] = (Need.Public, null),
        ["grpc.health.v1.Health/Watch"] = (Need.Public, null),
        ["grpc.health.v1.Health/List"] = (Need.Public, null),
    };

    private static readonly ServiceDescriptor[] Services =
    [
        MeshAI.Contracts.Identity.V1.IdentityService.Descriptor,
        NetworkService.Descriptor,
        PolicyService.Descriptor,
        DeviceService.Descriptor,
        MeshAI.Contracts.Job.V1.JobService.Descriptor,
        MeshAI.Contracts.Job.V1.BlobService.Descriptor,
        MeshAI.Contracts.Ledger.V1.LedgerService.Descriptor,
        MeshAI.Contracts.Model.V1.ModelService.Descriptor,
        MeshAI.Contracts.Audit.V1.AuditService.Descriptor,
        RelayService.Descriptor,
        WebRelayService.Descriptor,
        Grpc.Health.V1.Health.Descriptor,
    ];

    private static IEnumerable<MethodDescriptor> AllMethods() => Services.SelectMany(s => s.Methods);

    [Test]
    public void Every_rpc_of_every_service_descriptor_has_a_matrix_entry()
    {
        var missing = AllMethods().Select(Name).Where(n => !Expected.ContainsKey(n)).ToList();
        Assert.That(missing, Is.Empty, "add these RPCs to the authorisation table (RpcRules) and to this matrix");
        var serverMissing = AllMethods().Select(m => "/" + Name(m)).Where(n => !MeshAI.Control.Security.RpcRules.Table.ContainsKey(n)).ToList();
        Assert.That(serverMissing, Is.Empty, "the server would refuse these RPCs (no authorisation rule)");
    }

    [Test]
    public void The_http_endpoints_that_act_for_a_network_follow_the_same_roles()
    {
        // The OpenAI-compatible gateway runs jobs exactly as SubmitJob does; a network's own metrics are for its admins.
        var submit = MeshAI.Control.Security.RpcRules.Table["/meshai.job.v1.JobService/SubmitJob"];
        foreach (var endpoint in new[] { "POST /v1/embeddings", "POST /v1/chat/completions", "GET /v1/models" })
        {
            var rule = MeshAI.Control.Security.RpcRules.HttpTable[endpoint];
            Assert.That((rule.Access, rule.ApiKeyScope), Is.EqualTo((submit.Access, submit.ApiKeyScope)), endpoint);
        }

        var metrics = MeshAI.Control.Security.RpcRules.HttpTable["GET /metrics/networks/{network_id}"];
        Assert.That((metrics.Access, metrics.ApiKeyScope), Is.EqualTo((MeshAI.Control.Security.RpcAccess.Admin, "metrics:read")));
    }

    [Test]
    public async Task Every_rpc_x_role_x_network_gets_the_expected_status()
    {
        await using var host = await SecureMeshHost.StartAsync();
        var admin = await host.SignInAsync("admin@example.com");
        var member = await host.SignInAsync("member@example.com");
        var guest = await host.SignInAsync("guest@example.com");
        var outsider = await host.SignInAsync("outsider@example.com");
        var removed = await host.SignInAsync("removed@example.com");
        var foreignOwner = await host.SignInAsync("foreign@example.com");
        var networks = new NetworkService.NetworkServiceClient(host.Channel(admin));
        var own = (await networks.CreateNetworkAsync(new CreateNetworkRequest { Name = "own" })).Network.NetworkId;
        var foreign = (await new NetworkService.NetworkServiceClient(host.Channel(foreignOwner)).CreateNetworkAsync(new CreateNetworkRequest { Name = "foreign" })).Network.NetworkId;
        await AddAsync(host, networks, own, member, Role.Member);
        await AddAsync(host, networks, own, guest, Role.Guest);
        var removedId = await AddAsync(host, networks, own, removed, Role.Member);
        await networks.RemoveMemberAsync(new RemoveMemberRequest { NetworkId = own, UserId = removedId });
        var (device, _) = await host.JoinAsync(admin, own, "revoked-laptop");
        await new DeviceService.DeviceServiceClient(host.Channel(admin)).RevokeDeviceAsync(new RevokeDeviceRequest { NetworkId = own, DeviceId = device.DeviceId });
        var revokedCertificate = device.ParsedCertificate();

        var principals = new (string Name, string? Token, Role? Role, bool InOwn)[]
        {
            ("admin", admin, Role.Admin, true), ("member", member, Role.Member, true), ("guest", guest, Role.Guest, true),
            ("outsider", outsider, null, false), ("removed member", removed, null, false), ("revoked device", null, null, false),
        };

        var failures = new List<string>();
        var cases = 0;
        var unserved = new HashSet<string>(StringComparer.Ordinal);
        foreach (var method in AllMethods())
        {
            var (need, field) = Expected[Name(method)];
            foreach (var (name, token, role, inOwn) in principals)
            {
                foreach (var (scope, networkId) in new[] { ("own", own), ("foreign", foreign) })
                {
                    cases++;
                    var expected = Expect(need, field, token is null, role, inOwn && scope == "own");
                    var actual = await CallAsync(host, method, token, field, networkId, token is null ? revokedCertificate : null);
                    if (actual.Outcome == Outcome.Unserved)
                    {
                        unserved.Add(Name(method));
                        continue;
                    }

                    if (actual.Outcome != expected)
                    {
                        failures.Add($"{Name(method)} as {name} in {scope} network: expected {expected}, got {actual.Outcome} ({actual.Detail})");
                    }
                }
            }
        }

        TestContext.Out.WriteLine($"authorisation matrix: {cases} cases over {AllMethods().Count()} RPCs; services not mapped by this server (UNIMPLEMENTED for everyone): {string.Join(", ", unserved)}");
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    private static Outcome Expect(Need need, string? field, bool isDevice, Role? role, bool member)
    {
        switch (need)
        {
            case Need.Public:
                return Outcome.Allowed;
            case Need.Device:
                return Outcome.Refused; // no principal here holds a valid device certificate
        }

        if (isDevice)
        {
            return Outcome.Refused; // a device certificate is no user credential
        }

        if (need == Need.Session || field is null)
        {
            return Outcome.Allowed;
        }

        if (!member || role is null)
        {
            return Outcome.Hidden;
        }

        var rank = role switch { Role.Admin => 3, Role.Member => 2, _ => 1 };
        var required = need switch { Need.Admin => 3, Need.Member => 2, _ => 1 };
        return rank >= required ? Outcome.Allowed : Outcome.Refused;
    }

    private static async Task<string> AddAsync(SecureMeshHost host, NetworkService.NetworkServiceClient admin, string networkId, string token, Role role)
    {
        var invite = await admin.InviteMemberAsync(new InviteMemberRequest { NetworkId = networkId, InviteType = InviteType.ShareLinkWithApproval, Role = role });
        var accepted = await new NetworkService.NetworkServiceClient(host.Channel(token)).AcceptInviteAsync(new AcceptInviteRequest { InviteToken = invite.InviteLink });
        Assert.That(accepted.Member.State, Is.EqualTo(MemberState.PendingApproval), "share links wait for approval by default");
        await admin.ApproveMemberAsync(new ApproveMemberRequest { NetworkId = networkId, UserId = accepted.Member.UserId });
        return accepted.Member.UserId;
    }

    private static async Task<(Outcome Outcome, string Detail)> CallAsync(SecureMeshHost host, MethodDescriptor method, string? token, string? field, string networkId, DeviceCertificate? certificate)
    {
        var request = method.InputType.Parser.ParseFrom(ByteString.Empty);
        if (field is not null)
        {
            SetPath(request, field, networkId);
        }

        if (certificate is not null && request is RenewCertificateRequest renew)
        {
            renew.CurrentCertificate = certificate;
            renew.TimestampUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        }

        if (certificate is not null && request is OpenSessionRequest open)
        {
            open.Hello = new AgentHello { Certificate = certificate };
        }

        var marshaller = Marshallers.Create<IMessage>(m => m.ToByteArray(), bytes => method.OutputType.Parser.ParseFrom(bytes));
        var requestMarshaller = Marshallers.Create<IMessage>(m => m.ToByteArray(), bytes => method.InputType.Parser.ParseFrom(bytes));
        var type = method.IsClientStreaming ? (method.IsServerStreaming ? MethodType.DuplexStreaming : MethodType.ClientStreaming)
            : method.IsServerStreaming ? MethodType.ServerStreaming : MethodType.Unary;
        var grpcMethod = new Method<IMessage, IMessage>(type, method.Service.FullName, method.Name, requestMarshaller, marshaller);
        var invoker = host.Channel(token).CreateCallInvoker();
        var options = new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10));
        try
        {
            switch (type)
            {
                case MethodType.Unary:
                    await invoker.AsyncUnaryCall(grpcMethod, null, options, request);
                    return (Outcome.Allowed, "OK");
                case MethodType.ServerStreaming:
                    using (var call = invoker.AsyncServerStreamingCall(grpcMethod, null, options, request))
                    {
                        // A browser device's session stream refuses with a Cut frame first, like a native agent's Connect.
                        if (await call.ResponseStream.MoveNext(CancellationToken.None) && call.ResponseStream.Current is OpenSessionResponse { Relay.Cut: { } cut })
                        {
                            return (Outcome.Refused, "cut: " + cut.Reason);
                        }
                    }

                    return (Outcome.Allowed, "OK");
                default:
                    using (var call = invoker.AsyncDuplexStreamingCall(grpcMethod, null, options))
                    {
                        await call.RequestStream.WriteAsync(new ConnectRequest { Hello = new AgentHello { Certificate = certificate } });
                        if (!await call.ResponseStream.MoveNext(CancellationToken.None))
                        {
                            return (Outcome.Refused, "stream closed");
                        }

                        var first = (ConnectResponse)ConnectResponse.Parser.ParseFrom(call.ResponseStream.Current.ToByteArray());
                        return first.FrameCase == ConnectResponse.FrameOneofCase.Cut ? (Outcome.Refused, "cut: " + first.Cut.Reason) : (Outcome.Allowed, first.FrameCase.ToString());
                    }
            }
        }
        catch (RpcException e)
        {
            var outcome = e.StatusCode switch
            {
                StatusCode.Unauthenticated or StatusCode.PermissionDenied => Outcome.Refused,
                StatusCode.NotFound when e.Status.Detail.StartsWith("network '", StringComparison.Ordinal) => Outcome.Hidden,
                StatusCode.Unimplemented when e.Status.Detail.Contains("Service is unimplemented", StringComparison.Ordinal) => Outcome.Unserved,
                StatusCode.ResourceExhausted => throw new AssertionException("rate limited during the matrix: " + e.Status.Detail),
                _ => Outcome.Allowed,
            };
            return (outcome, e.StatusCode + ": " + e.Status.Detail);
        }
    }

    private static void SetPath(IMessage message, string path, string value)
    {
        var parts = path.Split('.');
        for (var i = 0; i < parts.Length - 1; i++)
        {
            var field = message.Descriptor.FindFieldByName(parts[i]);
            var child = field.Accessor.GetValue(message) as IMessage;
            if (child is null)
            {
                child = field.MessageType.Parser.ParseFrom(ByteString.Empty);
                field.Accessor.SetValue(message, child);
            }

            message = child;
        }

        message.Descriptor.FindFieldByName(parts[^1]).Accessor.SetValue(message, value);
    }

    private static string Name(MethodDescriptor m) => m.Service.FullName + "/" + m.Name;
}

using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Model.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Rpc;
using MeshAI.Integration.Tests.Control;
using MeshAI.Integration.Tests.Security;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Hardening;

/// <summary>
/// Issue 15's defects 6-9 (errors that reached clients as UNKNOWN, unknown enum values and NUL in paths, the relay's
/// probe-able refusal messages, world-readable files) as regression tests through the real server; the file-mode test runs
/// the real meshai-server process.
/// </summary>
[TestFixture]
[Category("Integration")]
[NonParallelizable]
public sealed class HardeningEdgeTests
{
    private SecureMeshHost _host = null!;
    private string _admin = "";
    private string _network = "";

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _host = await SecureMeshHost.StartAsync();
        _admin = await _host.SignInAsync("edge@example.com");
        _network = (await new NetworkService.NetworkServiceClient(_host.Channel(_admin)).CreateNetworkAsync(new CreateNetworkRequest { Name = "edge" })).Network.NetworkId;
    }

    [OneTimeTearDown]
    public async Task StopServer() => await _host.DisposeAsync();

    private static readonly string[] EnvelopeEnumFields = ["envelope.data_sensitivity_tag", "envelope.routing_mode"];

    private static string? Reason(RpcException e) => RpcErrors.ReasonOf(e);

    // ---- 6: out-of-range timestamps, oversized and malformed requests, an int64-max cost cap ----

    [Test]
    public async Task Defect6_an_out_of_range_since_is_invalid_argument_not_unknown()
    {
        var ledger = new LedgerService.LedgerServiceClient(_host.Channel(_admin));
        foreach (var since in new[] { new Timestamp { Seconds = long.MaxValue / 2 }, new Timestamp { Seconds = long.MinValue / 2 }, new Timestamp { Seconds = 0, Nanos = 2_000_000_000 } })
        {
            var e = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, async () =>
            {
                using var export = ledger.ExportLedger(new ExportLedgerRequest { NetworkId = _network, Since = since });
                await export.ResponseStream.MoveNext(CancellationToken.None);
            });
            Assert.That(Reason(e), Is.EqualTo(ErrorReasons.ValueOutOfRange));
            Assert.That(RequestProbes.Violations(e).Single().Field, Is.EqualTo("since"));
        }

        using var ok = ledger.ExportLedger(new ExportLedgerRequest { NetworkId = _network, Since = Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch) });
        Assert.That(await ok.ResponseStream.MoveNext(CancellationToken.None), Is.True, "an in-range since still exports");
    }

    [Test]
    public async Task Defect6_a_request_over_the_size_limit_is_resource_exhausted_on_unary_and_stream_calls()
    {
        using var channel = GrpcChannels.Create(_host.Url, _host.Fingerprint, null, maxMessageBytes: 64 * 1024 * 1024);
        var huge = new string('a', 17 * 1024 * 1024);
        var unary = await Rpc.ThrowsAsync(StatusCode.ResourceExhausted, () => new IdentityService.IdentityServiceClient(channel).StartMagicLinkAsync(new StartMagicLinkRequest { Email = huge }).ResponseAsync);
        Assert.That(Reason(unary), Is.EqualTo(ErrorReasons.MessageTooLarge));

        // On a stream the server answers while the client may still be sending the frame: read the status from the
        // response side (the write itself may then end as cancelled, which is the client's view of its own send).
        using var call = new RelayService.RelayServiceClient(channel).Connect();
        var write = call.RequestStream.WriteAsync(new ConnectRequest { Hello = new AgentHello { AgentVersion = huge } });
        var stream = await Rpc.ThrowsAsync(StatusCode.ResourceExhausted, async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        });
        Assert.That(Reason(stream), Is.EqualTo(ErrorReasons.MessageTooLarge));
        try
        {
            await write;
        }
        catch (RpcException)
        {
        }
    }

    [Test]
    public async Task Defect6_undecodable_bytes_are_malformed_request_and_no_rpc_answers_unknown()
    {
        var garbage = new byte[][] { [0x0a, 0xff, 0xff, 0xff, 0x0f], [0x0a, 0x02, 0xc3, 0x28], [0xff, 0xff, 0xff] };
        var unknownOrBare = new List<string>();
        foreach (var method in RequestProbes.Services().SelectMany(s => s.Methods))
        {
            var raw = new Method<byte[], byte[]>(
                method.IsClientStreaming ? MethodType.DuplexStreaming : method.IsServerStreaming ? MethodType.ServerStreaming : MethodType.Unary,
                method.Service.FullName, method.Name, Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
            var invoker = _host.Channel(_admin).CreateCallInvoker();
            foreach (var bytes in garbage.Append([]))
            {
                RpcException? error = null;
                try
                {
                    switch (raw.Type)
                    {
                        case MethodType.Unary:
                            await invoker.AsyncUnaryCall(raw, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10)), bytes);
                            break;
                        case MethodType.ServerStreaming:
                            using (var call = invoker.AsyncServerStreamingCall(raw, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10)), bytes))
                            {
                                await call.ResponseStream.MoveNext(CancellationToken.None);
                            }

                            break;
                        default:
                            using (var call = invoker.AsyncDuplexStreamingCall(raw, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10))))
                            {
                                await call.RequestStream.WriteAsync(bytes);
                                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                                {
                                }
                            }

                            break;
                    }
                }
                catch (RpcException e)
                {
                    error = e;
                }

                if (error is not null && (error.StatusCode == StatusCode.Unknown || Reason(error) is null))
                {
                    unknownOrBare.Add($"{method.FullName} with {bytes.Length} bytes: {error.StatusCode} {error.Status.Detail}");
                }

                if ((ReferenceEquals(bytes, garbage[0]) || ReferenceEquals(bytes, garbage[2])) && (error is null || Reason(error) != ErrorReasons.MalformedRequest))
                {
                    // A length running past the end, a tag cut short: no message type decodes these.
                    unknownOrBare.Add($"{method.FullName}: expected MALFORMED_REQUEST, got {error?.StatusCode.ToString() ?? "OK"} {(error is null ? "" : Reason(error))}");
                }
            }
        }

        Assert.That(unknownOrBare, Is.Empty, string.Join("\n", unknownOrBare));
    }

    [Test]
    public async Task Defect6_an_int64_max_cost_cap_is_refused_and_the_largest_allowed_cap_runs_normally()
    {
        var jobs = new JobService.JobServiceClient(_host.Channel(_admin));
        JobEnvelope Envelope(long cap) => new()
        {
            NetworkId = _network,
            WorkloadId = WorkloadClass.DiagnosticEcho,
            MaxCostCredits = cap,
            InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("cap"), DelayMs = 200 } }.ToByteString() },
        };

        var e = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(long.MaxValue) }).ResponseAsync);
        Assert.That(Reason(e), Is.EqualTo(ErrorReasons.ValueOutOfRange));
        Assert.That(RequestProbes.Violations(e).Single().Field, Is.EqualTo("envelope.max_cost_credits"));

        var (device, keys) = await _host.JoinAsync(_admin, _network, "cap-worker");
        await _host.GoOnlineAsync(device, keys);
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Envelope(new InputLimits().MaxCostCapMicro) })).Job;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (job.State is not (JobState.Completed or JobState.Failed or JobState.Cancelled))
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline));
            await Task.Delay(50);
            job = (await jobs.GetJobAsync(new GetJobRequest { NetworkId = _network, JobId = job.JobId })).Job;
        }

        Assert.That(job.State, Is.EqualTo(JobState.Completed), job.ErrorMessage);
        Assert.That(job.CostMicro, Is.GreaterThan(0));
    }

    // ---- 7: unknown enum values and NUL in a model path were stored ----

    [Test]
    public async Task Defect7_undefined_enum_values_and_nul_characters_are_refused_and_nothing_changes()
    {
        var channel = _host.Channel(_admin);
        var (device, _) = await _host.JoinAsync(_admin, _network, "enum-laptop");
        var devices = new DeviceService.DeviceServiceClient(channel);
        var before = (await devices.GetDeviceAsync(new GetDeviceRequest { NetworkId = _network, DeviceId = device.DeviceId })).Device;

        async Task Refused(string field, string reason, Func<Task> call)
        {
            var e = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, call);
            Assert.That(Reason(e), Is.EqualTo(reason), field);
            Assert.That(RequestProbes.Violations(e).Select(v => v.Field), Has.Member(field));
        }

        await Refused("contribution_mode", ErrorReasons.UnknownEnumValue, () => devices.UpdateDeviceAsync(new UpdateDeviceRequest
        {
            NetworkId = _network, DeviceId = device.DeviceId, ContributionMode = (ContributionMode)77,
        }).ResponseAsync);
        await Refused("pinned_workloads[1]", ErrorReasons.UnknownEnumValue, () => devices.UpdateDeviceAsync(new UpdateDeviceRequest
        {
            NetworkId = _network, DeviceId = device.DeviceId, PinnedWorkloads = { WorkloadClass.Embeddings, (WorkloadClass)42 },
        }).ResponseAsync);
        var after = (await devices.GetDeviceAsync(new GetDeviceRequest { NetworkId = _network, DeviceId = device.DeviceId })).Device;
        Assert.That(after.ContributionMode, Is.EqualTo(before.ContributionMode));
        Assert.That(after.PinnedWorkloads, Is.EqualTo(before.PinnedWorkloads));

        var envelope = new JobEnvelope { NetworkId = _network, WorkloadId = WorkloadClass.DiagnosticEcho, RoutingMode = (RoutingMode)99, DataSensitivityTag = (DataSensitivityTag)7 };
        var submit = await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => new JobService.JobServiceClient(channel).SubmitJobAsync(new SubmitJobRequest { Envelope = envelope }).ResponseAsync);
        Assert.That(RequestProbes.Violations(submit).Select(v => v.Field), Is.SupersetOf(EnvelopeEnumFields));
        await Refused("invite_type", ErrorReasons.UnknownEnumValue, () => new NetworkService.NetworkServiceClient(channel).InviteMemberAsync(new InviteMemberRequest
        {
            NetworkId = _network, InviteType = (InviteType)9, Role = Role.Member,
        }).ResponseAsync);
        await Refused("details.files[0].path", ErrorReasons.InvalidCharacters, () => new ModelService.ModelServiceClient(channel).PublishModelManifestAsync(new PublishModelManifestRequest
        {
            Details = new ModelManifestDetails
            {
                NetworkId = _network, Name = "minilm", Version = "1", WorkloadClass = WorkloadClass.Embeddings,
                Files = { new ModelFile { Path = "model\0.onnx", Sha256 = new string('a', 64), SizeBytes = 1, Source = "file:///models/model.onnx" } },
            },
        }).ResponseAsync);
        var manifests = await new ModelService.ModelServiceClient(channel).ListModelManifestsAsync(new ListModelManifestsRequest { NetworkId = _network });
        Assert.That(manifests.Manifests, Is.Empty);
    }

    // ---- 8: the relay told an unknown network apart from an unknown CA key ----

    [Test]
    public async Task Defect8_the_relay_refuses_unknown_networks_unknown_ca_keys_and_bad_signatures_with_one_message()
    {
        var (device, _) = await _host.JoinAsync(_admin, _network, "relay-probe");
        var genuine = device.ParsedCertificate();
        var details = DeviceCertificateDetails.Parser.ParseFrom(genuine.Details);
        var strangerCa = SigningKeyPair.Generate();

        DeviceCertificate Forge(Action<DeviceCertificateDetails> change, SigningKeyPair signer)
        {
            var d = details.Clone();
            change(d);
            return DeviceCertificates.Issue(d, signer);
        }

        var certificates = new (string Name, DeviceCertificate Certificate)[]
        {
            ("unknown network", Forge(d => d.NetworkId = "net_doesnotexist0000000", strangerCa)),
            ("malformed network id", Forge(d => d.NetworkId = "", strangerCa)),
            ("unknown CA key", Forge(d => d.CaKeyId = SigningKeyPair.KeyId(strangerCa.PublicKey), strangerCa)),
            ("the real key id, another signer", Forge(_ => { }, strangerCa)),
            ("a flipped signature byte", new DeviceCertificate { Details = genuine.Details, Signature = ByteString.CopyFrom(genuine.Signature.Select((b, i) => i == 0 ? (byte)(b ^ 1) : b).ToArray()) }),
            ("undecodable details", new DeviceCertificate { Details = ByteString.CopyFrom(0x0a, 0xff), Signature = genuine.Signature }),
        };

        var answers = new List<(string Name, StatusCode Code, string Detail, string Cut)>();
        foreach (var (name, certificate) in certificates)
        {
            using var call = new RelayService.RelayServiceClient(_host.Channel()).Connect();
            await call.RequestStream.WriteAsync(new ConnectRequest { Hello = new AgentHello { Certificate = certificate } });
            var cut = "";
            var e = await Rpc.ThrowsAsync(StatusCode.PermissionDenied, async () =>
            {
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                    cut = call.ResponseStream.Current.Cut?.Detail ?? cut;
                }
            });
            answers.Add((name, e.StatusCode, e.Status.Detail, cut));
        }

        TestContext.Out.WriteLine(string.Join("\n", answers.Select(a => $"{a.Name}: {a.Code} '{a.Detail}' cut '{a.Cut}'")));
        Assert.That(answers.Select(a => (a.Code, a.Detail, a.Cut)).Distinct().Count(), Is.EqualTo(1), "one answer for every untrusted certificate");
        Assert.That(answers[0].Detail, Does.Not.Contain("network").IgnoreCase.And.Not.Contain("key").IgnoreCase);
    }

    // ---- 9: meshai.db and the outbox were world-readable ----

    [Test]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Defect9_everything_under_the_data_dir_of_the_real_server_process_is_private_also_after_an_upgrade()
    {
        await using var mesh = await LocalMesh.StartAsync(new LocalMeshOptions());
        var token = await mesh.SignInAsync("modes@example.com");
        var networks = new NetworkService.NetworkServiceClient(mesh.Channel(token));
        await networks.CreateNetworkAsync(new CreateNetworkRequest { Name = "modes" });
        AssertPrivate(mesh.DataDirectory, expectAtLeast: ["meshai.db", "meshai.db-wal", "master.key", "outbox", "tls"]);

        // An older version left world-readable files behind: the next start tightens them.
        File.SetUnixFileMode(Path.Combine(mesh.DataDirectory, "meshai.db"), (UnixFileMode)0b110_100_100);
        File.SetUnixFileMode(mesh.OutboxDirectory, (UnixFileMode)0b111_101_101);
        var leftover = Path.Combine(mesh.OutboxDirectory, "old.eml");
        await File.WriteAllTextAsync(leftover, "Link: https://example/auth/magic?token=old");
        File.SetUnixFileMode(leftover, (UnixFileMode)0b110_100_100);
        await mesh.RestartServerAsync();
        await networks.ListNetworksAsync(new ListNetworksRequest());
        AssertPrivate(mesh.DataDirectory, expectAtLeast: ["outbox/old.eml"]);
    }

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static void AssertPrivate(string root, string[] expectAtLeast)
    {
        var open = new List<string>();
        var seen = new List<string>();
        foreach (var path in Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Prepend(root))
        {
            seen.Add(Path.GetRelativePath(root, path));
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute)) != 0)
            {
                open.Add($"{Path.GetRelativePath(root, path)} {Convert.ToString((int)mode, 8)}");
            }
        }

        Assert.That(seen, Is.SupersetOf(expectAtLeast));
        Assert.That(open, Is.Empty, "readable by others: " + string.Join(", ", open));
    }
}

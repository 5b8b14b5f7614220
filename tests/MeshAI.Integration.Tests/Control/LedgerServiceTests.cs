using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshAI.Common.Crypto;
using MeshAI.Common.Seams;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Ledger;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.VisualBasic.FileIO;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Control;

/// <summary>LedgerService over real gRPC with small free-tier limits: reconcile, export, rates, and each limit's error.</summary>
[TestFixtureSource(nameof(Stores))]
[Category("Integration")]
[NonParallelizable]
public sealed class LedgerServiceTests(string store)
{
    public static readonly string[] Stores = ["sqlite", "postgres"];
    private static readonly string[] ExpectedEvents = ["credits_granted", "job_started", "job_completed", "credits_burned", "credits_minted"];
    private static readonly string[] NewestFirstEvents = ["CreditsMinted", "CreditsBurned", "JobCompleted", "JobStarted", "CreditsGranted"];
    private ControlTestServer _server = null!;
    private string _token = "";

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _server = await ControlTestServer.StartAsync(store,
            "--Control:Ledger:FreeTier:NetworksPerUser", "3",
            "--Control:Ledger:FreeTier:MaxDevicesPerNetwork", "1",
            "--Control:Ledger:FreeTier:RelayBytesPerMonth", "1000");
        _token = await _server.SignInAsync("alice@example.com");
    }

    [OneTimeTearDown]
    public async Task StopServer() => await _server.DisposeAsync();

    private LedgerService.LedgerServiceClient Ledger(string? token = null) => new(_server.Channel(token ?? _token));

    [Test]
    public async Task Settled_job_reconciles_exports_as_csv_and_jsonl_and_hits_the_device_and_relay_limits()
    {
        var network = (await new NetworkService.NetworkServiceClient(_server.Channel(_token)).CreateNetworkAsync(new CreateNetworkRequest { Name = "ledger" })).Network;
        var device = await RegisterAsync(network.NetworkId);
        var second = await Rpc.ThrowsAsync(StatusCode.ResourceExhausted, () => RegisterAsync(network.NetworkId));
        Assert.That(second.Status.Detail, Does.Contain("devices per network"));

        GoOnline(device);
        var jobs = new JobService.JobServiceClient(_server.Channel(_token));
        var job = (await jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Echo(network.NetworkId) })).Job;
        var sink = _server.Services.GetRequiredService<IJobEventSink>();
        var identity = Identity(device);
        await sink.OnAcceptedAsync(identity, new JobAccept { JobId = job.JobId, Attempt = 1 }, CancellationToken.None);
        var result = new JobResult { JobId = job.JobId, Attempt = 1, Output = new WorkloadOutput().ToByteString(), Metering = new Metering { RuntimeMs = 1500, Tier = Tier._2, HeartbeatsDuringRun = 0 } };
        await sink.OnResultAsync(identity, result, 5_000, CancellationToken.None);
        await sink.OnResultAsync(identity, result, 5_000, CancellationToken.None);

        var reconciled = await Ledger().ReconcileLedgerAsync(new ReconcileLedgerRequest { NetworkId = network.NetworkId });
        Assert.That(reconciled.Balanced, Is.True, string.Join("; ", reconciled.Mismatches.Select(m => m.Subject + ": " + m.Detail)));
        Assert.That(reconciled.JobsChecked, Is.EqualTo(1));

        // newest_first pages backwards through the same events (what `meshnet ledger show` prints).
        var newest = new List<string>();
        var page = new ListLedgerEventsRequest { NetworkId = network.NetworkId, PageSize = 2, NewestFirst = true };
        do
        {
            var response = await Ledger().ListLedgerEventsAsync(page);
            newest.AddRange(response.Events.Select(e => e.EventType.ToString()));
            page.PageToken = response.NextPageToken;
        }
        while (page.PageToken.Length > 0);
        Assert.That(newest, Is.EqualTo(NewestFirstEvents));

        var relay = await Rpc.ThrowsAsync(StatusCode.ResourceExhausted, () => jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = Echo(network.NetworkId) }).ResponseAsync);
        Assert.That(relay.Status.Detail, Does.Contain("relayed 5000 of 1000 bytes"));

        var csv = await ExportAsync(network.NetworkId, ExportFormat.Csv, null);
        var jsonl = await ExportAsync(network.NetworkId, ExportFormat.Jsonl, null);
        await File.WriteAllTextAsync(Path.Combine(Path.GetTempPath(), $"meshai-ledger-sample-{store}.csv"), csv);
        await File.WriteAllTextAsync(Path.Combine(Path.GetTempPath(), $"meshai-ledger-sample-{store}.jsonl"), jsonl);

        using var parser = new TextFieldParser(new StringReader(csv)) { TextFieldType = FieldType.Delimited, HasFieldsEnclosedInQuotes = true };
        parser.SetDelimiters(",");
        var header = parser.ReadFields()!;
        var rows = new List<Dictionary<string, string>>();
        while (!parser.EndOfData)
        {
            rows.Add(header.Zip(parser.ReadFields()!).ToDictionary(p => p.First, p => p.Second));
        }

        var lines = jsonl.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(header, Is.EqualTo(LedgerExport.Columns));
            Assert.That(rows.Select(r => r["event_type"]), Is.EqualTo(ExpectedEvents));
            Assert.That(lines.Select(l => l.GetProperty("event_type").GetString()), Is.EqualTo(rows.Select(r => r["event_type"])));
            Assert.That(rows.Sum(r => long.Parse(r["amount_micro"], System.Globalization.CultureInfo.InvariantCulture)), Is.EqualTo(lines.Sum(l => l.GetProperty("amount_micro").GetInt64())));
            Assert.That(rows.Single(r => r["event_type"] == "credits_burned")["billed_runtime_ms"], Is.EqualTo("2000"));
            Assert.That(lines.Single(l => l.GetProperty("event_type").GetString() == "credits_burned").GetProperty("amount_micro").GetInt64(), Is.EqualTo(-200_000));
        });

        var none = await ExportAsync(network.NetworkId, ExportFormat.Jsonl, Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddDays(1)));
        Assert.That(none, Is.Empty, "--since in the future exports nothing");
    }

    [Test]
    public async Task Admin_changes_rates_and_the_new_burn_rate_prices_the_estimate()
    {
        var network = (await new NetworkService.NetworkServiceClient(_server.Channel(_token)).CreateNetworkAsync(new CreateNetworkRequest { Name = "rates" })).Network;
        var updated = await Ledger().UpdateCreditRatesAsync(new UpdateCreditRatesRequest
        {
            NetworkId = network.NetworkId,
            TierRates = { new TierRate { Tier = Tier._2, EarnMicroPerMin = 8_000_000, BurnMicroPerMin = 12_000_000 } },
            MultiplierBps = 15_000,
        });
        Assert.That(updated.TierRates.Single(r => r.Tier == Tier._2).BurnMicroPerMin, Is.EqualTo(12_000_000));
        var read = await Ledger().GetCreditRatesAsync(new GetCreditRatesRequest { NetworkId = network.NetworkId });
        Assert.Multiple(() =>
        {
            Assert.That(read.MultiplierBps, Is.EqualTo(15_000));
            Assert.That(read.TierRates, Has.Count.EqualTo(5));
            Assert.That(read.TierRates.Single(r => r.Tier == Tier._4).BurnMicroPerMin, Is.EqualTo(28_000_000));
        });

        await Rpc.ThrowsAsync(StatusCode.InvalidArgument, () => Ledger().UpdateCreditRatesAsync(new UpdateCreditRatesRequest { NetworkId = network.NetworkId, MultiplierBps = -5 }).ResponseAsync);
        var bob = await _server.SignInAsync("bob-rates@example.com");
        await Rpc.ThrowsAsync(StatusCode.NotFound, () => Ledger(bob).UpdateCreditRatesAsync(new UpdateCreditRatesRequest { NetworkId = network.NetworkId, MultiplierBps = 20_000 }).ResponseAsync);
    }

    [Test]
    public async Task Creating_more_networks_than_the_free_tier_allows_is_resource_exhausted()
    {
        var carol = await _server.SignInAsync("carol-limits@example.com");
        var networks = new NetworkService.NetworkServiceClient(_server.Channel(carol));
        for (var i = 0; i < 3; i++)
        {
            await networks.CreateNetworkAsync(new CreateNetworkRequest { Name = "n" + i });
        }

        var e = await Rpc.ThrowsAsync(StatusCode.ResourceExhausted, () => networks.CreateNetworkAsync(new CreateNetworkRequest { Name = "one too many" }).ResponseAsync);
        Assert.That(e.Status.Detail, Does.Contain("at most 3 networks per user"));
    }

    private async Task<string> ExportAsync(string networkId, ExportFormat format, Timestamp? since)
    {
        var request = new ExportLedgerRequest { NetworkId = networkId, Format = format };
        if (since is not null)
        {
            request.Since = since;
        }

        using var call = Ledger().ExportLedger(request);
        var text = new StringBuilder();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            text.Append(call.ResponseStream.Current.Data.ToStringUtf8());
        }

        return format == ExportFormat.Csv && since is not null ? text.ToString()[LedgerExport.CsvHeader().Length..] : text.ToString();
    }

    private async Task<RegisterDeviceResponse> RegisterAsync(string networkId)
    {
        var join = await new DeviceService.DeviceServiceClient(_server.Channel(_token)).CreateJoinTokenAsync(new CreateJoinTokenRequest { NetworkId = networkId });
        Assert.That(JoinLink.TryParse(join.JoinLink, out var link), Is.True);
        var signing = SigningKeyPair.Generate();
        var encryption = EncryptionKeyPair.Generate();
        var installation = Guid.NewGuid().ToString("N");
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var proof = signing.Sign(ProofMessages.Register(link!.Token, installation, now, signing.PublicKey, encryption.PublicKey));
        return await new DeviceService.DeviceServiceClient(_server.Channel()).RegisterDeviceAsync(new RegisterDeviceRequest
        {
            JoinToken = link.Token,
            DeviceName = "laptop",
            InstallationId = installation,
            SigningPublicKey = ByteString.CopyFrom(signing.PublicKey),
            EncryptionPublicKey = ByteString.CopyFrom(encryption.PublicKey),
            Capabilities = Laptop(),
            TimestampUnixMs = now,
            ProofSignature = ByteString.CopyFrom(proof),
        });
    }

    private static CapabilityReport Laptop() => new()
    {
        CpuCores = 8, CpuArch = "x64", RamMb = 16_000, Os = "linux", Platform = Platform.Linux, NetworkRttMs = 10,
        Workloads = { WorkloadClass.Embeddings, WorkloadClass.DiagnosticEcho },
    };

    private void GoOnline(RegisterDeviceResponse registered) =>
        _server.Services.GetRequiredService<IPresenceDirectory>().Upsert(
            new PresenceRecord(registered.Device.DeviceId, registered.Device.NetworkId, "relay-test", Laptop(), true, DateTimeOffset.UtcNow, 10));

    private static DeviceIdentity Identity(RegisterDeviceResponse registered)
    {
        var details = DeviceCertificateDetails.Parser.ParseFrom(registered.Certificate.Details);
        return new DeviceIdentity(details.DeviceId, details.NetworkId, details.OwnerUserId, details.SigningPublicKey.ToByteArray(), details.Serial);
    }

    private static JobEnvelope Echo(string networkId) => new()
    {
        NetworkId = networkId,
        WorkloadId = WorkloadClass.DiagnosticEcho,
        RoutingMode = RoutingMode.Auto,
        InputManifest = new InputManifest { Payload = new WorkloadInput { Echo = new EchoInput { Data = ByteString.CopyFromUtf8("hi") } }.ToByteString() },
        PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
    };
}

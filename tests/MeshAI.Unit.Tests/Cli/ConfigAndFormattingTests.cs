using MeshAI.Cli.Commands;
using MeshAI.Cli.Config;
using MeshAI.Cli.Output;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Cli;

[TestFixture]
[Category("Unit")]
public sealed class ConfigAndFormattingTests
{
    [Test]
    public async Task Config_round_trips_and_is_owner_only()
    {
        using var cli = new CliHarness();
        var store = new CliConfigStore(cli.ConfigPath);
        var config = new CliConfig
        {
            ServerUrl = CliHarness.Server,
            Fingerprint = CliHarness.Fingerprint,
            SessionToken = "secret",
            DefaultNetworkId = "net_1",
            Email = "ada@example.com",
            UserId = "usr_1",
        };

        await store.SaveAsync(config, CancellationToken.None);
        await store.SaveAsync(config, CancellationToken.None);
        var loaded = await store.LoadAsync(CancellationToken.None);

        Assert.That(loaded.ServerUrl, Is.EqualTo(config.ServerUrl));
        Assert.That(loaded.Fingerprint, Is.EqualTo(config.Fingerprint));
        Assert.That(loaded.SessionToken, Is.EqualTo("secret"));
        Assert.That(loaded.DefaultNetworkId, Is.EqualTo("net_1"));
        Assert.That(loaded.IsLoggedIn, Is.True);
        Assert.That(File.ReadAllText(cli.ConfigPath), Does.Contain("\"sessionToken\": \"secret\""));
        Assert.That(Directory.GetFiles(Path.GetDirectoryName(cli.ConfigPath)!), Has.Length.EqualTo(1), "no temp files left behind");
        if (!OperatingSystem.IsWindows())
        {
            Assert.That(File.GetUnixFileMode(cli.ConfigPath), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
            Assert.That(File.GetUnixFileMode(Path.GetDirectoryName(cli.ConfigPath)!),
                Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
        }
    }

    [Test]
    public async Task A_missing_config_file_means_not_logged_in()
    {
        using var cli = new CliHarness();

        var config = await new CliConfigStore(cli.ConfigPath).LoadAsync(CancellationToken.None);

        Assert.That(config.IsLoggedIn, Is.False);
    }

    [Test]
    public void Config_path_prefers_the_option_then_the_environment_then_home()
    {
        string? Env(string name) => name == "MESHAI_CLI_CONFIG" ? "/env/cli.json" : null;

        Assert.That(CliConfigStore.ResolvePath("/opt/cli.json", Env, "/home/ada"), Is.EqualTo("/opt/cli.json"));
        Assert.That(CliConfigStore.ResolvePath(null, Env, "/home/ada"), Is.EqualTo("/env/cli.json"));
        Assert.That(CliConfigStore.ResolvePath(null, _ => null, "/home/ada"), Is.EqualTo(Path.Combine("/home/ada", ".meshai", "cli.json")));
    }

    [Test]
    public async Task A_corrupt_config_file_is_one_clear_error()
    {
        using var cli = new CliHarness();
        Directory.CreateDirectory(Path.GetDirectoryName(cli.ConfigPath)!);
        await File.WriteAllTextAsync(cli.ConfigPath, "{ not json");

        var code = await cli.RunAsync("net", "list");

        Assert.That(code, Is.EqualTo(1));
        Assert.That(cli.Stderr, Does.StartWith("error: The config file "));
        Assert.That(cli.Stderr.Trim().Split('\n'), Has.Length.EqualTo(1));
    }

    [TestCase(66_667L, "0.066667")]
    [TestCase(0L, "0.000000")]
    [TestCase(12_500_000L, "12.500000")]
    [TestCase(-66_667L, "-0.066667")]
    [TestCase(1L, "0.000001")]
    [TestCase(1_000_000_000_000L, "1000000.000000")]
    public void Micro_credits_format_as_credits_with_six_decimals(long micro, string expected) =>
        Assert.That(Credits.Format(micro), Is.EqualTo(expected));

    [TestCase("0.5", true, 500_000L)]
    [TestCase("2", true, 2_000_000L)]
    [TestCase("0.000001", true, 1L)]
    [TestCase("0.0000001", false, 0L)]
    [TestCase("-1", false, 0L)]
    [TestCase("abc", false, 0L)]
    public void Credits_parse_to_micro_credits(string text, bool ok, long micro)
    {
        Assert.That(Credits.TryParse(text, out var parsed), Is.EqualTo(ok));
        Assert.That(parsed, Is.EqualTo(micro));
    }

    [Test]
    public void Tables_pad_columns_right_align_marked_ones_and_trim_trailing_space()
    {
        var table = new TextTable("NAME", "COST>", "NOTE")
            .Add("laptop", "0.066667", "")
            .Add("phone-with-long-name", "12.000000", null);

        Assert.That(table.ToString(), Is.EqualTo(
            "NAME                       COST  NOTE\n" +
            "laptop                 0.066667\n" +
            "phone-with-long-name  12.000000  -\n"));
    }

    [Test]
    public void Enum_values_print_the_way_the_spec_spells_them()
    {
        Assert.That(Display.Name(RoutingMode.PinnedDevice), Is.EqualTo("pinned_device"));
        Assert.That(Display.Name(Tier._2), Is.EqualTo("tier2"));
        Assert.That(Display.Name(Tier._0), Is.EqualTo("tier0"));
        Assert.That(Display.Name(ContributionMode.ManualToggle), Is.EqualTo("manual_toggle"));
        Assert.That(Display.Name(OnlineStatus.Online), Is.EqualTo("online"));
        Assert.That(Display.Name(ThermalState.Unspecified), Is.EqualTo("-"));
        Assert.That(Display.Name(EligibilityFilter.DeviceStateOk), Is.EqualTo("device_state_ok"));
    }

    [Test]
    public void Device_table_shows_the_device_card_fields()
    {
        var laptop = new Device
        {
            Name = "laptop", DeviceId = "dev_laptop", Platform = Platform.Linux, OnlineStatus = OnlineStatus.Online,
            CapabilityTier = Tier._2, LatencyEstimate = 12, ContributionMode = ContributionMode.ManualToggle, ContributionEnabled = true,
            ThermalStateIfAvailable = ThermalState.Nominal,
        };
        var phone = new Device
        {
            Name = "phone", DeviceId = "dev_phone", Platform = Platform.Android, OnlineStatus = OnlineStatus.Offline,
            CapabilityTier = Tier._0, BatteryStateIfMobile = new BatteryState { Percent = 85, Charging = true },
            ContributionMode = ContributionMode.PolicyDriven,
        };

        var text = DeviceCommands.Table([laptop, phone]).ToString();

        Assert.That(text, Is.EqualTo(
            "NAME    ID          PLATFORM  STATUS   TIER   BATTERY       THERMAL  LATENCY  CONTRIBUTION\n" +
            "laptop  dev_laptop  linux     online   tier2  -             nominal    12 ms  manual_toggle (on)\n" +
            "phone   dev_phone   android   offline  tier0  85% charging  -              -  policy_driven (off)\n"));
    }

    [Test]
    public void Status_line_reads_as_one_sentence_of_state_changes()
    {
        using var writer = new StringWriter();
        var line = new StatusLine(writer);
        Job Frame(JobState state, string device = "") => new() { JobId = "job_1", State = state, DeviceId = device, LatencyMs = 123, CostMicro = 66_667 };

        line.OnFrame(new WatchJobResponse { Status = new JobStatusFrame { Job = Frame(JobState.Queued) } });
        line.OnFrame(new WatchJobResponse { Status = new JobStatusFrame { Job = Frame(JobState.Queued) } });
        line.OnFrame(new WatchJobResponse { Status = new JobStatusFrame { Job = Frame(JobState.Running, "dev_x") } });
        line.Finish(Frame(JobState.Completed, "dev_x"));
        var text = line.Text;
        line.End();

        Assert.That(text, Is.EqualTo("job job_1: queued → running on dev_x → completed in 123 ms (cost 0.066667 credits)"));
    }

    [Test]
    public void Agent_command_quotes_the_link_for_a_posix_shell()
    {
        Assert.That(DeviceCommands.AgentCommand("meshai://join?server=x&token=a'b"),
            Is.EqualTo("meshai-agent join 'meshai://join?server=x&token=a'\\''b'"));
    }

    [Test]
    public void Qr_code_renders_as_text_blocks()
    {
        var qr = DeviceCommands.RenderQr("meshai://join?server=https%3A%2F%2F127.0.0.1%3A7443&token=abc&fp=00");

        Assert.That(qr.Split('\n').Length, Is.GreaterThan(10));
        Assert.That(qr, Does.Contain("█"));
    }
}

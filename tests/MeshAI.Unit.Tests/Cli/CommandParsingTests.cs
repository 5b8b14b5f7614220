using System.CommandLine;
using MeshAI.Cli;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Cli;

[TestFixture]
[Category("Unit")]
public sealed class CommandParsingTests
{
    private static readonly string[] ExpectedTexts = ["first text", "second"];

    private static ParseResult Parse(string commandLine)
    {
        var runtime = new CliRuntime(TextWriter.Null, TextWriter.Null, new CliEnvironment());
        return CliApp.BuildRootCommand(runtime).Parse(commandLine);
    }

    [TestCase("auth login --server https://127.0.0.1:7443 --fingerprint aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44 --email a@b.c", "login")]
    [TestCase("auth login --server https://mesh.example.com --email a@b.c", "login")]
    [TestCase("auth whoami --json", "whoami")]
    [TestCase("auth logout", "logout")]
    [TestCase("net create home", "create")]
    [TestCase("net list --json", "list")]
    [TestCase("net ls", "list")]
    [TestCase("net use net_abc", "use")]
    [TestCase("members invite bob@example.com --role guest", "invite")]
    [TestCase("members invite --link", "invite")]
    [TestCase("members list -n net_abc", "list")]
    [TestCase("device join --network net_abc --ttl 600", "join")]
    [TestCase("device approve KXQF-7TRM --network net_abc", "approve")]
    [TestCase("device revoke dev_x --reason lost", "revoke")]
    [TestCase("devices list --network net_abc", "list")]
    [TestCase("run embeddings --text a --text b --network net_abc --max-cost 0.5 --routing auto", "embeddings")]
    [TestCase("run embeddings -t a --routing pinned_device --device dev_x --device dev_y", "embeddings")]
    [TestCase("run embeddings -t a --routing pinned_tier --tier tier2 --json", "embeddings")]
    [TestCase("run embeddings -t a --routing local_prefer --sensitivity private --timeout 30", "embeddings")]
    [TestCase("run echo --data hello --delay-ms 10", "echo")]
    [TestCase("jobs list --limit 5", "list")]
    [TestCase("jobs get job_x", "get")]
    [TestCase("jobs explain job_x --json", "explain")]
    [TestCase("jobs cancel job_x", "cancel")]
    [TestCase("ledger show --network net_abc --limit 50", "show")]
    [TestCase("--json --config /tmp/x.json ledger show", "show")]
    public void Command_parses_without_errors(string commandLine, string expectedCommand)
    {
        var result = Parse(commandLine);

        Assert.That(result.Errors, Is.Empty, string.Join("; ", result.Errors.Select(e => e.Message)));
        Assert.That(result.CommandResult.Command.Name, Is.EqualTo(expectedCommand));
    }

    [Test]
    public void Repeated_text_options_are_kept_in_order()
    {
        var result = Parse("run embeddings --text \"first text\" --text second");
        var text = result.CommandResult.Command.Options.OfType<Option<string[]>>().Single(o => o.Name == "--text");

        Assert.That(result.GetValue(text), Is.EqualTo(ExpectedTexts));
    }

    [Test]
    public void Json_and_config_are_accepted_after_any_subcommand()
    {
        var result = Parse("devices list --json --config /tmp/c.json");

        Assert.That(result.Errors, Is.Empty);
        Assert.That(result.GetValue<bool>("--json"), Is.True);
        Assert.That(result.GetValue<string>("--config"), Is.EqualTo("/tmp/c.json"));
    }

    [TestCase("run embeddings", "--text")]
    [TestCase("auth login --server https://x.example", "--email")]
    [TestCase("run echo", "--data")]
    [TestCase("net create", "NAME")]
    [TestCase("device approve", "CODE")]
    [TestCase("run embeddings -t a --routing sideways", "sideways")]
    [TestCase("run embeddings -t a --routing pinned_device", "--device")]
    [TestCase("run embeddings -t a --device dev_x", "pinned_device")]
    [TestCase("run embeddings -t a --routing pinned_tier", "--tier")]
    [TestCase("run embeddings -t a --max-cost -1", "--max-cost")]
    [TestCase("run embeddings -t a --max-cost 0.0000001", "--max-cost")]
    [TestCase("auth login --email a@b.c --fingerprint nothex", "--fingerprint")]
    [TestCase("auth login --email a@b.c --server ftp://x", "--server")]
    [TestCase("device join --ttl 0", "--ttl")]
    [TestCase("members invite bob --link", "--link")]
    [TestCase("auth", "command")]
    [TestCase("frobnicate", "frobnicate")]
    public async Task Bad_command_lines_are_usage_errors_with_exit_code_2(string commandLine, string mentioned)
    {
        using var cli = new CliHarness();

        var code = await cli.RunAsync(commandLine.Split(' '));

        Assert.That(code, Is.EqualTo(2));
        Assert.That(cli.Stderr, Does.Contain(mentioned));
        Assert.That(cli.Stderr, Does.Contain("--help"));
        Assert.That(cli.Stdout, Is.Empty);
        Assert.That(cli.Mesh.Calls, Is.Empty);
    }

    [Test]
    public async Task Help_exits_zero_and_lists_the_commands()
    {
        using var cli = new CliHarness();

        var code = await cli.RunAsync("--help");

        Assert.That(code, Is.Zero);
        foreach (var command in new[] { "auth", "net", "members", "device", "devices", "run", "jobs", "ledger" })
        {
            Assert.That(cli.Stdout, Does.Contain(command));
        }
    }
}

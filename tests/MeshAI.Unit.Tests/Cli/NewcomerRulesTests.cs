using MeshAI.Cli.Commands;
using MeshAI.Common.Domain;
using MeshAI.Common.Local;
using MeshAI.Common.Text;
using MeshAI.Contracts.Job.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Cli;

/// <summary>The pure parts behind issue 16: suggestions, the environment story, input rules, the cost cap alias, image sniffing.</summary>
[TestFixture]
[Category("Unit")]
public sealed class NewcomerRulesTests
{
    private static readonly string[] Commands = ["auth", "net", "members", "audit", "device", "devices", "run", "jobs", "ledger", "policy"];

    [TestCase("ledgr", "ledger")]
    [TestCase("ldeger", "ledger")]
    [TestCase("polcy", "policy")]
    [TestCase("mem", "members")]
    [TestCase("jbos", "jobs")]
    [TestCase("frobnicate", null)]
    [TestCase("de", null)]
    public void Suggestions_name_the_closest_command_or_nothing(string typed, string? expected) =>
        Assert.That(Suggestions.Closest(typed, Commands), Is.EqualTo(expected));

    [Test]
    public void Meshai_home_and_port_come_from_the_environment_with_defaults()
    {
        var defaults = MeshHome.From(_ => null, "/home/ada");
        Assert.Multiple(() =>
        {
            Assert.That(defaults.Directory, Is.EqualTo("/home/ada/.meshai"));
            Assert.That(defaults.ServerDirectory, Is.EqualTo("/home/ada/.meshai/server"));
            Assert.That(defaults.AgentDirectory, Is.EqualTo("/home/ada/.meshai/agent"));
            Assert.That(defaults.CliConfigPath, Is.EqualTo("/home/ada/.meshai/cli.json"));
            Assert.That(defaults.Port, Is.EqualTo(7443));
        });

        var custom = MeshHome.From(name => name switch { "MESHAI_HOME" => "/srv/mesh", "MESHAI_PORT" => "7503", _ => null }, "/home/ada");
        Assert.That((custom.Directory, custom.Port, custom.LocalServerUrl), Is.EqualTo(("/srv/mesh", 7503, "https://127.0.0.1:7503")));

        var bad = Assert.Throws<InvalidOperationException>(() => MeshHome.From(name => name == "MESHAI_PORT" ? "70000" : null, "/home/ada"));
        Assert.That(bad!.Message, Is.EqualTo("MESHAI_PORT must be a port number between 1 and 65535, got '70000'."));
    }

    [Test]
    public void Input_rules_name_the_blank_text_or_message()
    {
        var embeddings = new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { "fine", "  \t" } } };
        Assert.That(WorkloadInputRules.Check(embeddings, 256), Is.EqualTo(("envelope.input_manifest.payload.embeddings.texts[1]", WorkloadInputRules.BlankText)));

        var none = new WorkloadInput { Embeddings = new EmbeddingsInput() };
        Assert.That(WorkloadInputRules.Check(none, 256)?.Field, Is.EqualTo("envelope.input_manifest.payload.embeddings.texts"));

        var chat = new WorkloadInput { Chat = new ChatInput { Messages = { new ChatMessage { Role = ChatRole.System, Content = "be brief" }, new ChatMessage { Role = ChatRole.User, Content = " " } } } };
        Assert.That(WorkloadInputRules.Check(chat, 256), Is.EqualTo(("envelope.input_manifest.payload.chat.messages[1].content", WorkloadInputRules.BlankText)));

        var systemOnly = new WorkloadInput { Chat = new ChatInput { Messages = { new ChatMessage { Role = ChatRole.System, Content = "be brief" } } } };
        Assert.That(WorkloadInputRules.Check(systemOnly, 256)?.Description, Is.EqualTo("needs a user message (the prompt)"));

        Assert.That(WorkloadInputRules.Check(new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { "a" } } }, 256), Is.Null);
    }

    [Test]
    public void The_cost_cap_reads_max_cost_micro_then_its_deprecated_alias()
    {
        Assert.Multiple(() =>
        {
            Assert.That(new JobEnvelope { MaxCostMicro = 500 }.CapMicro(), Is.EqualTo(500));
            Assert.That(new JobEnvelope { MaxCostCredits = 700 }.CapMicro(), Is.EqualTo(700), "old clients put micro-credits in the alias");
            Assert.That(Money.CapConflict(new JobEnvelope { MaxCostMicro = 5, MaxCostCredits = 5 }), Is.Null);
            Assert.That(Money.CapConflict(new JobEnvelope { MaxCostMicro = 5, MaxCostCredits = 6 })?.Field, Is.EqualTo("envelope.max_cost_credits"));
            Assert.That(Money.CapConflict(new JobEnvelope { MaxCostMicro = -1 })?.Field, Is.EqualTo("envelope.max_cost_micro"));
            Assert.That(Money.CreditsWithMicro(100_000), Is.EqualTo("0.100000 credits (100000 micro-credits)"));
        });
    }

    [Test]
    public void Images_are_recognised_by_their_first_bytes_not_their_name()
    {
        Assert.Multiple(() =>
        {
            Assert.That(RunCommands.ImageContentType([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A]), Is.EqualTo("image/png"));
            Assert.That(RunCommands.ImageContentType([0xFF, 0xD8, 0xFF, 0xE0]), Is.EqualTo("image/jpeg"));
            Assert.That(RunCommands.ImageContentType("II*\0rest"u8), Is.EqualTo("image/tiff"));
            Assert.That(RunCommands.ImageContentType("RIFF\0\0\0\0WEBPVP8 "u8), Is.EqualTo("image/webp"));
            Assert.That(RunCommands.ImageContentType("not a picture"u8), Is.Null);
        });
    }
}

using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Issue 16 as a newcomer lives it: ./quickstart.sh twice for a brand-new user (a fresh HOME and MESHAI_HOME), then
/// `meshnet` from PATH in a new login shell. The second run must reuse the session, the network and the device.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed partial class QuickstartEndToEndTests
{
    [Test]
    public async Task Quickstart_twice_reuses_its_network_and_device_and_meshnet_then_runs_from_PATH_in_a_new_shell()
    {
        var user = Directory.CreateTempSubdirectory("meshai-quickstart-user-").FullName;
        var home = Path.Combine(user, "meshai-home");
        var bin = Path.Combine(user, ".local", "bin");
        var port = FreePort.Next().ToString(CultureInfo.InvariantCulture);
        var realHome = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        // A new account: empty shell profiles of its own. Only the machine's .NET/NuGet setup is shared (DOTNET_CLI_HOME:
        // the same NuGet config and package cache), so the quickstart's build is the no-op it is after ./test.sh's build
        // instead of a full restore and rebuild under a new NuGet config path.
        await File.WriteAllTextAsync(Path.Combine(user, ".profile"), "# new user's profile\n");
        await File.WriteAllTextAsync(Path.Combine(user, ".bashrc"), "# new user's bashrc\n");
        var environment = new Dictionary<string, string?>
        {
            ["HOME"] = user,
            ["MESHAI_HOME"] = home,
            ["MESHAI_PORT"] = port,
            ["MESHAI_EMAIL"] = "quickstart@example.com",
            ["MESHAI_BIN_DIR"] = null,
            ["MESHAI_CLI_CONFIG"] = null,
            ["DOTNET_CLI_HOME"] = Environment.GetEnvironmentVariable("DOTNET_CLI_HOME") is { Length: > 0 } cliHome ? cliHome : realHome,
            ["NUGET_PACKAGES"] = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } packages ? packages : Path.Combine(realHome, ".nuget", "packages"),
        };
        try
        {
            var first = await RunQuickstartAsync(environment);
            Assert.That(first.ExitCode, Is.Zero, first.Output);
            var out1 = first.StandardOutputText;
            Assert.That(out1, Does.Match(@"==> Building \d+ projects \(Release; full log: .+/run/build\.log\)"));
            Assert.That(out1, Does.Match(@"    \[ ?\d+/\d+\] MeshAI\.Contracts"));
            Assert.That(out1, Does.Match(@"    built in (\d+m )?\d+s: 0 warnings, 0 errors"));
            Assert.That(out1, Does.Contain($"==> Installed meshnet, meshai-agent and meshai-server in {bin}"));
            Assert.That(out1, Does.Contain($"    added {bin} to PATH in {user}/.profile"));
            var created = CreatedNetwork().Match(out1);
            Assert.That(created.Success, Is.True, out1);
            var joined = JoinedDevice().Match(out1);
            Assert.That(joined.Success, Is.True, out1);
            Assert.That(out1, Does.Contain("you> Say hello in five words.").And.Contain("assistant> "));
            // No stack trace: a .NET frame line ("   at Type.Method(…)") or an exception name; prose such as a build tool's
            // "Learn more at https://…" is not one.
            Assert.That(first.StandardErrorText, Does.Not.Match(@"(?m)^\s+at \S+\(").And.Not.Contain("Exception"));

            var second = await RunQuickstartAsync(environment);
            Assert.That(second.ExitCode, Is.Zero, second.Output);
            var out2 = second.StandardOutputText;
            Assert.That(out2, Does.Contain("==> Already signed in"));
            Assert.That(out2, Does.Contain($"    Using your existing network Home Mesh ({created.Groups["id"].Value}); it is now your default network."));
            Assert.That(out2, Does.Contain($"==> Reusing this machine's device {joined.Groups["id"].Value} (joined on an earlier run)"));
            Assert.That(out2, Does.Not.Contain("Created network").And.Not.Contain("Joining this machine"));
            Assert.That(out2, Does.Not.Contain("added "), "the PATH line is added once");
            Assert.That((await File.ReadAllTextAsync(Path.Combine(user, ".profile"))).Split('\n').Count(l => l.Contains(bin, StringComparison.Ordinal)), Is.EqualTo(1));

            // A new login shell of that user, with nothing of this process's environment: meshnet comes from PATH.
            var shell = await ProcessRunner.RunAsync(
                new ProcessRunnerOptions
                {
                    FileName = "env",
                    Arguments = ["-i", "HOME=" + user, "PATH=/usr/local/bin:/usr/bin:/bin", "TERM=dumb", "bash", "-lc", "command -v meshnet && meshnet net list --json && meshnet devices list"],
                    Name = "new-shell",
                },
                TimeSpan.FromSeconds(120));
            await using (shell)
            {
                Assert.That(shell.ExitCode, Is.Zero, shell.Output);
                var lines = shell.StandardOutputText.Split('\n');
                Assert.That(lines[0], Is.EqualTo(Path.Combine(bin, "meshnet")));
                var jsonEnd = Array.IndexOf(lines, "}");
                using var networks = JsonDocument.Parse(string.Join('\n', lines[1..(jsonEnd + 1)]));
                Assert.That(networks.RootElement.GetProperty("networks").GetArrayLength(), Is.EqualTo(1), "one Home Mesh after two runs");
                Assert.That(lines.Skip(jsonEnd + 1).Count(l => l.Contains(joined.Groups["id"].Value, StringComparison.Ordinal) && l.Contains(" online ", StringComparison.Ordinal)), Is.EqualTo(1),
                    shell.StandardOutputText);
                Assert.That(lines.Skip(jsonEnd + 2).Count(l => l.Trim().Length > 0), Is.EqualTo(1), "one device after two runs");
            }
        }
        finally
        {
            await using (await ProcessRunner.RunAsync(
                new ProcessRunnerOptions { FileName = "bash", Arguments = [RepoPaths.Combine("quickstart.sh"), "stop"], Environment = environment, Name = "quickstart-stop" },
                TimeSpan.FromSeconds(60)))
            {
            }

            DeleteQuietly(user);
        }
    }

    private static Task<ProcessRunner> RunQuickstartAsync(IReadOnlyDictionary<string, string?> environment) =>
        ProcessRunner.RunAsync(
            new ProcessRunnerOptions { FileName = "bash", Arguments = [RepoPaths.Combine("quickstart.sh")], Environment = environment, Name = "quickstart" },
            TimeSpan.FromMinutes(12));

    [GeneratedRegex(@"    Created network Home Mesh \((?<id>net_\w+)\); it is now your default network\.")]
    private static partial Regex CreatedNetwork();

    [GeneratedRegex(@"    joined as device (?<id>dev_\w+)")]
    private static partial Regex JoinedDevice();

    private static void DeleteQuietly(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TestContext.Progress.WriteLine($"could not delete {directory}: {ex.Message}");
        }
    }
}

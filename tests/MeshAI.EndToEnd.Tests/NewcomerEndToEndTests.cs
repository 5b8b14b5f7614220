using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Google.Rpc;
using Grpc.Core;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.EndToEnd.Tests;

/// <summary>
/// Issue 16, "a newcomer's first ten minutes": one test per item, each through the real meshnet / meshai-agent /
/// meshai-server binaries with their exact output (the quickstart itself: <see cref="QuickstartEndToEndTests"/>).
/// One server and one agent serving embeddings and chat (tiny GGUF) are shared by the tests.
/// </summary>
[TestFixture]
[Category("EndToEnd")]
public sealed partial class NewcomerEndToEndTests
{
    private const string Email = "newcomer@example.com";
    private static readonly string AgentDll = RepoPaths.BuiltAssembly("agent/MeshAI.Agent", "meshai-agent");
    private static readonly string ServerDll = RepoPaths.BuiltAssembly("services/MeshAI.Server", "meshai-server");
    private static readonly string CliDll = RepoPaths.BuiltAssembly("cli/MeshAI.Cli", "meshnet");

    private LocalMesh _mesh = null!;
    private string _cliConfig = null!;
    private string _networkId = null!;
    private MeshAgent _agent = null!;
    private Grpc.Net.Client.GrpcChannel _channel = null!;

    /// <summary>Server, CLI sign-in, a network and one agent with embeddings and chat.</summary>
    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _mesh = await LocalMesh.StartAsync(new LocalMeshOptions { HeartbeatGraceSeconds = 10 });
        _cliConfig = Path.Combine(_mesh.DataDirectory, "cli.json");
        _channel = _mesh.Channel(await _mesh.SignInWithCliAsync(_cliConfig, Email));
        _networkId = JsonDocument.Parse((await CliAsync("net", "create", "Newcomer Mesh", "--json")).StandardOutput).RootElement.GetProperty("networkId").GetString()!;
        var chatModel = await MeshJobs.GenerateTinyChatModelAsync(Path.Combine(_mesh.DataDirectory, "tiny-chat"));
        _agent = await _mesh.StartAgentAsync(await JoinLinkAsync(), "newcomer-box", ["--chat-model-dir", chatModel], null);
    }

    /// <summary>Stops everything.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        _channel?.Dispose();
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }
    }

    // Item 2: MESHAI_HOME is honoured by the CLI (its cli.json) and the agent (its state dir); the "Not logged in" hint
    // names the local server and its --fingerprint, found through $MESHAI_HOME/server/endpoint.json.
    [Test]
    public async Task Meshai_home_is_honoured_by_the_cli_and_the_agent_and_the_login_hint_carries_the_fingerprint()
    {
        var home = Directory.CreateTempSubdirectory("meshai-newcomer-home-").FullName;
        try
        {
            var env = new Dictionary<string, string?> { ["MESHAI_HOME"] = home, ["MESHAI_CLI_CONFIG"] = null };
            Directory.CreateDirectory(Path.Combine(home, "server"));
            File.Copy(Path.Combine(_mesh.DataDirectory, "endpoint.json"), Path.Combine(home, "server", "endpoint.json"));

            var notLoggedIn = await RunAsync(CliDll, ["devices", "list"], env);
            Assert.That(notLoggedIn.ExitCode, Is.EqualTo(1));
            Assert.That(notLoggedIn.StandardError, Is.EqualTo(
                $"error: Not logged in. Run: meshnet auth login --server {_mesh.Url} --fingerprint {_mesh.Fingerprint} --email EMAIL"));

            File.Copy(_cliConfig, Path.Combine(home, "cli.json"));
            var listed = await RunAsync(CliDll, ["devices", "list"], env);
            Assert.That(listed.ExitCode, Is.Zero, listed.StandardError);
            Assert.That(listed.StandardOutput, Does.Contain("newcomer-box"));

            var status = await RunAsync(AgentDll, ["status", "--json"], env);
            Assert.That(status.ExitCode, Is.Zero, status.StandardError);
            using var json = JsonDocument.Parse(status.StandardOutput);
            Assert.That(json.RootElement.GetProperty("stateDir").GetString(), Is.EqualTo(Path.Combine(home, "agent")));
            Assert.That(json.RootElement.GetProperty("joined").GetBoolean(), Is.False);
        }
        finally
        {
            DeleteQuietly(home);
        }
    }

    // Item 4: the conversation on stdout (the answer on its own line), job states on stderr lines of their own.
    [Test]
    public async Task Chat_prints_a_conversation_with_the_answer_on_its_own_line()
    {
        var chat = await CliAsync("run", "chat", "--prompt", "Say hello in five words.", "--max-tokens", "12");

        Assert.That(chat.ExitCode, Is.Zero, chat.StandardError);
        var stdout = chat.StandardOutput.Split('\n');
        Assert.That(stdout, Has.Length.EqualTo(2), chat.StandardOutput);
        Assert.That(stdout[0], Is.EqualTo("you> Say hello in five words."));
        Assert.That(stdout[1], Does.Match(@"^assistant> \S.*$"));
        var stderr = chat.StandardError.Split('\n');
        Assert.That(stderr, Has.Length.EqualTo(3), chat.StandardError);
        Assert.That(stderr[0], Does.Match($@"^job job_\w+: (.+ → )?running( on {_agent.DeviceId})?$"));
        Assert.That(stderr[1], Does.Match(@"^job job_\w+: completed in \d+ ms \(cost \d+\.\d{6} credits\)$"));
        Assert.That(stderr[2], Is.EqualTo("12 tokens, finish reason: length"));
    }

    // Item 6: blank embedding texts and prompts are refused before anything exists to bill: by the SDK before it
    // encrypts (the CLI's path) and by control for plaintext envelopes, with the field named in a BadRequest.
    [Test]
    public async Task Blank_texts_and_prompts_are_refused_with_the_field_named_and_nothing_billed()
    {
        var ledger = new LedgerService.LedgerServiceClient(_channel);
        var jobs = new JobService.JobServiceClient(_channel);
        var eventsBefore = await EventCountAsync(ledger);
        var jobsBefore = (await jobs.ListJobsAsync(new ListJobsRequest { NetworkId = _networkId, PageSize = 100 })).Jobs.Count;

        var text = await CliAsync("run", "embeddings", "--text", "a real sentence", "--text", "   ");
        Assert.That(text.ExitCode, Is.EqualTo(1));
        Assert.That(text.StandardError, Is.EqualTo("error: invalid --text #2: must contain at least one non-whitespace character"));

        var prompt = await CliAsync("run", "chat", "--prompt", " \t ");
        Assert.That(prompt.ExitCode, Is.EqualTo(1));
        Assert.That(prompt.StandardOutput, Is.Empty, "a refused prompt prints no conversation");
        Assert.That(prompt.StandardError, Is.EqualTo("error: invalid --prompt: must contain at least one non-whitespace character"));

        var plaintext = new JobEnvelope
        {
            NetworkId = _networkId,
            WorkloadId = WorkloadClass.Embeddings,
            RoutingMode = RoutingMode.Auto,
            InputManifest = new InputManifest { Payload = new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { "fine", "" } } }.ToByteString() },
            PayloadEncryption = new PayloadEncryption { Scheme = PayloadEncryptionScheme.None },
        };
        var refused = await Assert.ThrowsAsync<RpcException>(() => jobs.SubmitJobAsync(new SubmitJobRequest { Envelope = plaintext }).ResponseAsync);
        Assert.That(refused!.StatusCode, Is.EqualTo(StatusCode.InvalidArgument));
        var violation = refused.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations.Single();
        Assert.That(violation.Field, Is.EqualTo("envelope.input_manifest.payload.embeddings.texts[1]"));
        Assert.That(violation.Description, Is.EqualTo("must contain at least one non-whitespace character"));

        Assert.That(await EventCountAsync(ledger), Is.EqualTo(eventsBefore), "nothing was billed");
        Assert.That((await jobs.ListJobsAsync(new ListJobsRequest { NetworkId = _networkId, PageSize = 100 })).Jobs, Has.Count.EqualTo(jobsBefore), "no job was created");
    }

    // Item 7: unit-correct money, "did you mean", one line for a non-image, NOT_FOUND for an unknown pinned device.
    [Test]
    public async Task Refused_inputs_are_one_line_that_names_units_suggests_commands_and_says_no_such_device()
    {
        var cap = await CliAsync("run", "embeddings", "--text", "hello", "--max-cost", "0.000001");
        Assert.That(cap.ExitCode, Is.EqualTo(1));
        Assert.That(cap.StandardError, Does.Match(
            @"^error: estimated cost \d+\.\d{6} credits \(\d+ micro-credits\) exceeds the cap max_cost_micro 0\.000001 credits \(1 micro-credits\) \([A-Z_]+\)$"));

        var typo = await CliAsync("ledgr", "show");
        Assert.That(typo.ExitCode, Is.EqualTo(2));
        Assert.That(typo.StandardError, Is.EqualTo("error: unknown command 'ledgr' for 'meshnet'. Did you mean 'meshnet ledger'?\nRun 'meshnet --help' for usage."));

        var notes = Path.Combine(_mesh.DataDirectory, "notes.txt");
        await File.WriteAllTextAsync(notes, "not a picture");
        var ocr = await CliAsync("run", "ocr", "--image", notes);
        Assert.That(ocr.ExitCode, Is.EqualTo(2));
        Assert.That(ocr.StandardError, Is.EqualTo("error: --image notes.txt is not an image (PNG, JPEG, GIF, BMP, TIFF or WebP expected)."));

        var pinned = await CliAsync("run", "embeddings", "--text", "hello", "--routing", "pinned_device", "--device", "dev_doesnotexist");
        Assert.That(pinned.ExitCode, Is.EqualTo(1));
        Assert.That(pinned.StandardError, Is.EqualTo("error: device 'dev_doesnotexist' not found"));

        var agentTypo = await RunAsync(AgentDll, ["statsu"]);
        Assert.That(agentTypo.ExitCode, Is.EqualTo(2));
        Assert.That(agentTypo.StandardError, Is.EqualTo("error: unknown command 'statsu'. Did you mean 'meshai-agent status'? Run 'meshai-agent help' for usage."));
    }

    // Item 8: joining says what it joined and nothing about workloads `run` will advertise after all.
    [Test]
    public async Task Join_prints_the_joined_line_and_no_not_advertised_noise()
    {
        var state = Directory.CreateTempSubdirectory("meshai-newcomer-join-").FullName;
        try
        {
            await MeshJobs.GenerateTinyChatModelAsync(Path.Combine(state, "models", "chat"));
            var joined = await RunAsync(AgentDll, ["join", await JoinLinkAsync(), "--state-dir", state, "--name", "second-box"]);

            Assert.That(joined.ExitCode, Is.Zero, joined.StandardError);
            Assert.That(joined.StandardOutput, Does.Match(@"^MESHAI_AGENT_JOINED device_id=dev_\w+ network_id=" + _networkId + "$"));
            Assert.That(joined.StandardError, Is.Empty);
        }
        finally
        {
            DeleteQuietly(state);
        }
    }

    // Item 9: the ledger says who pays (the pool) and who earns (the device's owner), with emails and device names.
    [Test]
    public async Task Ledger_show_says_who_paid_and_who_earned_in_words()
    {
        var run = await CliAsync("run", "embeddings", "--text", "ledger line");
        Assert.That(run.ExitCode, Is.Zero, run.StandardError);

        var ledger = await CliAsync("ledger", "show", "--limit", "4");

        Assert.That(ledger.ExitCode, Is.Zero, ledger.StandardError);
        var lines = ledger.StandardOutput.Split('\n');
        Assert.That(lines[0], Is.EqualTo($"Network {_networkId}: shared pool on. Jobs are paid from the pool; devices earn credits for their owners."));
        Assert.That(lines, Has.Some.Match(@"^Spent by jobs +\d+\.\d{6}  paid from the pool$"));
        Assert.That(lines, Has.Some.Match(@"^MEMBER +EARNED  SPENT \(POOL PAID\)  OWN BALANCE$"));
        Assert.That(lines, Has.Some.Match($@"^newcomer-box  {_agent.DeviceId}  {Regex.Escape(Email)} +\d+\.\d{{6}} +\d+\.\d s +\d+$"));
        Assert.That(lines, Has.Some.Match(@"^ *# +TIME \(UTC\) +EVENT +CREDITS  ACCOUNT +MEMBER +JOB +DEVICE$"));
        Assert.That(lines, Has.Some.Match($@" job paid +-\d+\.\d{{6}}  pool +{Regex.Escape(Email)}  job_\w+  newcomer-box$"));
        Assert.That(lines, Has.Some.Match($@" device earned +\+\d+\.\d{{6}}  {Regex.Escape(Email)}  {Regex.Escape(Email)}  job_\w+  newcomer-box$"));
        Assert.That(ledger.StandardOutput, Does.Not.Contain("usr_"), "people are named by email, not by id");
    }

    // Item 10: temperature samples (no fixed seed); --seed repeats an answer.
    [Test]
    public async Task Chat_answers_vary_at_temperature_and_repeat_with_a_seed()
    {
        async Task<string> AnswerAsync(params string[] extra)
        {
            var chat = await CliAsync(["run", "chat", "--prompt", "Tell me a story.", "--max-tokens", "24", "--temperature", "0.9", .. extra]);
            Assert.That(chat.ExitCode, Is.Zero, chat.StandardError);
            return chat.StandardOutput.Split('\n')[1];
        }

        var first = await AnswerAsync();
        var second = await AnswerAsync();
        Assert.That(second, Is.Not.EqualTo(first), "two samples at temperature 0.9 without a seed");
        Assert.That(await AnswerAsync("--seed", "7"), Is.EqualTo(await AnswerAsync("--seed", "7")));
    }

    // Item 11: a busy port and a malformed option are one line each, exit code 2, no stack trace.
    [Test]
    public async Task Server_start_up_failures_are_one_line()
    {
        var port = new Uri(_mesh.Url).Port.ToString(CultureInfo.InvariantCulture);
        var data = Directory.CreateTempSubdirectory("meshai-newcomer-busy-").FullName;
        try
        {
            var busy = await RunAsync(ServerDll, ["--data-dir", data, "--port", port]);
            Assert.That(busy.ExitCode, Is.EqualTo(2));
            Assert.That(busy.StandardOutput, Is.Empty);
            Assert.That(busy.StandardError, Is.EqualTo(
                $"error: cannot listen on 127.0.0.1:{port}: the port is already in use (another meshai-server?). " +
                "Stop that process, or start on another port with --port N (or MESHAI_PORT=N)."));

            var malformed = await RunAsync(ServerDll, ["--data-dir", data], new Dictionary<string, string?> { ["MESHAI_PORT"] = "seventy" });
            Assert.That(malformed.ExitCode, Is.EqualTo(2));
            Assert.That(malformed.StandardError, Is.EqualTo("error: --port (or MESHAI_PORT) must be a port number (0 = any free port) between 0 and 65535, got 'seventy'."));
        }
        finally
        {
            DeleteQuietly(data);
        }
    }

    // Item 12: the generated systemd unit passes systemd-analyze verify; install writes it for a joined device.
    [Test]
    public async Task The_agent_service_unit_passes_systemd_analyze_verify()
    {
        var units = Directory.CreateTempSubdirectory("meshai-newcomer-unit-").FullName;
        try
        {
            var notJoined = await RunAsync(AgentDll, ["service", "install", "--system", "--state-dir", Path.Combine(units, "nobody"), "--unit-dir", units]);
            Assert.That(notJoined.ExitCode, Is.EqualTo(2));
            Assert.That(notJoined.StandardError, Does.StartWith("error: this device has not joined a network"));

            var installed = await RunAsync(AgentDll, ["service", "install", "--system", "--state-dir", _agent.StateDirectory, "--unit-dir", units, "--model-dir", Path.Combine(_agent.StateDirectory, "models", "embeddings")]);
            Assert.That(installed.ExitCode, Is.Zero, installed.StandardError);
            var unitPath = Path.Combine(units, "meshai-agent.service");
            Assert.That(installed.StandardOutput.Split('\n')[0], Is.EqualTo("Wrote " + unitPath));
            var unit = await File.ReadAllTextAsync(unitPath);
            Assert.That(unit, Does.Contain($"ExecStart={ProcessRunner.DotnetHostPath} {AgentDll} run --state-dir {_agent.StateDirectory} --model-dir "));
            Assert.That(unit, Does.Contain("Restart=on-failure").And.Contain("RestartPreventExitStatus=2 3").And.Contain("WantedBy=multi-user.target"));

            var verify = await RunAsync("systemd-analyze", ["verify", unitPath]);
            Assert.That(verify.ExitCode, Is.Zero, verify.StandardOutput + verify.StandardError);
            Assert.That(verify.StandardError, Does.Not.Contain("meshai-agent.service"), "no warning about the unit");
        }
        finally
        {
            DeleteQuietly(units);
        }
    }

    // Item 12: the published bundle installs and runs on a machine without the repository or .NET (no dotnet on PATH,
    // a scrubbed environment), joins, goes online, runs a pinned job, and its service unit verifies.
    [Test]
    public async Task The_agent_bundle_installs_joins_and_runs_without_the_repository_or_dotnet()
    {
        var work = Directory.CreateTempSubdirectory("meshai-newcomer-bundle-").FullName;
        ProcessRunner? agent = null;
        try
        {
            // A self-contained publish: minutes on a busy 2-core machine.
            var package = await RunAsync("bash", [RepoPaths.Combine("scripts", "package-agent.sh"), "--out", Path.Combine(work, "dist")], timeout: TimeSpan.FromMinutes(10));
            Assert.That(package.ExitCode, Is.Zero, package.StandardOutput + package.StandardError);
            var tarball = Path.Combine(work, "dist", "meshai-agent-linux-x64.tar.gz");
            Assert.That(package.StandardOutput, Does.Match($@"==> Wrote {Regex.Escape(tarball)} \(\d+ MB\)"));

            var machine = Path.Combine(work, "second-machine");
            Directory.CreateDirectory(machine);
            Assert.That((await RunAsync("tar", ["-xzf", tarball, "-C", machine])).ExitCode, Is.Zero);
            var prefix = Path.Combine(machine, "opt", "meshai-agent");
            var state = Path.Combine(machine, "state");
            var bin = Path.Combine(machine, "bin");
            // The second machine's PATH holds the few tools install.sh uses and no dotnet.
            var tools = Path.Combine(machine, "tools");
            Directory.CreateDirectory(tools);
            foreach (var tool in new[] { "sh", "dirname", "id", "rm", "mkdir", "cp", "mv", "ln", "hostname", "cat" })
            {
                File.CreateSymbolicLink(Path.Combine(tools, tool), (await RunAsync("bash", ["-c", "command -v " + tool])).StandardOutput.Trim());
            }

            string[] scrubbed = ["-i", "HOME=" + machine, "PATH=" + tools, "MESHAI_AGENT_PREFIX=" + prefix, "MESHAI_AGENT_STATE=" + state, "MESHAI_BIN_DIR=" + bin];

            var install = await RunAsync("env", [.. scrubbed, Path.Combine(tools, "sh"), Path.Combine(machine, "meshai-agent", "install.sh"), "--user", "--no-service", await JoinLinkAsync()]);
            Assert.That(install.ExitCode, Is.Zero, install.StandardOutput + install.StandardError);
            var installed = Path.Combine(prefix, "meshai-agent");
            Assert.That(install.StandardOutput, Does.Contain($"    {bin}/meshai-agent → {installed}"));
            var deviceId = Regex.Match(install.StandardOutput, @"MESHAI_AGENT_JOINED device_id=(dev_\w+)").Groups[1].Value;
            Assert.That(deviceId, Is.Not.Empty, install.StandardOutput);
            Assert.That(File.Exists(Path.Combine(prefix, "libcoreclr.so")), Is.True, "self-contained: the .NET runtime is in the bundle");

            agent = ProcessRunner.Start(new ProcessRunnerOptions
            {
                FileName = "env",
                Arguments = [.. scrubbed, Path.Combine(bin, "meshai-agent"), "run", "--state-dir", state],
                Name = "bundled-agent",
            });
            await agent.WaitForLineAsync("MESHAI_AGENT_ONLINE", TimeSpan.FromSeconds(90));
            var echo = await CliAsync("run", "echo", "--data", "from the bundle", "--routing", "pinned_device", "--device", deviceId);
            Assert.That(echo.ExitCode, Is.Zero, echo.StandardError);
            Assert.That(echo.StandardOutput, Is.EqualTo("from the bundle"));

            var unit = await RunAsync("env", [.. scrubbed, installed, "service", "install", "--system", "--state-dir", state, "--unit-dir", Path.Combine(machine, "units")]);
            Assert.That(unit.ExitCode, Is.Zero, unit.StandardError);
            var unitPath = Path.Combine(machine, "units", "meshai-agent.service");
            Assert.That(await File.ReadAllTextAsync(unitPath), Does.Contain($"ExecStart={installed} run --state-dir {state}\n"));
            var verify = await RunAsync("systemd-analyze", ["verify", unitPath]);
            Assert.That(verify.ExitCode, Is.Zero, verify.StandardOutput + verify.StandardError);
        }
        finally
        {
            if (agent is not null)
            {
                await agent.DisposeAsync();
            }

            DeleteQuietly(work);
        }
    }

    private async Task<int> EventCountAsync(LedgerService.LedgerServiceClient ledger) =>
        (await ledger.ListLedgerEventsAsync(new ListLedgerEventsRequest { NetworkId = _networkId, PageSize = 1000 })).Events.Count;

    private async Task<string> JoinLinkAsync()
    {
        var join = await CliAsync("device", "join", "--network", _networkId, "--json");
        Assert.That(join.ExitCode, Is.Zero, join.StandardError);
        return JsonDocument.Parse(join.StandardOutput).RootElement.GetProperty("joinLink").GetString()!;
    }

    private Task<CliResult> CliAsync(params string[] args) =>
        RunAsync(CliDll, args, new Dictionary<string, string?> { ["MESHAI_CLI_CONFIG"] = _cliConfig });

    // A real process to completion; a .dll runs on the dotnet host.
    private static async Task<CliResult> RunAsync(string program, IReadOnlyList<string> args, IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        var dll = program.EndsWith(".dll", StringComparison.Ordinal);
        await using var run = await ProcessRunner.RunAsync(
            new ProcessRunnerOptions
            {
                FileName = dll ? ProcessRunner.DotnetHostPath : program,
                Arguments = dll ? [program, .. args] : args,
                Environment = environment,
                Name = Path.GetFileNameWithoutExtension(program),
            },
            timeout ?? TimeSpan.FromSeconds(120));
        return new CliResult(run.ExitCode ?? -1, run.StandardOutputText, run.StandardErrorText);
    }

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

using System.Text.Json;
using MeshAI.Common.Transport;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.Integration.Tests.Relay;

/// <summary>
/// The runtime settings that keep a heartbeat at one frame each way (issue #11, docs/benchmarks.md "Heartbeat cost on the
/// wire"): the built agent turns off SocketsHttpHandler's RTT-probe PINGs (one per heartbeat acknowledgement, each answered by
/// the relay) and keeps a fixed stream window large enough for payloads; the built server's idle thread-pool workers park
/// instead of spinning in sched_yield. They live in the csproj files (runtimeconfig), so a test reads what the build wrote.
/// </summary>
[TestFixture]
[Category("Integration")]
public sealed class HeartbeatWireSettingsTests
{
    [Test]
    public void The_built_agent_sends_no_rtt_probe_pings_and_keeps_a_large_fixed_stream_window()
    {
        var properties = ConfigProperties("agent/MeshAI.Agent", "meshai-agent");
        Assert.That(properties.GetProperty("System.Net.SocketsHttpHandler.Http2FlowControl.DisableDynamicWindowSizing").GetBoolean(), Is.True);

        using var handler = GrpcChannels.PinnedHandler(null);
        Assert.That(handler.InitialHttp2StreamWindowSize, Is.EqualTo(GrpcChannels.StreamWindowBytes));
        Assert.That(GrpcChannels.StreamWindowBytes, Is.GreaterThanOrEqualTo(4 * 1024 * 1024), "a fixed window bounds a stream's throughput to window / round trip");
    }

    [Test]
    public void The_built_server_parks_idle_thread_pool_workers_instead_of_spinning()
    {
        var properties = ConfigProperties("services/MeshAI.Server", "meshai-server");
        Assert.That(properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").ToString(), Is.EqualTo("0"));
    }

    private static JsonElement ConfigProperties(string project, string assembly)
    {
        var runtimeConfig = Path.ChangeExtension(RepoPaths.BuiltAssembly(project, assembly), ".runtimeconfig.json");
        using var document = JsonDocument.Parse(File.ReadAllText(runtimeConfig));
        return document.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties").Clone();
    }
}

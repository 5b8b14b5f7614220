using MeshAI.Agent.Models;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

/// <summary>
/// How a running agent answers pushed model-manifest changes: one fetch at a time, a change that arrives during a fetch
/// runs it once more (never lost, never two at once), an installed model is reported once, a failure never stops it.
/// </summary>
[TestFixture]
[Category("Unit")]
public sealed class PushedModelSyncTests
{
    [Test]
    public async Task Changes_during_a_fetch_run_it_once_more_and_an_install_is_reported_once()
    {
        using var stopping = new CancellationTokenSource();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new SemaphoreSlim(0);
        var runs = 0;
        var concurrent = 0;
        var maxConcurrent = 0;
        var installed = 0;
        var sync = new PushedModelSync(async ct =>
        {
            var now = Interlocked.Increment(ref concurrent);
            maxConcurrent = Math.Max(maxConcurrent, now);
            var run = Interlocked.Increment(ref runs);
            started.Release();
            if (run == 1)
            {
                await release.Task.WaitAsync(ct);
            }

            Interlocked.Decrement(ref concurrent);
            return run == 2;
        }, stopping.Token)
        {
            Installed = () => Interlocked.Increment(ref installed),
        };

        sync.Request();
        Assert.That(await started.WaitAsync(TimeSpan.FromSeconds(10)), Is.True);
        sync.Request();
        sync.Request(); // coalesced with the one before: one more run, not two
        release.SetResult();
        Assert.That(await started.WaitAsync(TimeSpan.FromSeconds(10)), Is.True);
        await sync.StopAsync();

        Assert.That(runs, Is.EqualTo(2));
        Assert.That(maxConcurrent, Is.EqualTo(1));
        Assert.That(installed, Is.EqualTo(1));
        Assert.That(sync.ChangePending, Is.True);
        Assert.That(sync.TakeChanged(), Is.True);
        Assert.That(sync.TakeChanged(), Is.False);
    }

    [Test]
    public async Task A_failed_fetch_is_reported_and_the_next_change_fetches_again()
    {
        using var stopping = new CancellationTokenSource();
        var runs = 0;
        var failures = new List<string>();
        var sync = new PushedModelSync(_ =>
        {
            if (Interlocked.Increment(ref runs) == 1)
            {
                throw new IOException("model cache unreadable");
            }

            return Task.FromResult(true);
        }, stopping.Token)
        {
            Failed = ex => failures.Add(ex.Message),
        };

        sync.Request();
        await sync.StopAsync();
        Assert.That(failures.Single(), Is.EqualTo("model cache unreadable"));
        Assert.That(sync.ChangePending, Is.False);

        sync.Request();
        await sync.StopAsync();
        Assert.That(runs, Is.EqualTo(2));
        Assert.That(sync.TakeChanged(), Is.True);
    }
}

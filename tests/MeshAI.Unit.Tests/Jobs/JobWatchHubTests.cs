using Google.Protobuf;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Jobs;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Jobs;

[Category("Unit")]
public sealed class JobWatchHubTests
{
    private static WatchJobResponse Token(int index) =>
        new() { Token = new JobTokenFrame { Index = index, Token = ByteString.CopyFromUtf8("t" + index) } };

    [Test]
    public void HasWatchers_is_true_only_while_a_watcher_is_subscribed_to_that_job()
    {
        var hub = new JobWatchHub();
        Assert.That(hub.HasWatchers("job_a"), Is.False, "nobody subscribed: a non-terminal status need not be built");
        using (hub.Subscribe("job_a"))
        {
            Assert.That(hub.HasWatchers("job_a"), Is.True);
            Assert.That(hub.HasWatchers("job_b"), Is.False);
        }

        Assert.That(hub.HasWatchers("job_a"), Is.False, "the watcher left");
    }

    [Test]
    public void A_watcher_that_subscribes_after_the_first_tokens_still_receives_them_in_order()
    {
        var hub = new JobWatchHub();
        hub.Publish("job_a", Token(0));
        hub.Publish("job_a", Token(1));
        using var late = hub.Subscribe("job_a");
        hub.Publish("job_a", Token(2));

        var indexes = new List<int>();
        while (late.Frames.TryRead(out var frame))
        {
            indexes.Add(frame.Token.Index);
        }

        Assert.That(indexes, Is.EqualTo(Enumerable.Range(0, 3)));
    }

    [Test]
    public void After_the_terminal_frame_nothing_is_replayed_and_other_jobs_are_not_mixed_in()
    {
        var hub = new JobWatchHub();
        hub.Publish("job_a", Token(0));
        hub.Publish("job_b", Token(7));
        hub.Publish("job_a", new WatchJobResponse { Result = new JobResultFrame() });
        using var after = hub.Subscribe("job_a");
        Assert.That(after.Frames.TryRead(out _), Is.False, "the store replays a finished job, not the hub");

        using var other = hub.Subscribe("job_b");
        Assert.That(other.Frames.TryRead(out var frame), Is.True);
        Assert.That(frame!.Token.Index, Is.EqualTo(7));
    }
}

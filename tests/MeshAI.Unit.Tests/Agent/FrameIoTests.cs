using System.Buffers.Binary;
using Google.Protobuf;
using MeshAI.Agent.Sandbox;
using MeshAI.Agent.Sandbox.V1;
using MeshAI.Contracts.Job.V1;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

/// <summary>The worker pipe's framing (pooled buffers, buffered reads): frames of every size round-trip, bad frames are refused.</summary>
[TestFixture]
[Category("Unit")]
public sealed class FrameIoTests
{
    [Test]
    public async Task Frames_of_every_size_round_trip_through_a_buffered_reader_in_order()
    {
        // Sizes around the read buffer (64 KiB) and an embeddings-sized result; rented buffers are larger than the frame.
        int[] sizes = [0, 1, 100, FrameIo.ReadBufferBytes - 8, FrameIo.ReadBufferBytes, FrameIo.ReadBufferBytes + 3, 98_304, 300_000];
        var pipe = new MemoryStream();
        foreach (var size in sizes)
        {
            var output = new WorkloadOutput { Echo = new EchoOutput { Data = ByteString.CopyFrom(Pattern(size)) } };
            await FrameIo.WriteAsync(pipe, new WorkerEvent { JobId = "job-" + size, Result = output.ToByteString() }, CancellationToken.None);
        }

        pipe.Position = 0;
        using var reader = FrameIo.Buffered(new TrickleStream(pipe));
        foreach (var size in sizes)
        {
            var frame = await FrameIo.ReadAsync(reader, WorkerEvent.Parser, CancellationToken.None);
            Assert.That(frame, Is.Not.Null);
            Assert.That(frame!.JobId, Is.EqualTo("job-" + size));
            var data = WorkloadOutput.Parser.ParseFrom(frame.Result).Echo.Data.ToByteArray();
            Assert.That(data.AsSpan().SequenceEqual(Pattern(size)), Is.True, $"frame of {size} bytes");
        }

        Assert.That(await FrameIo.ReadAsync(reader, WorkerEvent.Parser, CancellationToken.None), Is.Null, "a clean end of stream reads as null");
    }

    [Test]
    public async Task A_parsed_frame_keeps_its_bytes_after_the_pooled_buffer_is_reused()
    {
        var pipe = new MemoryStream();
        await FrameIo.WriteAsync(pipe, new WorkerEvent { JobId = "a", Result = ByteString.CopyFrom(Enumerable.Repeat((byte)0xAA, 5000).ToArray()) }, CancellationToken.None);
        await FrameIo.WriteAsync(pipe, new WorkerEvent { JobId = "b", Result = ByteString.CopyFrom(Enumerable.Repeat((byte)0x55, 5000).ToArray()) }, CancellationToken.None);
        pipe.Position = 0;
        var first = await FrameIo.ReadAsync(pipe, WorkerEvent.Parser, CancellationToken.None);
        var second = await FrameIo.ReadAsync(pipe, WorkerEvent.Parser, CancellationToken.None);
        Assert.That(first!.Result.ToByteArray().All(b => b == 0xAA), Is.True, "the first frame's bytes survive the second read");
        Assert.That(second!.Result.ToByteArray().All(b => b == 0x55), Is.True);
    }

    [Test]
    public void A_length_out_of_range_or_a_truncated_frame_is_refused()
    {
        var negative = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(negative, -1);
        Assert.ThrowsAsync<InvalidDataException>(() => FrameIo.ReadAsync(new MemoryStream(negative), WorkerEvent.Parser, CancellationToken.None));

        var huge = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(huge, FrameIo.MaxFrameBytes + 1);
        Assert.ThrowsAsync<InvalidDataException>(() => FrameIo.ReadAsync(new MemoryStream(huge), WorkerEvent.Parser, CancellationToken.None));

        var truncated = new byte[4 + 10];
        BinaryPrimitives.WriteInt32LittleEndian(truncated, 100);
        Assert.ThrowsAsync<EndOfStreamException>(() => FrameIo.ReadAsync(new MemoryStream(truncated), WorkerEvent.Parser, CancellationToken.None));

        Assert.ThrowsAsync<EndOfStreamException>(() => FrameIo.ReadAsync(new MemoryStream([1, 0]), WorkerEvent.Parser, CancellationToken.None), "a stream that ends inside the header");
    }

    private static byte[] Pattern(int size)
    {
        var bytes = new byte[size];
        for (var i = 0; i < size; i++)
        {
            bytes[i] = (byte)((i * 7) + size);
        }

        return bytes;
    }

    /// <summary>A pipe that hands out at most 7,000 bytes per read, as a real pipe does with large frames.</summary>
    private sealed class TrickleStream(Stream inner) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, Math.Min(count, 7000));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            inner.ReadAsync(buffer[..Math.Min(buffer.Length, 7000)], cancellationToken);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

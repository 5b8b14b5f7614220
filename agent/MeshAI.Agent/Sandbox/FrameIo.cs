using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;

namespace MeshAI.Agent.Sandbox;

/// <summary>
/// Length-prefixed protobuf frames (4-byte little-endian length, then the message) over a pipe. Frames are encoded into and
/// read from buffers rented from <see cref="ArrayPool{T}.Shared"/> (a parsed message copies its bytes fields out of the
/// buffer, so the buffer goes back to the pool as soon as the message is parsed): an embeddings result (~100 KB of packed
/// floats) no longer allocates two large-object-heap arrays per hop on each side (issue #11). Wrap a raw pipe in
/// <see cref="Buffered"/> so that a small frame's header and body arrive in one read.
/// </summary>
public static class FrameIo
{
    /// <summary>Largest frame accepted (an OCR image or WAV chunk travels inline).</summary>
    public const int MaxFrameBytes = 256 * 1024 * 1024;

    /// <summary>Read buffer of <see cref="Buffered"/>: the pipe's capacity on Linux.</summary>
    public const int ReadBufferBytes = 64 * 1024;

    /// <summary>A read-side buffer over a pipe: one read syscall (and one async completion) per small frame instead of two.</summary>
    public static Stream Buffered(Stream pipe) => new BufferedStream(pipe, ReadBufferBytes);

    /// <summary>Writes one frame (one write of header and body together) and flushes.</summary>
    public static async Task WriteAsync(Stream stream, IMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var (frame, count) = Encode(message);
        try
        {
            await stream.WriteAsync(frame.AsMemory(0, count), cancellationToken);
            await stream.FlushAsync(cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    /// <summary>
    /// Writes one frame synchronously (one write of header and body together) and flushes: the worker's side, whose
    /// stdout is a console stream whose async writes would each take a thread-pool hop.
    /// </summary>
    public static void Write(Stream stream, IMessage message)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var (frame, count) = Encode(message);
        try
        {
            stream.Write(frame, 0, count);
            stream.Flush();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    /// <summary>
    /// Reads one frame synchronously; null at a clean end of stream. The worker's side: its one frame-reading thread blocks
    /// in read(2) and is woken by the kernel, no thread-pool hop per read.
    /// </summary>
    public static T? Read<T>(Stream stream, MessageParser<T> parser)
        where T : class, IMessage<T>
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(parser);
        Span<byte> header = stackalloc byte[4];
        if (!Fill(stream, header))
        {
            return null;
        }

        var length = CheckedLength(header);
        var body = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            if (!Fill(stream, body.AsSpan(0, length)))
            {
                throw new EndOfStreamException("stream ended inside a frame");
            }

            return parser.ParseFrom(body.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(body);
        }
    }

    /// <summary>Reads one frame; null at a clean end of stream.</summary>
    public static async Task<T?> ReadAsync<T>(Stream stream, MessageParser<T> parser, CancellationToken cancellationToken)
        where T : class, IMessage<T>
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(parser);
        var header = ArrayPool<byte>.Shared.Rent(4);
        int length;
        try
        {
            if (!await FillAsync(stream, header.AsMemory(0, 4), cancellationToken))
            {
                return null;
            }

            length = CheckedLength(header);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(header);
        }

        var body = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            if (!await FillAsync(stream, body.AsMemory(0, length), cancellationToken))
            {
                throw new EndOfStreamException("stream ended inside a frame");
            }

            return parser.ParseFrom(new ReadOnlySequence<byte>(body, 0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(body);
        }
    }

    /// <summary>The frame (header + body) in a rented buffer, and its length; the caller returns the buffer.</summary>
    private static (byte[] Frame, int Count) Encode(IMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var length = message.CalculateSize();
        if (length > MaxFrameBytes)
        {
            throw new InvalidDataException($"frame length {length} is out of range");
        }

        var frame = ArrayPool<byte>.Shared.Rent(4 + length);
        BinaryPrimitives.WriteInt32LittleEndian(frame, length);
        message.WriteTo(frame.AsSpan(4, length));
        return (frame, 4 + length);
    }

    private static int CheckedLength(ReadOnlySpan<byte> header)
    {
        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        return length is < 0 or > MaxFrameBytes ? throw new InvalidDataException($"frame length {length} is out of range") : length;
    }

    private static bool Fill(Stream stream, Span<byte> buffer)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = stream.Read(buffer[read..]);
            if (n == 0)
            {
                return read == 0 && buffer.Length > 0 ? false : throw new EndOfStreamException("stream ended inside a frame");
            }

            read += n;
        }

        return true;
    }

    private static async Task<bool> FillAsync(Stream stream, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer[read..], cancellationToken);
            if (n == 0)
            {
                return read == 0 && buffer.Length > 0 ? false : throw new EndOfStreamException("stream ended inside a frame");
            }

            read += n;
        }

        return true;
    }
}

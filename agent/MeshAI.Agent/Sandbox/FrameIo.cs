using System.Buffers.Binary;
using Google.Protobuf;

namespace MeshAI.Agent.Sandbox;

/// <summary>Length-prefixed protobuf frames (4-byte little-endian length, then the message) over a pipe.</summary>
public static class FrameIo
{
    /// <summary>Largest frame accepted (an OCR image or WAV chunk travels inline).</summary>
    public const int MaxFrameBytes = 256 * 1024 * 1024;

    /// <summary>Writes one frame and flushes.</summary>
    public static async Task WriteAsync(Stream stream, IMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(message);
        var body = message.ToByteArray();
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteInt32LittleEndian(frame, body.Length);
        body.CopyTo(frame, 4);
        await stream.WriteAsync(frame, cancellationToken);
        await stream.FlushAsync(cancellationToken);
    }

    /// <summary>Reads one frame; null at a clean end of stream.</summary>
    public static async Task<T?> ReadAsync<T>(Stream stream, MessageParser<T> parser, CancellationToken cancellationToken)
        where T : class, IMessage<T>
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(parser);
        var header = new byte[4];
        if (!await FillAsync(stream, header, cancellationToken))
        {
            return null;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        if (length is < 0 or > MaxFrameBytes)
        {
            throw new InvalidDataException($"frame length {length} is out of range");
        }

        var body = new byte[length];
        if (!await FillAsync(stream, body, cancellationToken))
        {
            throw new EndOfStreamException("stream ended inside a frame");
        }

        return parser.ParseFrom(body);
    }

    private static async Task<bool> FillAsync(Stream stream, byte[] buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(read), cancellationToken);
            if (n == 0)
            {
                return read == 0 && buffer.Length > 0 ? false : throw new EndOfStreamException("stream ended inside a frame");
            }

            read += n;
        }

        return true;
    }
}

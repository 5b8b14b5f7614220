using System.Buffers.Binary;

namespace MeshAI.Control.Jobs.Chunking;

/// <summary>The format of a PCM WAV file.</summary>
public readonly record struct WavFormat(int Channels, int SampleRate, int BitsPerSample)
{
    /// <summary>Bytes per sample frame (all channels).</summary>
    public int BlockAlign => Channels * (BitsPerSample / 8);

    /// <summary>Bytes per second.</summary>
    public int ByteRate => SampleRate * BlockAlign;
}

/// <summary>
/// Server-side WAV handling for chunked transcription: parse a RIFF/WAVE PCM file, split it into chunk WAVs on sample-frame
/// boundaries, and merge chunk WAVs back (the inverse, used to check a split and to reassemble audio).
/// </summary>
public static class WavAudio
{
    /// <summary>The format and the PCM data of a WAV file; throws <see cref="FormatException"/> when it is not PCM WAV.</summary>
    public static (WavFormat Format, ReadOnlyMemory<byte> Data) Parse(ReadOnlyMemory<byte> wav)
    {
        var span = wav.Span;
        if (span.Length < 12 || !span[..4].SequenceEqual("RIFF"u8) || !span.Slice(8, 4).SequenceEqual("WAVE"u8))
        {
            throw new FormatException("not a RIFF/WAVE file");
        }

        WavFormat? format = null;
        var offset = 12;
        while (offset + 8 <= span.Length)
        {
            var id = span.Slice(offset, 4);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(span.Slice(offset + 4, 4));
            var body = offset + 8;
            if (size > int.MaxValue || body + (long)size > span.Length)
            {
                // Streams written without a final size: take the data to the end of the file.
                size = (uint)(span.Length - body);
            }

            if (id.SequenceEqual("fmt "u8))
            {
                if (size < 16)
                {
                    throw new FormatException("fmt chunk too short");
                }

                var audioFormat = BinaryPrimitives.ReadUInt16LittleEndian(span.Slice(body, 2));
                var channels = BinaryPrimitives.ReadUInt16LittleEndian(span.Slice(body + 2, 2));
                var rate = BinaryPrimitives.ReadInt32LittleEndian(span.Slice(body + 4, 4));
                var bits = BinaryPrimitives.ReadUInt16LittleEndian(span.Slice(body + 14, 2));
                var extensible = audioFormat == 0xFFFE && size >= 26 && BinaryPrimitives.ReadUInt16LittleEndian(span.Slice(body + 24, 2)) == 1;
                if ((audioFormat != 1 && !extensible) || channels == 0 || rate <= 0 || bits == 0 || bits % 8 != 0)
                {
                    throw new FormatException("only integer PCM WAV is supported");
                }

                format = new WavFormat(channels, rate, bits);
            }
            else if (id.SequenceEqual("data"u8))
            {
                if (format is null)
                {
                    throw new FormatException("data chunk before fmt chunk");
                }

                var usable = (int)size - ((int)size % format.Value.BlockAlign);
                return (format.Value, wav.Slice(body, usable));
            }

            offset = body + (int)size + ((int)size & 1);
        }

        throw new FormatException(format is null ? "no fmt chunk" : "no data chunk");
    }

    /// <summary>Duration of PCM data in milliseconds.</summary>
    public static long DurationMs(WavFormat format, int dataBytes) => dataBytes / format.BlockAlign * 1000L / format.SampleRate;

    /// <summary>A canonical 44-byte-header PCM WAV of the data.</summary>
    public static byte[] Write(WavFormat format, ReadOnlySpan<byte> data)
    {
        var wav = new byte[44 + data.Length];
        var s = wav.AsSpan();
        "RIFF"u8.CopyTo(s);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], (uint)(36 + data.Length));
        "WAVE"u8.CopyTo(s[8..]);
        "fmt "u8.CopyTo(s[12..]);
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], 16);
        BinaryPrimitives.WriteUInt16LittleEndian(s[20..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(s[22..], (ushort)format.Channels);
        BinaryPrimitives.WriteInt32LittleEndian(s[24..], format.SampleRate);
        BinaryPrimitives.WriteInt32LittleEndian(s[28..], format.ByteRate);
        BinaryPrimitives.WriteUInt16LittleEndian(s[32..], (ushort)format.BlockAlign);
        BinaryPrimitives.WriteUInt16LittleEndian(s[34..], (ushort)format.BitsPerSample);
        "data"u8.CopyTo(s[36..]);
        BinaryPrimitives.WriteUInt32LittleEndian(s[40..], (uint)data.Length);
        data.CopyTo(s[44..]);
        return wav;
    }

    /// <summary>One piece of a split: its WAV and where it sits in the original.</summary>
    public sealed record Piece(int Index, long StartMs, long EndMs, byte[] Wav);

    /// <summary>Splits a PCM WAV into consecutive pieces of <paramref name="chunkMs"/> (the last one shorter) on frame boundaries.</summary>
    public static IReadOnlyList<Piece> Split(ReadOnlyMemory<byte> wav, int chunkMs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkMs, 1);
        var (format, data) = Parse(wav);
        var framesPerChunk = Math.Max(1, (long)format.SampleRate * chunkMs / 1000);
        var bytesPerChunk = framesPerChunk * format.BlockAlign;
        var pieces = new List<Piece>();
        for (long at = 0, i = 0; at < data.Length || (at == 0 && data.Length == 0); at += bytesPerChunk, i++)
        {
            var length = (int)Math.Min(bytesPerChunk, data.Length - at);
            var startFrame = at / format.BlockAlign;
            var endFrame = (at + length) / format.BlockAlign;
            pieces.Add(new Piece((int)i, startFrame * 1000 / format.SampleRate, endFrame * 1000 / format.SampleRate, Write(format, data.Span.Slice((int)at, length))));
            if (data.Length == 0)
            {
                break;
            }
        }

        return pieces;
    }

    /// <summary>Concatenates WAVs of one format into one (the inverse of <see cref="Split"/>).</summary>
    public static byte[] Merge(IEnumerable<ReadOnlyMemory<byte>> wavs)
    {
        ArgumentNullException.ThrowIfNull(wavs);
        WavFormat? format = null;
        using var data = new MemoryStream();
        foreach (var wav in wavs)
        {
            var (f, d) = Parse(wav);
            if (format is not null && f != format)
            {
                throw new FormatException("cannot merge WAVs of different formats");
            }

            format = f;
            data.Write(d.Span);
        }

        return Write(format ?? throw new FormatException("nothing to merge"), data.GetBuffer().AsSpan(0, (int)data.Length));
    }
}

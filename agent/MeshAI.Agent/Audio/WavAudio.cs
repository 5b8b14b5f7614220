using System.Buffers.Binary;
using System.Text;

namespace MeshAI.Agent.Audio;

/// <summary>Mono PCM samples in [-1, 1] at a sample rate.</summary>
public sealed record PcmAudio(float[] Samples, int SampleRate)
{
    /// <summary>Length in milliseconds.</summary>
    public long DurationMs => SampleRate == 0 ? 0 : Samples.LongLength * 1000 / SampleRate;
}

/// <summary>RIFF/WAVE reading (PCM 8/16/24/32-bit, IEEE float), mono mixing, band-limited resampling, 16-bit writing.</summary>
public static class WavAudio
{
    /// <summary>Decodes a WAV file, mixing all channels to mono.</summary>
    public static PcmAudio Read(ReadOnlySpan<byte> wav)
    {
        if (wav.Length < 12 || !wav[..4].SequenceEqual("RIFF"u8) || !wav.Slice(8, 4).SequenceEqual("WAVE"u8))
        {
            throw new InvalidDataException("not a RIFF/WAVE file");
        }

        int format = 0, channels = 0, rate = 0, bits = 0;
        var offset = 12;
        while (offset + 8 <= wav.Length)
        {
            var id = Encoding.ASCII.GetString(wav.Slice(offset, 4));
            var size = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(wav.Slice(offset + 4, 4)), (uint)(wav.Length - offset - 8));
            var body = wav.Slice(offset + 8, size);
            if (id == "fmt " && size >= 16)
            {
                format = BinaryPrimitives.ReadUInt16LittleEndian(body);
                channels = BinaryPrimitives.ReadUInt16LittleEndian(body[2..]);
                rate = BinaryPrimitives.ReadInt32LittleEndian(body[4..]);
                bits = BinaryPrimitives.ReadUInt16LittleEndian(body[14..]);
                if (format == 0xFFFE && size >= 26)
                {
                    format = BinaryPrimitives.ReadUInt16LittleEndian(body[24..]);
                }
            }
            else if (id == "data")
            {
                if (channels <= 0 || rate <= 0 || bits <= 0)
                {
                    throw new InvalidDataException("WAV data before a valid fmt chunk");
                }

                return new PcmAudio(Decode(body, format, channels, bits), rate);
            }

            offset += 8 + size + (size & 1);
        }

        throw new InvalidDataException("WAV file has no data chunk");
    }

    /// <summary>Resamples with a Hann-windowed sinc low-pass (no aliasing when downsampling).</summary>
    public static PcmAudio Resample(PcmAudio audio, int targetRate)
    {
        ArgumentNullException.ThrowIfNull(audio);
        if (audio.SampleRate == targetRate)
        {
            return audio;
        }

        const int halfTaps = 24;
        var ratio = (double)audio.SampleRate / targetRate;
        var cutoff = 0.95 * Math.Min(1.0, 1.0 / ratio) / 2; // cycles per input sample
        var count = (int)(audio.Samples.LongLength / ratio);
        var output = new float[count];
        var input = audio.Samples;
        for (var i = 0; i < count; i++)
        {
            var center = i * ratio;
            var first = (int)Math.Floor(center) - halfTaps;
            double sum = 0, weight = 0;
            for (var t = first; t <= first + 2 * halfTaps + 1; t++)
            {
                var distance = t - center;
                var sinc = Math.Abs(distance) < 1e-9 ? 2 * cutoff : Math.Sin(2 * Math.PI * cutoff * distance) / (Math.PI * distance);
                var window = Math.Abs(distance) > halfTaps + 1 ? 0 : 0.5 + 0.5 * Math.Cos(Math.PI * distance / (halfTaps + 1));
                var tap = sinc * window;
                weight += tap;
                if ((uint)t < (uint)input.Length)
                {
                    sum += input[t] * tap;
                }
            }

            output[i] = (float)(weight == 0 ? 0 : sum / weight);
        }

        return new PcmAudio(output, targetRate);
    }

    /// <summary>Encodes mono 16-bit PCM WAV.</summary>
    public static byte[] WritePcm16(PcmAudio audio)
    {
        ArgumentNullException.ThrowIfNull(audio);
        var dataBytes = audio.Samples.Length * 2;
        var wav = new byte[44 + dataBytes];
        "RIFF"u8.CopyTo(wav);
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(4), 36 + dataBytes);
        "WAVEfmt "u8.CopyTo(wav.AsSpan(8));
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(16), 16);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(20), 1);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(22), 1);
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(24), audio.SampleRate);
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(28), audio.SampleRate * 2);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(32), 2);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(34), 16);
        "data"u8.CopyTo(wav.AsSpan(36));
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(40), dataBytes);
        for (var i = 0; i < audio.Samples.Length; i++)
        {
            var value = (short)Math.Clamp(Math.Round(audio.Samples[i] * 32767), short.MinValue, short.MaxValue);
            BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(44 + 2 * i), value);
        }

        return wav;
    }

    private static float[] Decode(ReadOnlySpan<byte> data, int format, int channels, int bits)
    {
        var bytesPerSample = bits / 8;
        if (format is not (1 or 3) || bytesPerSample is < 1 or > 4 || (format == 3 && bits != 32))
        {
            throw new InvalidDataException($"unsupported WAV encoding (format {format}, {bits} bits); use PCM or 32-bit float");
        }

        var frames = data.Length / (bytesPerSample * channels);
        var samples = new float[frames];
        for (var f = 0; f < frames; f++)
        {
            double sum = 0;
            for (var c = 0; c < channels; c++)
            {
                var s = data.Slice((f * channels + c) * bytesPerSample, bytesPerSample);
                sum += format == 3 ? BinaryPrimitives.ReadSingleLittleEndian(s) : bytesPerSample switch
                {
                    1 => (s[0] - 128) / 128.0,
                    2 => BinaryPrimitives.ReadInt16LittleEndian(s) / 32768.0,
                    3 => ((s[2] << 24) | (s[1] << 16) | (s[0] << 8)) / 2147483648.0,
                    _ => BinaryPrimitives.ReadInt32LittleEndian(s) / 2147483648.0,
                };
            }

            samples[f] = (float)(sum / channels);
        }

        return samples;
    }
}

using MeshAI.Agent.Audio;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Workloads;

/// <summary>
/// audio_transcribe_chunked, one chunk per job: the WAV blob is mixed to mono, resampled to 16 kHz and decoded by
/// pocketsphinx (Debian pocketsphinx + pocketsphinx-en-us acoustic/language model). Splitting and merging happen
/// on the scheduler side.
/// </summary>
public sealed class TranscribeHandler : IWorkloadHandler
{
    /// <summary>The sample rate the en-us acoustic model was trained at.</summary>
    public const int ModelSampleRate = 16_000;

    /// <summary>Longest chunk accepted (pocketsphinx decodes it in one go).</summary>
    public const long MaxChunkMs = 10 * 60 * 1000;

    private readonly string _pocketsphinx;

    /// <summary>Creates the handler over the pocketsphinx_continuous executable.</summary>
    public TranscribeHandler(string pocketsphinx) => _pocketsphinx = pocketsphinx;

    /// <inheritdoc />
    public WorkloadClass Workload => WorkloadClass.AudioTranscribeChunked;

    /// <inheritdoc />
    public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Transcribe;

    /// <inheritdoc />
    public async Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(context);
        var request = input.Transcribe ?? throw new InvalidWorkloadInputException("transcribe input missing");
        if (!string.IsNullOrEmpty(request.Language) && !request.Language.StartsWith("en", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidWorkloadInputException($"language '{request.Language}' has no pocketsphinx model here (en-us only)");
        }

        var name = !string.IsNullOrEmpty(request.AudioBlob) ? request.AudioBlob : context.Blobs.Count == 1 ? context.Blobs[0].Name : "audio";
        var bytes = context.RequireBlob(name);
        PcmAudio audio;
        try
        {
            audio = WavAudio.Read(bytes);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidWorkloadInputException("the audio is not a readable WAV file: " + ex.Message, ex);
        }

        if (audio.DurationMs > MaxChunkMs)
        {
            throw new InvalidWorkloadInputException($"chunk is {audio.DurationMs} ms; at most {MaxChunkMs} ms per chunk");
        }

        var resampled = await Task.Run(() => WavAudio.Resample(audio, ModelSampleRate), cancellationToken);
        var path = Path.Combine(context.WorkDirectory, "chunk-16k.wav");
        await File.WriteAllBytesAsync(path, WavAudio.WritePcm16(resampled), cancellationToken);
        await context.ReportProgressAsync(0.2, "audio decoded", cancellationToken);
        var (code, stdout, stderr) = await Executables.RunAsync(_pocketsphinx, ["-infile", path, "-samprate", "16000", "-logfn", "/dev/null"], context.WorkDirectory, cancellationToken);
        if (code != 0)
        {
            throw new InvalidOperationException($"pocketsphinx exited with {code}: {stderr.Trim()}");
        }

        var text = string.Join(' ', stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        var output = new TranscribeOutput { Text = text };
        output.Segments.Add(new TranscriptSegment { ChunkIndex = 0, StartMs = 0, EndMs = audio.DurationMs, Text = text });
        await context.ReportProgressAsync(1, "transcribed", cancellationToken);
        return new WorkloadOutput { Transcribe = output };
    }
}

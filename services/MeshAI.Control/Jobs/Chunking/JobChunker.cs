using Google.Protobuf;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Relay.V1;

namespace MeshAI.Control.Jobs.Chunking;

/// <summary>One chunk of a chunked job: its id (job_id + chunk_id is the idempotency key), its payload, and where it sits.</summary>
public sealed record JobChunk(string ChunkId, int Index, ChunkPayload Payload, long StartMs, long EndMs, int FirstItem, int ItemCount);

/// <summary>
/// Splits chunkable workloads (spec retries_and_chunking.chunkable_workloads) into chunks: batch_jobs_eval_or_synth one
/// item per chunk (grouped evenly above <see cref="MaxChunks"/>); audio_transcribe_chunked by cutting the inline WAV blob
/// into chunk_ms pieces. End-to-end encrypted payloads are not split (only the devices can read them).
/// </summary>
public static class JobChunker
{
    /// <summary>Most chunks one job is split into.</summary>
    public const int MaxChunks = 64;

    /// <summary>Audio chunk length when the input does not say.</summary>
    public const int DefaultAudioChunkMs = 30_000;

    /// <summary>Shortest audio chunk accepted.</summary>
    public const int MinAudioChunkMs = 1_000;

    /// <summary>True for the spec's chunkable workload classes.</summary>
    public static bool IsChunkable(WorkloadClass workload) =>
        workload is WorkloadClass.AudioTranscribeChunked or WorkloadClass.BatchJobsEvalOrSynth;

    /// <summary>Chunk id of the chunk at <paramref name="index"/>.</summary>
    public static string ChunkId(int index) => "c" + index.ToString("D4", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The chunks of the job, or null when it runs as one piece.</summary>
    public static IReadOnlyList<JobChunk>? Split(JobEnvelope envelope, WorkloadInput? input)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        if (input is null || !IsChunkable(envelope.WorkloadId))
        {
            return null;
        }

        return input.InputCase switch
        {
            WorkloadInput.InputOneofCase.Batch => SplitBatch(input.Batch),
            WorkloadInput.InputOneofCase.Transcribe => SplitAudio(envelope, input.Transcribe),
            _ => null,
        };
    }

    private static List<JobChunk>? SplitBatch(BatchInput batch)
    {
        var items = batch.Items.Count;
        if (items == 0)
        {
            return null;
        }

        var chunks = Math.Min(items, MaxChunks);
        var list = new List<JobChunk>(chunks);
        var at = 0;
        for (var i = 0; i < chunks; i++)
        {
            var take = (items / chunks) + (i < items % chunks ? 1 : 0);
            var input = new WorkloadInput { Batch = new BatchInput { Operation = batch.Operation, Items = { batch.Items.Skip(at).Take(take) } } };
            list.Add(new JobChunk(ChunkId(i), i, new ChunkPayload { ChunkId = ChunkId(i), ChunkIndex = i, ChunkCount = chunks, Payload = input.ToByteString() }, 0, 0, at, take));
            at += take;
        }

        return list;
    }

    private static List<JobChunk>? SplitAudio(JobEnvelope envelope, TranscribeInput transcribe)
    {
        var blob = envelope.InputManifest?.Blobs.FirstOrDefault(b => b.Name == transcribe.AudioBlob);
        if (blob is null || blob.SourceCase != Blob.SourceOneofCase.InlineData)
        {
            return null; // a referenced blob is fetched by the device itself: run as one piece
        }

        var chunkMs = transcribe.ChunkMs > 0 ? Math.Max(MinAudioChunkMs, transcribe.ChunkMs) : DefaultAudioChunkMs;
        var (format, data) = WavAudio.Parse(blob.InlineData.Memory);
        var totalMs = WavAudio.DurationMs(format, data.Length);
        var pieceMs = (int)Math.Max(chunkMs, (totalMs + MaxChunks - 1) / MaxChunks);
        var pieces = WavAudio.Split(blob.InlineData.Memory, pieceMs);
        return pieces.Select(p =>
        {
            var name = $"chunk-{p.Index:D4}.wav";
            var input = new WorkloadInput { Transcribe = new TranscribeInput { AudioBlob = name, Language = transcribe.Language } };
            var payload = new ChunkPayload
            {
                ChunkId = ChunkId(p.Index), ChunkIndex = p.Index, ChunkCount = pieces.Count, Payload = input.ToByteString(),
                Blobs = { new Blob { Name = name, ContentType = "audio/wav", InlineData = ByteString.CopyFrom(p.Wav), Sha256 = Secrets.Sha256Hex(p.Wav), SizeBytes = p.Wav.Length } },
            };
            return new JobChunk(ChunkId(p.Index), p.Index, payload, p.StartMs, p.EndMs, 0, 0);
        }).ToList();
    }

    /// <summary>The envelope chunk offers carry: the chunk payload replaces the envelope's payload and blobs, so they are left out.</summary>
    public static JobEnvelope ChunkEnvelope(JobEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        var copy = envelope.Clone();
        copy.InputManifest ??= new InputManifest();
        copy.InputManifest.Payload = ByteString.Empty;
        copy.InputManifest.PayloadSha256 = "";
        copy.InputManifest.Blobs.Clear();
        return copy;
    }

    /// <summary>
    /// The job's result from its chunks' results in chunk order: batch results concatenated; transcripts joined, segments
    /// shifted to the chunk's offset in the original audio.
    /// </summary>
    public static WorkloadOutput Assemble(WorkloadClass workload, IReadOnlyList<JobChunk> chunks, IReadOnlyList<WorkloadOutput> outputs)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        ArgumentNullException.ThrowIfNull(outputs);
        if (chunks.Count != outputs.Count)
        {
            throw new ArgumentException("one output per chunk", nameof(outputs));
        }

        if (workload == WorkloadClass.BatchJobsEvalOrSynth)
        {
            var batch = new BatchOutput();
            foreach (var o in outputs)
            {
                batch.Results.AddRange(o.Batch?.Results ?? []);
            }

            return new WorkloadOutput { Batch = batch };
        }

        var transcript = new TranscribeOutput();
        var texts = new List<string>();
        for (var i = 0; i < chunks.Count; i++)
        {
            var chunk = chunks[i];
            var part = outputs[i].Transcribe ?? new TranscribeOutput();
            if (!string.IsNullOrWhiteSpace(part.Text))
            {
                texts.Add(part.Text.Trim());
            }

            if (part.Segments.Count == 0 && !string.IsNullOrWhiteSpace(part.Text))
            {
                transcript.Segments.Add(new TranscriptSegment { ChunkIndex = chunk.Index, StartMs = chunk.StartMs, EndMs = chunk.EndMs, Text = part.Text.Trim() });
            }

            foreach (var s in part.Segments)
            {
                transcript.Segments.Add(new TranscriptSegment { ChunkIndex = chunk.Index, StartMs = chunk.StartMs + s.StartMs, EndMs = chunk.StartMs + s.EndMs, Text = s.Text });
            }
        }

        transcript.Text = string.Join(" ", texts);
        return new WorkloadOutput { Transcribe = transcript };
    }
}

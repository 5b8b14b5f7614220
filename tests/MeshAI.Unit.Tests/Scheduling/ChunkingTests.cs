#pragma warning disable CA1861 // expected values read best inline
using Google.Protobuf;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Jobs.Chunking;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Scheduling;

[TestFixture]
[Category("Unit")]
public sealed class ChunkingTests
{
    private static byte[] SineWav(int seconds, int rate = 16_000, int channels = 1)
    {
        var format = new WavFormat(channels, rate, 16);
        var data = new byte[seconds * rate * format.BlockAlign];
        for (var i = 0; i < seconds * rate; i++)
        {
            var sample = (short)(Math.Sin(2 * Math.PI * 440 * i / rate) * 12_000);
            for (var c = 0; c < channels; c++)
            {
                BitConverter.TryWriteBytes(data.AsSpan(((i * channels) + c) * 2), sample);
            }
        }

        return WavAudio.Write(format, data);
    }

    [Test]
    public void A_wav_splits_on_frame_boundaries_and_merges_back_to_the_same_audio()
    {
        var wav = SineWav(7, channels: 2);
        var pieces = WavAudio.Split(wav, 2_000);
        Assert.That(pieces.Select(p => (p.StartMs, p.EndMs)), Is.EqualTo(new[] { (0L, 2000L), (2000L, 4000L), (4000L, 6000L), (6000L, 7000L) }));
        foreach (var p in pieces)
        {
            var (format, data) = WavAudio.Parse(p.Wav);
            Assert.That(format, Is.EqualTo(new WavFormat(2, 16_000, 16)));
            Assert.That(data.Length % format.BlockAlign, Is.Zero);
        }

        var merged = WavAudio.Merge(pieces.Select(p => (ReadOnlyMemory<byte>)p.Wav));
        Assert.That(merged, Is.EqualTo(wav));
    }

    [Test]
    public void Non_pcm_or_truncated_audio_is_refused()
    {
        Assert.Throws<FormatException>(() => WavAudio.Parse(new byte[] { 1, 2, 3 }));
        var wav = SineWav(1);
        wav[20] = 3; // IEEE float
        Assert.Throws<FormatException>(() => WavAudio.Parse(wav));
    }

    [Test]
    public void A_transcription_splits_into_chunk_wavs_carried_as_chunk_blobs_and_transcripts_merge_in_order()
    {
        var wav = SineWav(5);
        var envelope = new JobEnvelope
        {
            JobId = "job_1", WorkloadId = WorkloadClass.AudioTranscribeChunked,
            InputManifest = new InputManifest { Blobs = { new Blob { Name = "audio", InlineData = ByteString.CopyFrom(wav) } } },
        };
        var input = new WorkloadInput { Transcribe = new TranscribeInput { AudioBlob = "audio", ChunkMs = 2_000, Language = "en" } };
        var chunks = JobChunker.Split(envelope, input)!;
        Assert.That(chunks.Select(c => c.ChunkId), Is.EqualTo(new[] { "c0000", "c0001", "c0002" }));
        foreach (var c in chunks)
        {
            var chunkInput = WorkloadInput.Parser.ParseFrom(c.Payload.Payload);
            Assert.That(c.Payload.Blobs.Single().Name, Is.EqualTo(chunkInput.Transcribe.AudioBlob));
            Assert.That(chunkInput.Transcribe.Language, Is.EqualTo("en"));
            Assert.That(c.Payload.ChunkCount, Is.EqualTo(3));
        }

        Assert.That(WavAudio.Merge(chunks.Select(c => (ReadOnlyMemory<byte>)c.Payload.Blobs[0].InlineData.ToByteArray())), Is.EqualTo(wav));
        var chunkEnvelope = JobChunker.ChunkEnvelope(envelope);
        Assert.That(chunkEnvelope.InputManifest.Blobs, Is.Empty, "chunk offers do not carry the whole audio again");

        var outputs = new[]
        {
            new WorkloadOutput { Transcribe = new TranscribeOutput { Text = "hello", Segments = { new TranscriptSegment { StartMs = 100, EndMs = 900, Text = "hello" } } } },
            new WorkloadOutput { Transcribe = new TranscribeOutput { Text = "big" } },
            new WorkloadOutput { Transcribe = new TranscribeOutput { Text = " world " } },
        };
        var merged = JobChunker.Assemble(WorkloadClass.AudioTranscribeChunked, chunks, outputs).Transcribe;
        Assert.That(merged.Text, Is.EqualTo("hello big world"));
        Assert.That(merged.Segments.Select(s => (s.ChunkIndex, s.StartMs, s.EndMs)), Is.EqualTo(new[] { (0, 100L, 900L), (1, 2000L, 4000L), (2, 4000L, 5000L) }));
    }

    [Test]
    public void A_batch_splits_one_item_per_chunk_and_results_assemble_in_item_order()
    {
        var input = new WorkloadInput { Batch = new BatchInput { Operation = "upper", Items = { "a", "b", "c" } } };
        var chunks = JobChunker.Split(new JobEnvelope { WorkloadId = WorkloadClass.BatchJobsEvalOrSynth }, input)!;
        Assert.That(chunks, Has.Count.EqualTo(3));
        Assert.That(chunks.Select(c => WorkloadInput.Parser.ParseFrom(c.Payload.Payload).Batch.Items.Single()), Is.EqualTo(new[] { "a", "b", "c" }));
        var outputs = chunks.Select(c => new WorkloadOutput { Batch = new BatchOutput { Results = { WorkloadInput.Parser.ParseFrom(c.Payload.Payload).Batch.Items[0].ToUpperInvariant() } } }).ToList();
        Assert.That(JobChunker.Assemble(WorkloadClass.BatchJobsEvalOrSynth, chunks, outputs).Batch.Results, Is.EqualTo(new[] { "A", "B", "C" }));

        var many = new WorkloadInput { Batch = new BatchInput { Operation = "echo", Items = { Enumerable.Range(0, 200).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)) } } };
        var grouped = JobChunker.Split(new JobEnvelope { WorkloadId = WorkloadClass.BatchJobsEvalOrSynth }, many)!;
        Assert.That(grouped, Has.Count.EqualTo(JobChunker.MaxChunks));
        Assert.That(grouped.SelectMany(c => WorkloadInput.Parser.ParseFrom(c.Payload.Payload).Batch.Items), Is.EqualTo(many.Batch.Items));
    }

    [Test]
    public void Unchunkable_workloads_are_not_split()
    {
        Assert.That(JobChunker.Split(new JobEnvelope { WorkloadId = WorkloadClass.Embeddings }, new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { "x" } } }), Is.Null);
        Assert.That(JobChunker.Split(new JobEnvelope { WorkloadId = WorkloadClass.BatchJobsEvalOrSynth }, null), Is.Null, "encrypted payloads stay whole");
    }

    [Test]
    public void The_batch_handler_applies_its_operations()
    {
        Assert.That(MeshAI.Agent.Workloads.BatchHandler.Apply("upper", "abc"), Is.EqualTo("ABC"));
        Assert.That(MeshAI.Agent.Workloads.BatchHandler.Apply("reverse", "abc"), Is.EqualTo("cba"));
        Assert.That(MeshAI.Agent.Workloads.BatchHandler.Apply("sha256", "abc"), Is.EqualTo("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        Assert.That(MeshAI.Agent.Workloads.BatchHandler.Parse("upper:delay=250"), Is.EqualTo(("upper", 250)));
        Assert.Throws<MeshAI.Agent.Workloads.InvalidWorkloadInputException>(() => MeshAI.Agent.Workloads.BatchHandler.Parse("explode"));
    }
}

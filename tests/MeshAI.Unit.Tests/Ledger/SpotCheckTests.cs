using Google.Protobuf;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Control.Ledger;
using MeshAI.Control.Storage;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Ledger;

[TestFixture]
[Category("Unit")]
public sealed class SpotCheckTests
{
    private static WorkloadOutput Echo(string data) => new() { Echo = new EchoOutput { Data = ByteString.CopyFromUtf8(data) } };

    private static WorkloadOutput Embeddings(params float[][] vectors)
    {
        var output = new EmbeddingsOutput { Dimension = vectors.Length == 0 ? 0 : vectors[0].Length };
        foreach (var v in vectors)
        {
            output.Embeddings.Add(new Embedding { Values = { v } });
        }

        return new WorkloadOutput { Embeddings = output };
    }

    [Test]
    public void Sampling_is_off_at_zero_and_total_at_ten_thousand_bps()
    {
        for (var i = 0; i < 200; i++)
        {
            var id = "job_" + i;
            Assert.That(SpotCheck.IsSampled(id, 0), Is.False);
            Assert.That(SpotCheck.IsSampled(id, -5), Is.False);
            Assert.That(SpotCheck.IsSampled(id, 10_000), Is.True);
            Assert.That(SpotCheck.IsSampled(id, 20_000), Is.True);
        }
    }

    [Test]
    public void Sampling_is_deterministic_monotonic_in_the_rate_and_close_to_it()
    {
        var ids = Enumerable.Range(0, 20_000).Select(i => "job_" + i.ToString("x6", System.Globalization.CultureInfo.InvariantCulture)).ToList();
        foreach (var id in ids.Take(500))
        {
            Assert.That(SpotCheck.IsSampled(id, 2_500), Is.EqualTo(SpotCheck.IsSampled(id, 2_500)), "same job, same decision");
            Assert.That(SpotCheck.Bucket(id), Is.LessThan(10_000UL));
            if (SpotCheck.IsSampled(id, 1_000))
            {
                Assert.That(SpotCheck.IsSampled(id, 1_001), Is.True, "a job sampled at a rate stays sampled at any higher rate");
            }
        }

        var share = ids.Count(id => SpotCheck.IsSampled(id, 1_000)) / (double)ids.Count;
        Assert.That(share, Is.EqualTo(0.10).Within(0.015), "1000 bps samples about 10 % of jobs");
    }

    [Test]
    public void Only_plaintext_unchunked_compared_workloads_are_checked()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SpotCheck.ShouldCheck("job_a", WorkloadClass.DiagnosticEcho, encrypted: false, chunked: false, 10_000), Is.True);
            Assert.That(SpotCheck.ShouldCheck("job_a", WorkloadClass.Embeddings, encrypted: false, chunked: false, 10_000), Is.True);
            Assert.That(SpotCheck.ShouldCheck("job_a", WorkloadClass.OcrPreprocess, encrypted: false, chunked: false, 10_000), Is.True);
            Assert.That(SpotCheck.ShouldCheck("job_a", WorkloadClass.DiagnosticEcho, encrypted: true, chunked: false, 10_000), Is.False, "ciphertext is opaque to control");
            Assert.That(SpotCheck.ShouldCheck("job_a", WorkloadClass.BatchJobsEvalOrSynth, encrypted: false, chunked: true, 10_000), Is.False, "chunked jobs are not spot-checked");
            Assert.That(SpotCheck.ShouldCheck("job_a", WorkloadClass.SmallChat, encrypted: false, chunked: false, 10_000), Is.False, "chat is not compared");
            Assert.That(SpotCheck.ShouldCheck("job_a", WorkloadClass.AudioTranscribeChunked, encrypted: false, chunked: false, 10_000), Is.False, "transcripts are not compared");
            Assert.That(SpotCheck.ShouldCheck("job_a", WorkloadClass.DiagnosticEcho, encrypted: false, chunked: false, 0), Is.False, "default 0 = off");
        });
    }

    [Test]
    public void Echo_compares_exact_bytes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SpotCheck.Compare(Echo("hello"), Echo("hello")).Verdict, Is.EqualTo(SpotCheckVerdict.Match));
            Assert.That(SpotCheck.Compare(Echo("hello"), Echo("hellO")).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch));
            Assert.That(SpotCheck.Compare(Echo(""), Echo("")).Verdict, Is.EqualTo(SpotCheckVerdict.Match));
            Assert.That(SpotCheck.Compare(Echo("a").ToByteArray(), Echo("a").ToByteArray()).Verdict, Is.EqualTo(SpotCheckVerdict.Match), "serialized form");
        });
    }

    [Test]
    public void Ocr_compares_exact_text_and_ignores_confidence_and_word_boxes()
    {
        var a = new WorkloadOutput { Ocr = new OcrOutput { Text = "Invoice 42", MeanConfidence = 0.9f } };
        var b = new WorkloadOutput { Ocr = new OcrOutput { Text = "Invoice 42", MeanConfidence = 0.7f } };
        var c = new WorkloadOutput { Ocr = new OcrOutput { Text = "Invoice 43", MeanConfidence = 0.9f } };
        Assert.Multiple(() =>
        {
            Assert.That(SpotCheck.Compare(a, b).Verdict, Is.EqualTo(SpotCheckVerdict.Match));
            Assert.That(SpotCheck.Compare(a, c).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch));
        });
    }

    [Test]
    public void Batch_compares_exact_result_strings()
    {
        var a = new WorkloadOutput { Batch = new BatchOutput { Results = { "x", "y" } } };
        var b = new WorkloadOutput { Batch = new BatchOutput { Results = { "x", "y" } } };
        var c = new WorkloadOutput { Batch = new BatchOutput { Results = { "x", "z" } } };
        var d = new WorkloadOutput { Batch = new BatchOutput { Results = { "x" } } };
        Assert.Multiple(() =>
        {
            Assert.That(SpotCheck.Compare(a, b).Verdict, Is.EqualTo(SpotCheckVerdict.Match));
            Assert.That(SpotCheck.Compare(a, c).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch));
            Assert.That(SpotCheck.Compare(a, d).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch));
        });
    }

    [Test]
    public void Embeddings_match_when_every_vector_has_cosine_of_at_least_0_99()
    {
        float[] v = [1f, 2f, 3f, 4f];
        float[] scaled = [2f, 4f, 6f, 8f]; // cosine 1
        float[] noisy = [1.02f, 1.98f, 3.01f, 4.03f]; // cosine ≈ 0.9999
        float[] rotated = [4f, 3f, 2f, 1f]; // cosine 20/30 ≈ 0.667
        Assert.Multiple(() =>
        {
            Assert.That(SpotCheck.Compare(Embeddings(v, v), Embeddings(scaled, noisy)).Verdict, Is.EqualTo(SpotCheckVerdict.Match));
            Assert.That(SpotCheck.Compare(Embeddings(v, v), Embeddings(v, rotated)).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch), "one bad vector is enough");
            Assert.That(SpotCheck.Compare(Embeddings(v), Embeddings(v, v)).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch), "vector counts differ");
            Assert.That(SpotCheck.Compare(Embeddings(v), Embeddings([1f, 2f, 3f])).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch), "dimensions differ");
            Assert.That(SpotCheck.Compare(Embeddings(v), Embeddings([float.NaN, 2f, 3f, 4f])).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch), "NaN never matches");
            Assert.That(SpotCheck.Compare(Embeddings([0f, 0f]), Embeddings([0f, 0f])).Verdict, Is.EqualTo(SpotCheckVerdict.Match));
            Assert.That(SpotCheck.Compare(Embeddings([0f, 0f]), Embeddings([0f, 1f])).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch));
        });
    }

    [Test]
    public void Embedding_threshold_is_inclusive_at_0_99()
    {
        // Unit vectors at an angle whose cosine is just above / below 0.99.
        static float[] At(double cos) => [(float)cos, (float)Math.Sqrt(1 - (cos * cos))];
        Assert.Multiple(() =>
        {
            Assert.That(SpotCheck.Compare(Embeddings([1f, 0f]), Embeddings(At(0.9905))).Verdict, Is.EqualTo(SpotCheckVerdict.Match));
            Assert.That(SpotCheck.Compare(Embeddings([1f, 0f]), Embeddings(At(0.9895))).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch));
        });
    }

    [Test]
    public void Chat_and_transcripts_are_not_compared_and_kinds_must_agree()
    {
        var chat = new WorkloadOutput { Chat = new ChatOutput() };
        var transcript = new WorkloadOutput { Transcribe = new TranscribeOutput() };
        Assert.Multiple(() =>
        {
            Assert.That(SpotCheck.Compare(chat, chat).Verdict, Is.EqualTo(SpotCheckVerdict.Inconclusive));
            Assert.That(SpotCheck.Compare(transcript, transcript).Verdict, Is.EqualTo(SpotCheckVerdict.Inconclusive));
            Assert.That(SpotCheck.Compare(Echo("a"), chat).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch));
        });
    }

    [Test]
    public void Unparseable_original_is_a_mismatch_and_unparseable_re_run_is_inconclusive()
    {
        byte[] garbage = [0xFF, 0xFF, 0xFF];
        Assert.Multiple(() =>
        {
            Assert.That(SpotCheck.Compare(garbage, Echo("a").ToByteArray()).Verdict, Is.EqualTo(SpotCheckVerdict.Mismatch));
            Assert.That(SpotCheck.Compare(Echo("a").ToByteArray(), garbage).Verdict, Is.EqualTo(SpotCheckVerdict.Inconclusive));
        });
    }

    [Test]
    public void Holding_a_mint_withholds_it_until_released_and_keeps_other_reasons()
    {
        var allowed = new JobMeteringRow { MintWithheldReason = "", MintCapBps = 5_000, RuntimeMs = 60_000, EarnMicroPerMin = 1_000_000, BurnMicroPerMin = 2_000_000, MultiplierBps = 10_000, BillingGranularityMs = 1_000 };
        var rooted = new JobMeteringRow { MintWithheldReason = "device reports a rooted/jailbroken signal" };
        LedgerWriter.HoldMint(allowed);
        LedgerWriter.HoldMint(rooted);
        Assert.Multiple(() =>
        {
            Assert.That(allowed.MintWithheldReason, Is.EqualTo(SpotCheck.PendingReason));
            Assert.That(allowed.MintCapBps, Is.EqualTo(5_000), "the mobile cap survives the hold");
            Assert.That(LedgerPricing.Price(allowed).MintMicro, Is.Zero, "nothing minted while held");
            Assert.That(rooted.MintWithheldReason, Is.EqualTo("device reports a rooted/jailbroken signal"));
        });

        allowed.MintWithheldReason = "";
        Assert.That(LedgerPricing.Price(allowed).MintMicro, Is.EqualTo(500_000), "released: the capped mint");
    }
}

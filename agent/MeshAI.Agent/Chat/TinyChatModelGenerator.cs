using MeshAI.Agent.Embeddings;

namespace MeshAI.Agent.Chat;

/// <summary>
/// Writes a tiny, valid llama-architecture GGUF v3 model with seeded random F32 weights, a small SentencePiece-style
/// ("llama") vocabulary and its <c>manifest.json</c>, so the real LLamaSharp/llama.cpp loading, tokenising, decoding and
/// sampling path runs where no real chat weights are installable. The text it writes is word salad by design.
/// </summary>
public static class TinyChatModelGenerator
{
    /// <summary>Name written into the manifest and <c>general.name</c>.</summary>
    public const string ModelName = "meshai-tiny-llama-random";

    /// <summary>File name of the GGUF inside the model directory.</summary>
    public const string FileName = "model.gguf";

    /// <summary>Hidden size (<c>llama.embedding_length</c>).</summary>
    public const int EmbeddingLength = 64;

    /// <summary>Transformer blocks (<c>llama.block_count</c>).</summary>
    public const int BlockCount = 2;

    /// <summary>FFN hidden size (<c>llama.feed_forward_length</c>).</summary>
    public const int FeedForwardLength = 128;

    /// <summary>Query heads (<c>llama.attention.head_count</c>).</summary>
    public const int HeadCount = 4;

    /// <summary>Key/value heads (grouped-query attention, <c>llama.attention.head_count_kv</c>).</summary>
    public const int HeadCountKv = 2;

    /// <summary>Training context (<c>llama.context_length</c>), also the manifest's <c>max_tokens</c>.</summary>
    public const int ContextLength = 4096;

    /// <summary>Token ids llama.cpp's "llama" tokenizer expects for unk / bos / eos.</summary>
    public const int UnknownId = 0;

    /// <summary>Beginning of sequence.</summary>
    public const int BosId = 1;

    /// <summary>End of sequence.</summary>
    public const int EosId = 2;

    // llama.cpp token types (llama_token_type): NORMAL=1, UNKNOWN=2, CONTROL=3, BYTE=6.
    private const int Normal = 1;
    private const int Unknown = 2;
    private const int Control = 3;
    private const int Byte = 6;

    // SentencePiece marks a word start with U+2581.
    private const string WordStart = "\u2581";

    private static readonly string[] Words =
    [
        "the", "a", "and", "of", "to", "in", "is", "it", "you", "that", "was", "for", "on", "are", "with", "as", "be", "at",
        "this", "have", "from", "or", "one", "had", "by", "but", "not", "what", "all", "we", "when", "can", "there", "an",
        "each", "which", "do", "how", "if", "will", "up", "out", "many", "then", "so", "some", "would", "make", "like",
        "time", "has", "look", "two", "more", "go", "see", "no", "way", "could", "people", "than", "first", "water", "been",
        "call", "who", "now", "find", "long", "down", "day", "get", "come", "made", "may", "part", "cat", "dog", "mat",
        "quick", "brown", "fox", "lazy", "mesh", "network", "device", "job", "model", "token", "stream", "hello", "world",
        "good", "new", "small", "fast", "data", "phone", "laptop", "server", "run", "work", "credit", "private", "compute",
        "battery", "cloud", "local", "light", "blue", "green", "river", "tree", "sun", "moon", "night", "book", "music",
        "answer", "question", "yes", "open", "close", "start", "stop", "red", "old", "city",
    ];

    private static readonly string[] Punctuation = [".", ",", "!", "?", ":"];

    /// <summary>The vocabulary in id order: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the 256 byte tokens, then word pieces.</summary>
    public static IReadOnlyList<(string Text, float Score, int Type)> Vocabulary()
    {
        var vocab = new List<(string Text, float Score, int Type)>
        {
            ("<unk>", 0f, Unknown),
            ("<s>", 0f, Control),
            ("</s>", 0f, Control),
        };

        // Byte fallback: llama.cpp's SPM tokenizer maps any text it cannot piece together to <0xNN> tokens (and looks up
        // <0x0A> for the newline), so every input tokenises with a small vocabulary.
        for (var b = 0; b < 256; b++)
        {
            vocab.Add(($"<0x{b:X2}>", 0f, Byte));
        }

        var pieces = new List<string> { WordStart };
        pieces.AddRange(Enumerable.Range('a', 26).Select(c => ((char)c).ToString()));
        pieces.AddRange(Enumerable.Range('a', 26).Select(c => WordStart + (char)c));
        pieces.AddRange(Punctuation);
        pieces.AddRange(Words.Select(w => WordStart + w));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var piece in pieces.Where(seen.Add))
        {
            // SPM merges prefer higher scores: longer pieces score higher, so whole words win over letters.
            vocab.Add((piece, -1000f / (piece.Length + 1), Normal));
        }

        return vocab;
    }

    /// <summary>Writes model.gguf and manifest.json into <paramref name="outDir"/>; returns the manifest.</summary>
    public static ModelManifest Generate(string outDir, ulong seed = 42)
    {
        Directory.CreateDirectory(outDir);
        var vocab = Vocabulary();
        var random = new SplitMix(seed);
        const int headDim = EmbeddingLength / HeadCount;
        const int kvWidth = headDim * HeadCountKv;
        var n = vocab.Count;

        var writer = new GgufWriter()
            .Add("general.architecture", "llama")
            .Add("general.name", ModelName)
            .Add("general.alignment", (uint)GgufWriter.Alignment)
            .Add("general.file_type", 0u) // LLAMA_FTYPE_ALL_F32
            .Add("llama.context_length", (uint)ContextLength)
            .Add("llama.embedding_length", (uint)EmbeddingLength)
            .Add("llama.block_count", (uint)BlockCount)
            .Add("llama.feed_forward_length", (uint)FeedForwardLength)
            .Add("llama.attention.head_count", (uint)HeadCount)
            .Add("llama.attention.head_count_kv", (uint)HeadCountKv)
            .Add("llama.rope.dimension_count", (uint)headDim)
            .Add("llama.rope.freq_base", 10000f)
            .Add("llama.attention.layer_norm_rms_epsilon", 1e-5f)
            .Add("llama.vocab_size", (uint)n)
            .Add("tokenizer.ggml.model", "llama")
            .Add("tokenizer.ggml.tokens", vocab.Select(v => v.Text).ToArray())
            .Add("tokenizer.ggml.scores", vocab.Select(v => v.Score).ToArray())
            .Add("tokenizer.ggml.token_type", vocab.Select(v => v.Type).ToArray())
            .Add("tokenizer.ggml.unknown_token_id", (uint)UnknownId)
            .Add("tokenizer.ggml.bos_token_id", (uint)BosId)
            .Add("tokenizer.ggml.eos_token_id", (uint)EosId)
            .Add("tokenizer.ggml.add_bos_token", true)
            .Add("tokenizer.ggml.add_eos_token", false);

        // Every embedding carries a constant +4 in dimension 0 that dominates the final RMS-normalised state; output rows
        // of word pieces read it with +1 and rows of control/byte tokens with -4. So sampling (almost) never picks </s> or
        // a lone byte: a generation runs to max_tokens with printable word salad, which is what the streaming tests need.
        var embeddings = random.Matrix(n, EmbeddingLength, 0.3f);
        var output = random.Matrix(n, EmbeddingLength, 1f);
        for (var t = 0; t < n; t++)
        {
            embeddings[t * EmbeddingLength] = 4f;
            output[t * EmbeddingLength] = vocab[t].Type == Normal ? 1f : -4f;
        }

        writer.AddTensor("token_embd.weight", [EmbeddingLength, n], embeddings);
        for (var layer = 0; layer < BlockCount; layer++)
        {
            var blk = $"blk.{layer}.";
            writer
                .AddTensor(blk + "attn_norm.weight", [EmbeddingLength], Ones(EmbeddingLength))
                .AddTensor(blk + "attn_q.weight", [EmbeddingLength, EmbeddingLength], random.Matrix(EmbeddingLength, EmbeddingLength, 0.05f))
                .AddTensor(blk + "attn_k.weight", [EmbeddingLength, kvWidth], random.Matrix(kvWidth, EmbeddingLength, 0.05f))
                .AddTensor(blk + "attn_v.weight", [EmbeddingLength, kvWidth], random.Matrix(kvWidth, EmbeddingLength, 0.05f))
                .AddTensor(blk + "attn_output.weight", [EmbeddingLength, EmbeddingLength], random.Matrix(EmbeddingLength, EmbeddingLength, 0.05f))
                .AddTensor(blk + "ffn_norm.weight", [EmbeddingLength], Ones(EmbeddingLength))
                .AddTensor(blk + "ffn_gate.weight", [EmbeddingLength, FeedForwardLength], random.Matrix(FeedForwardLength, EmbeddingLength, 0.05f))
                .AddTensor(blk + "ffn_up.weight", [EmbeddingLength, FeedForwardLength], random.Matrix(FeedForwardLength, EmbeddingLength, 0.05f))
                .AddTensor(blk + "ffn_down.weight", [FeedForwardLength, EmbeddingLength], random.Matrix(EmbeddingLength, FeedForwardLength, 0.05f));
        }

        writer
            .AddTensor("output_norm.weight", [EmbeddingLength], Ones(EmbeddingLength))
            .AddTensor("output.weight", [EmbeddingLength, n], output)
            .Save(Path.Combine(outDir, FileName));

        var manifest = new ModelManifest(ModelName, EmbeddingLength, ContextLength, FileName, FileName, [ModelManifest.Describe(outDir, FileName)]);
        manifest.Save(outDir);
        return manifest;
    }

    private static float[] Ones(int count) => Enumerable.Repeat(1f, count).ToArray();

    /// <summary>SplitMix64: tiny, seedable and identical on every platform and .NET version.</summary>
    private sealed class SplitMix(ulong seed)
    {
        private ulong _state = seed;

        /// <summary>rows × cols values uniform in [-scale, scale), row-major.</summary>
        public float[] Matrix(int rows, int cols, float scale)
        {
            var values = new float[rows * cols];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = (float)((Next() >> 11) * (1.0 / (1UL << 53)) * 2 - 1) * scale;
            }

            return values;
        }

        private ulong Next()
        {
            var z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}

using System.Runtime.InteropServices;
using Google.Protobuf;
using MeshAI.Agent.Onnx;

namespace MeshAI.Agent.Embeddings;

/// <summary>
/// Writes a tiny, valid BERT-style embedding model (random but seeded weights) with its vocab and manifest, so the real
/// ONNX Runtime + tokenizer pipeline can run where no real model is installable. Not a semantic model.
/// Graph: hidden = Tanh(MatMul(word[input_ids] + position[0..seq) + type[token_type_ids], dense_w) + dense_b) * attention_mask.
/// </summary>
public static class TinyModelGenerator
{
    /// <summary>Hidden size of the generated model.</summary>
    public const int Dimension = 32;

    /// <summary>Positions the model has embeddings for (and the truncation length).</summary>
    public const int MaxPositions = 128;

    /// <summary>Name written into the manifest.</summary>
    public const string ModelName = "meshai-tiny-bert-random";

    /// <summary>Initializer names (read back by tests for an independent computation).</summary>
    public const string WordEmbeddings = "word_embeddings";

    /// <summary>Position embedding table [128, 32].</summary>
    public const string PositionEmbeddings = "position_embeddings";

    /// <summary>Token type embedding table [2, 32].</summary>
    public const string TokenTypeEmbeddings = "token_type_embeddings";

    /// <summary>Dense weight [32, 32].</summary>
    public const string DenseWeight = "dense_weight";

    /// <summary>Dense bias [32].</summary>
    public const string DenseBias = "dense_bias";

    private static readonly string[] SpecialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

    private static readonly string[] Punctuation = [".", ",", "!", "?", "'", "\"", ":", ";", "-", "(", ")"];

    private static readonly string[] Words =
    [
        "the", "of", "and", "a", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as", "with", "his",
        "they", "i", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what", "all", "were",
        "we", "when", "your", "can", "said", "there", "use", "an", "each", "which", "she", "do", "how", "their", "if", "will",
        "up", "other", "about", "out", "many", "then", "them", "these", "so", "some", "her", "would", "make", "like", "him",
        "into", "time", "has", "look", "two", "more", "write", "go", "see", "number", "no", "way", "could", "people", "my",
        "than", "first", "water", "been", "call", "who", "oil", "its", "now", "find", "long", "down", "day", "did", "get",
        "come", "made", "may", "part", "cat", "dog", "sat", "mat", "quick", "brown", "fox", "jumps", "over", "lazy", "network",
        "device", "job", "model", "text", "search", "hello", "world", "good", "new", "small", "large", "fast", "slow", "data",
        "phone", "laptop", "server", "run", "runs", "running", "work", "credit", "private", "mesh", "ai", "compute", "battery",
        "charging", "cloud", "local", "file", "image", "sound", "book", "house", "car", "tree", "sun", "moon", "night", "light",
        "red", "blue", "green", "happy", "sad", "big", "little", "old", "young", "man", "woman", "child", "city", "country",
        "school", "music", "food", "eat", "drink", "sleep", "walk", "read", "learn", "teach", "love", "friend", "family",
        "game", "play", "open", "close", "start", "stop", "yes", "embed", "vector", "token", "question", "answer",
    ];

    private static readonly string[] Pieces =
    [
        "##s", "##ed", "##ing", "##er", "##ly", "##es", "##tion", "##al", "##ize", "##ment", "##a", "##e", "##i", "##o", "##u",
        "##n", "##t", "##r", "##l", "##d", "##y", "##k", "##m",
    ];

    /// <summary>The vocabulary, in id order.</summary>
    public static IReadOnlyList<string> Vocabulary()
    {
        var letters = Enumerable.Range('a', 26).Select(c => ((char)c).ToString()).ToArray();
        string[] all = [.. SpecialTokens, .. Punctuation, .. letters, .. Words, .. Pieces];
        return [.. all.Distinct(StringComparer.Ordinal)];
    }

    /// <summary>Writes model.onnx, vocab.txt and manifest.json into <paramref name="outDir"/>; returns the manifest.</summary>
    public static ModelManifest Generate(string outDir, ulong seed = 42)
    {
        Directory.CreateDirectory(outDir);
        var vocab = Vocabulary();
        File.WriteAllText(Path.Combine(outDir, "vocab.txt"), string.Join('\n', vocab) + "\n");
        File.WriteAllBytes(Path.Combine(outDir, "model.onnx"), BuildModel(vocab.Count, seed).ToByteArray());
        var manifest = new ModelManifest(
            ModelName, Dimension, MaxPositions, "model.onnx", "vocab.txt",
            [ModelManifest.Describe(outDir, "model.onnx"), ModelManifest.Describe(outDir, "vocab.txt")]);
        manifest.Save(outDir);
        return manifest;
    }

    /// <summary>The ONNX model (opset 17, IR version 8).</summary>
    public static ModelProto BuildModel(int vocabSize, ulong seed)
    {
        var random = new SplitMix64(seed);
        var graph = new GraphProto { Name = "tiny_bert" };
        graph.Initializer.Add(FloatTensor(WordEmbeddings, [vocabSize, Dimension], random, 0.5f));
        graph.Initializer.Add(FloatTensor(PositionEmbeddings, [MaxPositions, Dimension], random, 0.1f));
        graph.Initializer.Add(FloatTensor(TokenTypeEmbeddings, [2, Dimension], random, 0.1f));
        graph.Initializer.Add(FloatTensor(DenseWeight, [Dimension, Dimension], random, 0.4f));
        graph.Initializer.Add(FloatTensor(DenseBias, [Dimension], random, 0.1f));
        graph.Initializer.Add(Int64Tensor("zero", [], [0]));
        graph.Initializer.Add(Int64Tensor("one", [], [1]));
        graph.Initializer.Add(Int64Tensor("last_axis", [1], [-1]));

        graph.Input.Add(Int64Input("input_ids"));
        graph.Input.Add(Int64Input("attention_mask"));
        graph.Input.Add(Int64Input("token_type_ids"));
        graph.Output.Add(new ValueInfoProto
        {
            Name = "last_hidden_state",
            Type = TensorType(TensorProto.Types.DataType.Float, Dim("batch"), Dim("sequence"), Dim(Dimension)),
        });

        graph.Node.Add(Node("Gather", ["word_embeddings", "input_ids"], ["word"]));
        graph.Node.Add(Node("Shape", ["input_ids"], ["ids_shape"]));
        graph.Node.Add(Node("Gather", ["ids_shape", "one"], ["seq_len"], Int("axis", 0)));
        graph.Node.Add(Node("Range", ["zero", "seq_len", "one"], ["positions"]));
        graph.Node.Add(Node("Gather", ["position_embeddings", "positions"], ["position"]));
        graph.Node.Add(Node("Gather", ["token_type_embeddings", "token_type_ids"], ["token_type"]));
        graph.Node.Add(Node("Add", ["word", "position"], ["sum1"]));
        graph.Node.Add(Node("Add", ["sum1", "token_type"], ["embedded"]));
        graph.Node.Add(Node("MatMul", ["embedded", "dense_weight"], ["projected"]));
        graph.Node.Add(Node("Add", ["projected", "dense_bias"], ["biased"]));
        graph.Node.Add(Node("Tanh", ["biased"], ["activated"]));
        graph.Node.Add(Node("Unsqueeze", ["attention_mask", "last_axis"], ["mask3"]));
        graph.Node.Add(Node("Cast", ["mask3"], ["mask_float"], Int("to", (long)TensorProto.Types.DataType.Float)));
        graph.Node.Add(Node("Mul", ["activated", "mask_float"], ["last_hidden_state"]));

        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "meshai-agent",
            ProducerVersion = "1",
            Graph = graph,
            DocString = "Tiny random-weight BERT-style encoder for pipeline tests; carries no meaning.",
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model;
    }

    private static NodeProto Node(string op, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = op + "_" + outputs[0] };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        return node;
    }

    private static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static TensorProto FloatTensor(string name, long[] dims, SplitMix64 random, float scale)
    {
        var count = dims.Aggregate(1L, (a, b) => a * b);
        var values = new float[count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        }

        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    private static TensorProto Int64Tensor(string name, long[] dims, long[] values)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Dims.AddRange(dims);
        tensor.Int64Data.AddRange(values);
        return tensor;
    }

    private static ValueInfoProto Int64Input(string name) => new()
    {
        Name = name,
        Type = TensorType(TensorProto.Types.DataType.Int64, Dim("batch"), Dim("sequence")),
    };

    private static TypeProto TensorType(TensorProto.Types.DataType type, params TensorShapeProto.Types.Dimension[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.AddRange(dims);
        return new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } };
    }

    private static TensorShapeProto.Types.Dimension Dim(string symbol) => new() { DimParam = symbol };

    private static TensorShapeProto.Types.Dimension Dim(long value) => new() { DimValue = value };

    /// <summary>A tiny deterministic generator (SplitMix64), so the weights never depend on the runtime's Random.</summary>
    private sealed class SplitMix64(ulong state)
    {
        private ulong _state = state;

        public double NextDouble()
        {
            _state += 0x9E3779B97F4A7C15UL;
            var z = _state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (z >> 11) * (1.0 / (1UL << 53));
        }
    }
}

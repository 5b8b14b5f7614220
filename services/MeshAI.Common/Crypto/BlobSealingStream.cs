using System.Buffers;

namespace MeshAI.Common.Crypto;

/// <summary>
/// The sealed form of a seekable plaintext stream, read chunk by chunk (docs/security.md item 9): each read seals at most
/// one <see cref="BlobSealing.SealedChunkBytes"/> chunk ahead into one pooled buffer, so a 64 MiB blob is never held.
/// Seekable to the start (or any sealed chunk boundary); sealing is deterministic (the nonce is the chunk index), so two
/// passes see the same bytes: the client's upload hashes the sealed bytes, then sends them. A reader with room for a whole
/// sealed chunk (the upload's send pass) gets it sealed straight into its buffer. The key is imported once per stream.
/// </summary>
public sealed class BlobSealingStream : Stream
{
    private static readonly int PlainChunkBytes = BlobSealing.PlainChunkBytes(BlobSealing.SealedChunkBytes);

    private readonly Stream _plain;
    private readonly long _origin;
    private readonly long _plainBytes;
    private readonly long _count;
    private readonly BlobSealing.ChunkKey _key;
    private byte[]? _sealed = ArrayPool<byte>.Shared.Rent(BlobSealing.SealedChunkBytes);
    private byte[]? _plainBuffer = ArrayPool<byte>.Shared.Rent(BlobSealing.SealedChunkBytes);
    private long _next; // the next chunk to seal
    private int _filled; // sealed bytes of the current chunk
    private int _read; // of which read already
    private long _position;

    /// <summary>Seals <paramref name="plaintext"/> (seekable; from its current position to its end) under <paramref name="blobKey"/>.</summary>
    public BlobSealingStream(Stream plaintext, ReadOnlySpan<byte> blobKey)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        if (!plaintext.CanSeek || !plaintext.CanRead)
        {
            throw new ArgumentException("a sealed upload reads its plaintext twice: the stream must be readable and seekable", nameof(plaintext));
        }

        if (blobKey.Length != PayloadCrypto.KeySize)
        {
            throw new ArgumentException("blob key must be 32 bytes", nameof(blobKey));
        }

        _plain = plaintext;
        _origin = plaintext.Position;
        _plainBytes = plaintext.Length - _origin;
        _count = BlobSealing.ChunkCount(_plainBytes, BlobSealing.SealedChunkBytes);
        _key = new BlobSealing.ChunkKey(blobKey);
        Length = BlobSealing.SealedBytes(_plainBytes, BlobSealing.SealedChunkBytes);
    }

    /// <inheritdoc/>
    public override bool CanRead => true;

    /// <inheritdoc/>
    public override bool CanSeek => true;

    /// <inheritdoc/>
    public override bool CanWrite => false;

    /// <summary>The sealed size (what is uploaded, hashed and stored).</summary>
    public override long Length { get; }

    /// <summary>The position in the sealed bytes; settable to a sealed chunk boundary (0 included).</summary>
    public override long Position
    {
        get => _position;
        set
        {
            if (value < 0 || value > Length || (value % BlobSealing.SealedChunkBytes != 0 && value != Length))
            {
                throw new ArgumentOutOfRangeException(nameof(value), "a sealed stream seeks to chunk boundaries only");
            }

            _next = value / BlobSealing.SealedChunkBytes;
            _filled = _read = 0;
            _position = value;
        }
    }

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc/>
    public override int Read(Span<byte> buffer)
    {
        if (_read == _filled && _next < _count && buffer.Length >= SealedLength(_next))
        {
            // A reader with room for the whole next chunk gets it sealed straight into its buffer (no copy).
            var n0 = SealNext(buffer);
            _filled = _read = 0;
            _position += n0;
            return n0;
        }

        if (_read == _filled && !SealNext())
        {
            return 0;
        }

        var n = Math.Min(buffer.Length, _filled - _read);
        _sealed.AsSpan(_read, n).CopyTo(buffer);
        _read += n;
        _position += n;
        return n;
    }

    /// <inheritdoc/>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Read(buffer.Span)); // the plaintext is a seekable (file or memory) stream; sealing is CPU work

    /// <inheritdoc/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        Task.FromResult(Read(buffer.AsSpan(offset, count)));

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
    {
        SeekOrigin.Begin => offset,
        SeekOrigin.Current => _position + offset,
        _ => Length + offset,
    };

    /// <inheritdoc/>
    public override void Flush()
    {
    }

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _key.Dispose();
            if (_sealed is not null)
            {
                ArrayPool<byte>.Shared.Return(_sealed);
                _sealed = null;
            }

            if (_plainBuffer is not null)
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(_plainBuffer);
                ArrayPool<byte>.Shared.Return(_plainBuffer);
                _plainBuffer = null;
            }
        }

        base.Dispose(disposing);
    }

    private bool SealNext()
    {
        ObjectDisposedException.ThrowIf(_sealed is null, this);
        if (_next >= _count)
        {
            return false;
        }

        _filled = SealNext(_sealed);
        _read = 0;
        return true;
    }

    // The sealed length of chunk `index` (1 MiB but the last).
    private int SealedLength(long index) => (int)Math.Min(PlainChunkBytes, _plainBytes - (index * PlainChunkBytes)) + BlobSealing.TagBytes;

    // Seals chunk _next into `destination` (at least its sealed length); returns the sealed length.
    private int SealNext(Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_plainBuffer is null, this);
        var start = _next * PlainChunkBytes;
        var length = (int)Math.Min(PlainChunkBytes, _plainBytes - start);
        _plain.Position = _origin + start;
        _plain.ReadExactly(_plainBuffer, 0, length);
        _key.Seal(_next, _count, _plainBuffer.AsSpan(0, length), destination[..(length + BlobSealing.TagBytes)]);
        _next++;
        return length + BlobSealing.TagBytes;
    }
}

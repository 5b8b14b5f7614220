using System.Runtime.InteropServices;

namespace MeshAI.Common;

/// <summary>
/// Files only their owner may read: directories 0700, files 0600, created with that mode (no window in which another local
/// user could open them) rather than tightened afterwards. The server keeps its database (and SQLite's WAL and shared-memory
/// files, which SQLite creates with the database file's mode), master key, TLS key and magic-link outbox under one data
/// directory made this way, and tightens whatever an older version left there at start. No-ops on Windows.
/// </summary>
public static partial class PrivateFiles
{
    /// <summary>rw------- (0600).</summary>
    public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>rwx------ (0700).</summary>
    public const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>Creates <paramref name="path"/> (and missing parents) as 0700, or tightens it to 0700 when it exists; returns the full path.</summary>
    public static string CreateDirectory(string path)
    {
        var full = Path.GetFullPath(path);
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(full);
            return full;
        }

        Directory.CreateDirectory(full, DirectoryMode);
        File.SetUnixFileMode(full, DirectoryMode);
        return full;
    }

    /// <summary>Creates <paramref name="path"/> as an empty 0600 file when missing (so a database engine opening it keeps the mode).</summary>
    public static void EnsureFile(string path)
    {
        CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        try
        {
            using var _ = Open(path, System.IO.FileMode.CreateNew, FileAccess.Write);
        }
        catch (IOException) when (File.Exists(path))
        {
            Tighten(path);
        }
    }

    /// <summary>Opens a file for writing; a file it creates is 0600 from the first moment.</summary>
    public static FileStream Open(string path, FileMode mode, FileAccess access)
    {
        var options = new FileStreamOptions { Mode = mode, Access = access, Share = FileShare.Read };
        if (!OperatingSystem.IsWindows() && mode is System.IO.FileMode.CreateNew or System.IO.FileMode.Create or System.IO.FileMode.OpenOrCreate)
        {
            options.UnixCreateMode = FileMode;
        }

        return new FileStream(path, options);
    }

    /// <summary>Writes a new 0600 file (replacing an existing one, which is tightened first).</summary>
    public static async Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        if (File.Exists(path))
        {
            Tighten(path);
        }

        await using var stream = Open(path, System.IO.FileMode.Create, FileAccess.Write);
        await stream.WriteAsync(bytes, cancellationToken);
    }

    /// <summary>Writes a new 0600 file synchronously.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        if (File.Exists(path))
        {
            Tighten(path);
        }

        using var stream = Open(path, System.IO.FileMode.Create, FileAccess.Write);
        stream.Write(bytes);
    }

    /// <summary>Sets <paramref name="path"/> and, for a directory, everything under it to 0700 (directories) / 0600 (files); symbolic links are left alone.</summary>
    public static void Tighten(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var info = new FileInfo(path);
        if (info.LinkTarget is not null)
        {
            return;
        }

        if (Directory.Exists(path))
        {
            File.SetUnixFileMode(path, DirectoryMode);
            foreach (var entry in new DirectoryInfo(path).EnumerateFileSystemInfos())
            {
                Tighten(entry.FullName);
            }
        }
        else if (File.Exists(path))
        {
            File.SetUnixFileMode(path, FileMode);
        }
    }

    /// <summary>Sets the process umask to 077 (files the process creates by any route start private); returns the previous mask. Unix only.</summary>
    public static int RestrictUmask() => OperatingSystem.IsWindows() ? 0 : Umask(0b000_111_111);

    [LibraryImport("libc", EntryPoint = "umask")]
    private static partial int Umask(int mask);
}

using System.Globalization;

namespace MeshAI.Testing;

/// <summary>Throwaway directories for test servers, tagged with the owning test process so leftovers of crashed runs get reaped.</summary>
internal static class ScratchDirectory
{
    private const string OwnerFile = "owner.pid";

    /// <summary>True when this process runs with effective uid 0 (PostgreSQL then has to run as the postgres user).</summary>
    public static bool IsRoot { get; } = DetectRoot();

    /// <summary>Folder scratch directories go in (/tmp when root so the postgres user can reach it).</summary>
    public static string BaseDirectory => IsRoot ? "/tmp" : Path.GetTempPath();

    /// <summary>Creates a fresh directory named prefix-random, owner-only, with this process id recorded in it.</summary>
    public static string Create(string prefix)
    {
        var path = Path.Combine(BaseDirectory, $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)]);
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        File.WriteAllText(Path.Combine(path, OwnerFile), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        return path;
    }

    /// <summary>Deletes a directory tree, ignoring errors.</summary>
    public static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Runs <paramref name="cleanup"/> then deletes every prefix-* directory whose owning test process is gone.</summary>
    public static void ReapStale(string prefix, Action<string> cleanup)
    {
        string[] candidates;
        try
        {
            candidates = Directory.GetDirectories(BaseDirectory, prefix + "-*");
        }
        catch (IOException)
        {
            return;
        }
        catch (UnauthorizedAccessException)
        {
            return;
        }

        foreach (var dir in candidates)
        {
            var ownerPid = ReadPid(Path.Combine(dir, OwnerFile));
            if (ownerPid is null || ProcessAlive(ownerPid.Value))
            {
                continue;
            }

            try
            {
                cleanup(dir);
            }
            catch (Exception)
            {
                // Best effort: a leftover must never fail a new test run.
            }

            TryDelete(dir);
        }
    }

    /// <summary>Reads a pid from the first line of a file, or null.</summary>
    public static int? ReadPid(string file)
    {
        try
        {
            var first = File.ReadLines(file).FirstOrDefault();
            return int.TryParse(first?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0 ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>True when a process with this id exists.</summary>
    public static bool ProcessAlive(int pid)
    {
        if (OperatingSystem.IsLinux())
        {
            return Directory.Exists($"/proc/{pid}");
        }

        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static bool DetectRoot()
    {
        if (!OperatingSystem.IsLinux())
        {
            return string.Equals(Environment.UserName, "root", StringComparison.Ordinal);
        }

        try
        {
            // "Uid:\treal\teffective\tsaved\tfs"
            var uidLine = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal));
            var fields = uidLine?.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return fields is { Length: >= 3 } && fields[2] == "0";
        }
        catch (IOException)
        {
            return string.Equals(Environment.UserName, "root", StringComparison.Ordinal);
        }
    }
}

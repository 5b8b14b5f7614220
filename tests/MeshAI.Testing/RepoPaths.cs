namespace MeshAI.Testing;

/// <summary>Locates the repository root and build outputs of other projects from a running test.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> RootLazy = new(FindRoot);

    /// <summary>Absolute path of the repository root (the folder holding MeshAI.sln).</summary>
    public static string Root => RootLazy.Value;

    /// <summary>Build configuration of the running test assembly ("Release" or "Debug"), read from its output path.</summary>
    public static string Configuration
    {
        get
        {
            var dir = AppContext.BaseDirectory.Replace('\\', '/');
            return dir.Contains("/bin/Debug/", StringComparison.OrdinalIgnoreCase) ? "Debug" : "Release";
        }
    }

    /// <summary>Absolute path of a path given relative to the repository root.</summary>
    public static string Combine(params string[] relative) => Path.Combine([Root, .. relative]);

    /// <summary>
    /// Path of a built assembly, e.g. BuiltAssembly("services/MeshAI.Server", "MeshAI.Server") gives
    /// services/MeshAI.Server/bin/Release/net10.0/MeshAI.Server.dll; prefers the test's own configuration.
    /// </summary>
    /// <exception cref="FileNotFoundException">The project has not been built (run ./test.sh or dotnet build).</exception>
    public static string BuiltAssembly(string projectDirectory, string assemblyName)
    {
        var bin = Path.Combine(Root, projectDirectory, "bin");
        var tfm = "net" + Environment.Version.ToString(2);
        string[] configurations = Configuration == "Debug" ? ["Debug", "Release"] : ["Release", "Debug"];
        foreach (var configuration in configurations)
        {
            var candidate = Path.Combine(bin, configuration, tfm, assemblyName + ".dll");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException(
            $"{assemblyName}.dll not found under {bin}/<Release|Debug>/{tfm}; build the solution first (./test.sh does).",
            assemblyName + ".dll");
    }

    private static string FindRoot()
    {
        var fromEnv = Environment.GetEnvironmentVariable("MESHAI_REPO_ROOT");
        if (!string.IsNullOrEmpty(fromEnv) && File.Exists(Path.Combine(fromEnv, "MeshAI.sln")))
        {
            return Path.GetFullPath(fromEnv);
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MeshAI.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException(
            $"Could not find MeshAI.sln above {AppContext.BaseDirectory}; set MESHAI_REPO_ROOT.");
    }
}

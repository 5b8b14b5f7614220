namespace MeshAI.Cli;

/// <summary>A failure the CLI explains in one line on stderr (exit code 1, or 2 for usage errors).</summary>
public class CliException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CliException()
    {
    }

    /// <summary>Creates the exception with its one-line message.</summary>
    public CliException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its one-line message and cause.</summary>
    public CliException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Process exit code for this failure.</summary>
    public virtual int ExitCode => ExitCodes.Failure;
}

/// <summary>The command line was well-formed but not usable (a missing server, a conflicting option): exit code 2.</summary>
public sealed class CliUsageException : CliException
{
    /// <summary>Creates the exception.</summary>
    public CliUsageException()
    {
    }

    /// <summary>Creates the exception with its one-line message.</summary>
    public CliUsageException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its one-line message and cause.</summary>
    public CliUsageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <inheritdoc />
    public override int ExitCode => ExitCodes.Usage;
}

/// <summary>Exit codes of `meshnet`.</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;

    /// <summary>The command ran and failed (server error, job failed, not logged in).</summary>
    public const int Failure = 1;

    /// <summary>The command line was wrong.</summary>
    public const int Usage = 2;

    /// <summary>Interrupted (Ctrl+C).</summary>
    public const int Cancelled = 130;
}

namespace MeshAI.Relay.Core;

/// <summary>A lock-free "raise to at least" for serials that only move forward.</summary>
internal static class Monotonic
{
    /// <summary>Raises <paramref name="location"/> to <paramref name="value"/> when that is higher (never lowers it); returns the value before.</summary>
    public static long Raise(ref long location, long value)
    {
        var current = Interlocked.Read(ref location);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref location, value, current);
            if (seen == current)
            {
                return current;
            }

            current = seen;
        }

        return current;
    }
}

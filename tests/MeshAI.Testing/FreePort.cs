using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace MeshAI.Testing;

/// <summary>Hands out free TCP ports on the loopback interface, never the same one twice per process.</summary>
public static class FreePort
{
    private static readonly ConcurrentDictionary<int, byte> Issued = new();

    /// <summary>Returns a loopback TCP port that was free at the time of the call (bind to 127.0.0.1:0 and release).</summary>
    /// <remarks>
    /// Another process can still grab the port before the caller binds it; servers started through this
    /// helper (see <see cref="PostgresServer"/> and <see cref="RedisServer"/>) retry on a new port when that happens.
    /// </remarks>
    public static int Next()
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            if (Issued.TryAdd(port, 0))
            {
                return port;
            }
        }

        throw new InvalidOperationException("Could not find a free loopback TCP port after 100 attempts.");
    }
}

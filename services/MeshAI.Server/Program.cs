using MeshAI.Server;

// Files this process creates by any route (database, WAL, keys, outbox, logs) start private: umask 077, as PostgreSQL does.
MeshAI.Common.PrivateFiles.RestrictUmask();

// Every start-up failure (bad option, busy port, unreadable certificate or data dir, unreachable store) is one line on
// stderr and exit code 2; a server that started logs structured JSON.
ServerSettings? settings = null;
Microsoft.AspNetCore.Builder.WebApplication app;
string url;
string fingerprint;
try
{
    System.Security.Cryptography.X509Certificates.X509Certificate2 certificate;
    (app, settings, certificate) = ServerHost.Build(args);
    (url, fingerprint) = await ServerHost.StartAsync(app, settings, certificate, CancellationToken.None);
}
catch (Exception ex)
{
    Console.Error.WriteLine("error: " + StartupFailure.Describe(ex, settings));
    return StartupFailure.ExitCode;
}

Console.Out.WriteLine($"MESHAI_SERVER_READY url={url} fingerprint={fingerprint}");
Console.Out.Flush();
await app.WaitForShutdownAsync();
return 0;

using MeshAI.Server;

// Files this process creates by any route (database, WAL, keys, outbox, logs) start private: umask 077, as PostgreSQL does.
MeshAI.Common.PrivateFiles.RestrictUmask();

Microsoft.AspNetCore.Builder.WebApplication app;
ServerSettings settings;
System.Security.Cryptography.X509Certificates.X509Certificate2 certificate;
try
{
    (app, settings, certificate) = ServerHost.Build(args);
}
catch (InvalidOperationException ex)
{
    // Configuration mistakes (unreadable TLS certificate, bad store settings) get one clear line, not a stack trace.
    Console.Error.WriteLine("error: " + ex.Message);
    return 2;
}

var (url, fingerprint) = await ServerHost.StartAsync(app, settings, certificate, CancellationToken.None);
Console.Out.WriteLine($"MESHAI_SERVER_READY url={url} fingerprint={fingerprint}");
Console.Out.Flush();
await app.WaitForShutdownAsync();
return 0;

using MeshAI.Server;

var (app, settings, certificate) = ServerHost.Build(args);
var (url, fingerprint) = await ServerHost.StartAsync(app, settings, certificate, CancellationToken.None);
Console.Out.WriteLine($"MESHAI_SERVER_READY url={url} fingerprint={fingerprint}");
Console.Out.Flush();
await app.WaitForShutdownAsync();
return 0;

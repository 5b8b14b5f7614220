using MeshAI.Agent.State;
using NUnit.Framework;

namespace MeshAI.Unit.Tests.Agent;

[TestFixture]
[Category("Unit")]
public sealed class AgentStateStoreTests
{
    [Test]
    public void Keys_are_generated_once_and_stored_private()
    {
        var dir = Path.Combine(Path.GetTempPath(), "meshai-state-" + Guid.NewGuid().ToString("N"));
        try
        {
            var store = new AgentStateStore(dir);
            var keys = store.LoadOrCreateKeys();
            var again = new AgentStateStore(dir).LoadOrCreateKeys();

            Assert.That(again.SigningPublicKey, Is.EqualTo(keys.SigningPublicKey));
            Assert.That(again.InstallationId, Does.StartWith("inst_"));
            Assert.That(keys.SigningPublicKey, Has.Length.EqualTo(32));
            Assert.That(keys.EncryptionPublicKey, Has.Length.EqualTo(32));
            if (!OperatingSystem.IsWindows())
            {
                Assert.That(File.GetUnixFileMode(dir), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
                Assert.That(File.GetUnixFileMode(Path.Combine(dir, "keys.json")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.Integration.Tests;

/// <summary>Stops the assembly's shared PostgreSQL/Redis once every test in MeshAI.Integration.Tests.* has run.</summary>
[SetUpFixture]
public sealed class AssemblySetup
{
    [OneTimeTearDown]
    public Task StopSharedInfrastructure() => SharedInfrastructure.StopAllAsync();
}

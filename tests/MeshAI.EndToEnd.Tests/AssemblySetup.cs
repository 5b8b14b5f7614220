using MeshAI.Testing;
using NUnit.Framework;

[assembly: Parallelizable(ParallelScope.None)]

namespace MeshAI.EndToEnd.Tests;

/// <summary>Stops the shared PostgreSQL cluster once every end-to-end fixture has run.</summary>
[SetUpFixture]
public sealed class AssemblySetup
{
    /// <summary>Stops shared servers.</summary>
    [OneTimeTearDown]
    public static Task StopSharedInfrastructure() => SharedInfrastructure.StopAllAsync();
}

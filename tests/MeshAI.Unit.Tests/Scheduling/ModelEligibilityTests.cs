using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Network.V1;
using MeshAI.Control.Scheduling;
using NUnit.Framework;
using static MeshAI.Unit.Tests.Scheduling.SchedulingFixtures;

namespace MeshAI.Unit.Tests.Scheduling;

/// <summary>model_available and policy public_models_only over the models devices report (#14).</summary>
[TestFixture]
[Category("Unit")]
public sealed class ModelEligibilityTests
{
    private const string MiniLmSha = "4a64cee3d4134bbdc86eed96e1a660efec58975417204ecfcf134140edb6e0e2";

    private static CapabilityReport WithModels(params (string Name, string Sha, bool IsDefault)[] models)
    {
        var caps = Laptop();
        caps.Models.AddRange(models.Select(m => new InstalledModel { Name = m.Name, Sha256 = m.Sha, IsDefault = m.IsDefault, Dimension = 384, WorkloadClass = WorkloadClass.Embeddings }));
        return caps;
    }

    private static PlacementDecision PlaceWith(JobEnvelope envelope, IEnumerable<PlacementCandidate> candidates, Role role = Role.Member, PublicModels? publicModels = null) =>
        new LinearPlacementPolicy().Place(new PlacementRequest(envelope, candidates.ToList(), new HashSet<string>(), Settings())
        {
            SubmitterRole = role,
            Policy = new CompiledPolicy(PolicyEngine.Defaults(NetworkId)),
            PublicModels = publicModels ?? PublicModels.None,
        });

    [Test]
    public void A_job_naming_a_model_runs_only_where_it_is_installed_and_the_explain_view_says_why()
    {
        var both = Candidate("dev_both", WithModels(("all-minilm-l6-v2", MiniLmSha, true), ("arctic-embed-xs", "cf", false)));
        var one = Candidate("dev_one", WithModels(("all-minilm-l6-v2", MiniLmSha, true)));
        var envelope = Envelope(resources: new ResourceRequest { Model = "arctic-embed-xs" });

        var decision = PlaceWith(envelope, [both, one]);

        Assert.That(decision.Selected!.Device.DeviceId, Is.EqualTo("dev_both"));
        var refused = decision.Of("dev_one");
        Assert.That(refused.FailingFilter, Is.EqualTo(EligibilityFilter.ModelAvailable));
        Assert.That(refused.Reason, Is.EqualTo("device has no model arctic-embed-xs (it has all-minilm-l6-v2)"));
        Assert.That(PlaceWith(Envelope(), [one]).Of("dev_one").Eligible, Is.True, "no model named: the device default runs");
    }

    [Test]
    public void The_model_in_a_plaintext_payload_routes_like_the_resource_request()
    {
        var input = new WorkloadInput { Embeddings = new EmbeddingsInput { Model = "arctic-embed-xs", Texts = { "hi" } } };
        var envelope = Envelope();
        envelope.InputManifest = new InputManifest { Payload = Google.Protobuf.ByteString.CopyFrom(Google.Protobuf.MessageExtensions.ToByteArray(input)) };
        Assert.That(JobModels.Required(envelope), Is.EqualTo("arctic-embed-xs"));
        Assert.That(PlaceWith(envelope, [Candidate("dev_one", WithModels(("all-minilm-l6-v2", MiniLmSha, true)))]).Of("dev_one").FailingFilter,
            Is.EqualTo(EligibilityFilter.ModelAvailable));
    }

    [Test]
    public void ChatInput_model_routes_a_chat_to_the_device_that_serves_that_chat_model()
    {
        static CapabilityReport Chat(string model)
        {
            var caps = Laptop();
            caps.Workloads.Add(WorkloadClass.SmallChat);
            caps.Models.Add(new InstalledModel { Name = model, WorkloadClass = WorkloadClass.SmallChat, IsDefault = true });
            return caps;
        }

        var input = new WorkloadInput { Chat = new ChatInput { Model = "qwen-mini", Messages = { new ChatMessage { Content = "hi" } } } };
        var envelope = Envelope();
        envelope.WorkloadId = WorkloadClass.SmallChat;
        envelope.InputManifest = new InputManifest { Payload = Google.Protobuf.ByteString.CopyFrom(Google.Protobuf.MessageExtensions.ToByteArray(input)) };
        Assert.That(JobModels.Required(envelope), Is.EqualTo("qwen-mini"));

        var decision = PlaceWith(envelope, [Candidate("dev_llama", Chat("tiny-llama")), Candidate("dev_qwen", Chat("qwen-mini"))]);
        Assert.That(decision.Selected!.Device.DeviceId, Is.EqualTo("dev_qwen"));
        Assert.That(decision.Of("dev_llama").Reason, Is.EqualTo("device has no model qwen-mini (it has tiny-llama)"));
    }

    [Test]
    public void Guests_run_only_models_the_network_publishes_as_public_with_the_same_weights()
    {
        var envelope = Envelope(tag: DataSensitivityTag.Public);
        var genuine = Candidate("dev_genuine", WithModels(("all-minilm-l6-v2", MiniLmSha, true)));
        var impostor = Candidate("dev_impostor", WithModels(("all-minilm-l6-v2", new string('0', 64), true)));
        var published = new PublicModels(new Dictionary<string, string> { ["all-minilm-l6-v2"] = MiniLmSha });

        Assert.That(PlaceWith(envelope, [genuine], Role.Guest).Of("dev_genuine").FailingFilter, Is.EqualTo(EligibilityFilter.PolicyAllows),
            "nothing is public until the network says so");
        var decision = PlaceWith(envelope, [genuine, impostor], Role.Guest, published);
        Assert.That(decision.Of("dev_genuine").Eligible, Is.True);
        Assert.That(decision.Of("dev_impostor").FailingFilter, Is.EqualTo(EligibilityFilter.PolicyAllows), "a private model cannot borrow a public name");
        Assert.That(decision.Of("dev_impostor").Reason, Does.Contain("guests-nothing-else"));
        Assert.That(PlaceWith(envelope, [impostor], Role.Member).Of("dev_impostor").Eligible, Is.True, "members are not limited to public models");
        Assert.That(PlaceWith(Envelope(WorkloadClass.DiagnosticEcho, tag: DataSensitivityTag.Public), [impostor], Role.Guest).Of("dev_impostor").Eligible, Is.True,
            "workloads without a selectable model are not judged by it");
    }
}

using System.Text.Json;
using System.Text.RegularExpressions;
using Google.Protobuf.Reflection;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Device.V1;
using MeshAI.Contracts.Job.V1;
using MeshAI.Contracts.Ledger.V1;
using MeshAI.Contracts.Network.V1;
using NUnit.Framework;
using DeviceMessage = MeshAI.Contracts.Device.V1.Device;
using NetworkMessage = MeshAI.Contracts.Network.V1.Network;

namespace MeshAI.Contracts.Tests;

/// <summary>
/// The spec's names are the contract: every field and value it names in workloads.data_model,
/// capabilities_and_tiers.capability_report, credits_and_accounting.export_and_audit.events and
/// routing_and_scheduling exists in the protos. Reads the spec copy committed at docs/spec/meshai-spec.json.
/// </summary>
[Category("Unit")]
public sealed partial class SpecCoverageTests
{
    private static JsonElement Spec => JsonDocument.Parse(File.ReadAllText(Path.Combine(VectorFiles.RepoRoot(), "docs", "spec", "meshai-spec.json"))).RootElement;

    [Test]
    public void Workload_envelope_has_every_spec_field() =>
        AssertFields(JobEnvelope.Descriptor, Strings(Spec.GetProperty("workloads").GetProperty("data_model").GetProperty("workload_envelope").GetProperty("fields")));

    [Test]
    public void Resource_request_has_every_spec_field() =>
        AssertFields(ResourceRequest.Descriptor, Strings(Spec.GetProperty("workloads").GetProperty("data_model").GetProperty("resource_request").GetProperty("fields")));

    [Test]
    public void Capability_report_has_every_spec_field_and_heartbeat_defaults_are_documented()
    {
        var report = Spec.GetProperty("capabilities_and_tiers").GetProperty("capability_report");
        AssertFields(CapabilityReport.Descriptor, Strings(report.GetProperty("fields")));
        Assert.That(MeshAI.Contracts.Relay.V1.Heartbeat.Descriptor.FindFieldByName("capabilities"), Is.Not.Null);
    }

    [Test]
    public void Ledger_event_types_cover_the_spec_events() =>
        AssertEnum(E(LedgerReflection.Descriptor, "LedgerEventType"), "LEDGER_EVENT_TYPE_", Strings(Spec.GetProperty("credits_and_accounting").GetProperty("export_and_audit").GetProperty("events")));

    [Test]
    public void Export_formats_cover_the_spec_formats() =>
        AssertEnum(E(LedgerServiceReflection.Descriptor, "ExportFormat"), "EXPORT_FORMAT_", Strings(Spec.GetProperty("credits_and_accounting").GetProperty("export_and_audit").GetProperty("formats")));

    [Test]
    public void Routing_modes_eligibility_filters_scoring_features_and_retry_policy_exist()
    {
        var routing = Spec.GetProperty("routing_and_scheduling");
        AssertEnum(E(CommonReflection.Descriptor, "RoutingMode"), "ROUTING_MODE_", routing.GetProperty("routing_modes").EnumerateArray().Select(m => m.GetProperty("id").GetString()!));
        // "policy_allows(workload, user_role, sensitivity)" → POLICY_ALLOWS; "device_state_ok(battery/thermal constraints)" → DEVICE_STATE_OK.
        AssertEnum(E(JobReflection.Descriptor, "EligibilityFilter"), "ELIGIBILITY_FILTER_", Strings(routing.GetProperty("eligibility_filters")).Select(f => FilterName().Match(f).Value));
        AssertFields(ScoringWeights.Descriptor, routing.GetProperty("scoring").GetProperty("features").EnumerateArray().Select(f => f.GetProperty("name").GetString()!));
        AssertFields(FeatureScore.Descriptor, ["name", "weight", "normalized_value"]);

        var retries = routing.GetProperty("retries_and_chunking");
        AssertFields(RetryPolicy.Descriptor, retries.GetProperty("default_retry_policy").EnumerateObject().Where(p => p.Name != "retry_on").Select(p => p.Name));
        AssertEnum(E(JobReflection.Descriptor, "AttemptCause"), "ATTEMPT_CAUSE_", Strings(retries.GetProperty("default_retry_policy").GetProperty("retry_on")));
        AssertEnum(E(CommonReflection.Descriptor, "WorkloadClass"), "WORKLOAD_CLASS_", Strings(retries.GetProperty("chunkable_workloads")));
        // Idempotency "job_id + chunk_id": every chunk-carrying relay frame has both.
        foreach (var frame in new[] { MeshAI.Contracts.Relay.V1.JobResult.Descriptor, MeshAI.Contracts.Relay.V1.JobAccept.Descriptor, MeshAI.Contracts.Relay.V1.JobFailure.Descriptor, LedgerEvent.Descriptor })
        {
            AssertFields(frame, ["job_id", "chunk_id"]);
        }
    }

    [Test]
    public void Spec_enums_for_tiers_workloads_sensitivity_roles_and_network_fields_exist()
    {
        AssertEnum(E(CommonReflection.Descriptor, "Tier"), "TIER_", Spec.GetProperty("capabilities_and_tiers").GetProperty("tier_definitions").EnumerateArray().Select(t => t.GetProperty("tier").GetString()!.Replace("tier", "", StringComparison.Ordinal)));
        AssertEnum(E(CommonReflection.Descriptor, "WorkloadClass"), "WORKLOAD_CLASS_", Spec.GetProperty("workloads").GetProperty("v1_supported").EnumerateArray().Select(w => w.GetProperty("id").GetString()!));
        AssertEnum(E(CommonReflection.Descriptor, "DataSensitivityTag"), "DATA_SENSITIVITY_TAG_", Strings(Spec.GetProperty("security").GetProperty("privacy_controls").GetProperty("data_sensitivity_tags")));
        AssertEnum(E(CommonReflection.Descriptor, "Role"), "ROLE_", Spec.GetProperty("network_model").GetProperty("roles").EnumerateObject().Select(p => p.Name));
        AssertFields(NetworkMessage.Descriptor, Spec.GetProperty("ux").GetProperty("core_user_flows").GetProperty("create_network").GetProperty("fields").EnumerateArray().Select(f => f.GetProperty("key").GetString()!));
        AssertFields(DeviceMessage.Descriptor, Strings(Spec.GetProperty("ux").GetProperty("screens").GetProperty("devices_tab").GetProperty("device_card_fields")));
        AssertEnum(E(DeviceReflection.Descriptor, "ContributionMode"), "CONTRIBUTION_MODE_", Strings(Spec.GetProperty("ux").GetProperty("core_user_flows").GetProperty("contribute_compute").GetProperty("modes")));
        AssertEnum(E(NetworkReflection.Descriptor, "InviteType"), "INVITE_TYPE_", Strings(Spec.GetProperty("ux").GetProperty("core_user_flows").GetProperty("invite_user").GetProperty("invite_types")));
    }

    private static IEnumerable<string> Strings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString()!);

    private static void AssertFields(MessageDescriptor message, IEnumerable<string> names)
    {
        var missing = names.Where(n => message.FindFieldByName(n) is null).ToList();
        Assert.That(missing, Is.Empty, $"{message.FullName} lacks spec fields");
    }

    private static void AssertEnum(EnumDescriptor descriptor, string prefix, IEnumerable<string> specNames)
    {
        var values = descriptor.Values.Select(v => v.Name).ToHashSet(StringComparer.Ordinal);
        var missing = specNames.Select(n => prefix + n.ToUpperInvariant()).Where(n => !values.Contains(n)).ToList();
        Assert.That(missing, Is.Empty, $"{descriptor.FullName} lacks spec values");
    }

    private static EnumDescriptor E(FileDescriptor file, string name) => file.EnumTypes.Single(e => e.Name == name);

    [GeneratedRegex("^[a-z_]+")]
    private static partial Regex FilterName();
}

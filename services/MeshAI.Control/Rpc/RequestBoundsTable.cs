using MeshAI.Control.Security;

namespace MeshAI.Control.Rpc;

/// <summary>
/// The input contract: one explicit bound for every string, bytes, repeated, map and number field of every request
/// message (and of the workload input inside a job payload), keyed by the field's full proto name. A field missing here
/// fails <c>RequestBoundsContractTests</c>, which walks the descriptors; at run time it falls back to the conservative
/// default of its kind (<see cref="RequestBounds"/>). Bounds come from the named options (<see cref="InputLimits"/>,
/// <see cref="ControlLimits"/>), so an operator can change them without a release.
/// </summary>
public static class RequestBoundsTable
{
    /// <summary>Builds the table for the given option values.</summary>
    public static IReadOnlyDictionary<string, FieldBound> Build(InputLimits l, ControlLimits c)
    {
        ArgumentNullException.ThrowIfNull(l);
        ArgumentNullException.ThrowIfNull(c);
        const string I = "Control:Input:";
        const string C = "Control:Limits:";
        FieldBound Chars(int n, string option, bool multiLine = false) => new() { MaxChars = n, MultiLine = multiLine, Option = option };
        FieldBound Bytes(int n, string option) => new() { MaxBytes = n, Option = option };
        FieldBound Items(int n, string option) => new() { MaxItems = n, Option = option };
        FieldBound Range(long min, long max, string why) => new() { Min = min, Max = max, Option = why };
        FieldBound Real(double min, double max, string why) => new() { RealMin = min, RealMax = max, Option = why };
        FieldBound Map(int entries, int keyChars, int valueChars) =>
            new() { MaxItems = entries, MaxKeyChars = keyChars, MaxChars = valueChars, MultiLine = true, Option = I + "MapEntries, " + I + "NameChars, " + I + "TextChars" };

        var id = Chars(l.IdChars, I + "IdChars");
        var name = Chars(l.NameChars, I + "NameChars");
        var email = Chars(l.EmailChars, I + "EmailChars");
        var token = Chars(l.TokenChars, I + "TokenChars");
        var url = Chars(l.UrlChars, I + "UrlChars");
        var text = Chars(l.TextChars, I + "TextChars", multiLine: true);
        var json = Chars(l.JsonChars, I + "JsonChars", multiLine: true);
        var hash = Chars(l.HashChars, I + "HashChars");
        var key = Bytes(l.KeyBytes, I + "KeyBytes");
        var certificate = Bytes(l.CertificateBytes, I + "CertificateBytes");
        var blob = Bytes(l.BlobBytes, I + "BlobBytes");
        var list = Items(l.ListItems, I + "ListItems");
        var pageSize = Range(0, int.MaxValue, "0 = default; larger than Control:Limits:MaxPageSize is coerced down (AIP-158)");
        var unixMs = Range(0, long.MaxValue, "milliseconds since the epoch; the clock-skew check (Control:Limits:ProofClockSkewSeconds) bounds it further");
        var ramMb = Range(0, 1L << 24, "16 TiB in MiB");
        var latencyMs = Range(0, 600_000, "ten minutes");
        var percent = Range(0, 100, "percent");
        var thermal = Range(0, 4, "meshai.device.v1.ThermalState levels");
        var attempt = Range(0, 1_000_000, "attempt numbers");
        var rate = Range(0, l.MaxRateMicroPerMin, I + "MaxRateMicroPerMin");
        var runtimeMs = Range(0, int.MaxValue, "milliseconds (jobs time out after Control:Limits:MaxJobTimeoutMs)");

        return new Dictionary<string, FieldBound>(StringComparer.Ordinal)
        {
            // ---- common ----
            ["meshai.common.v1.TierRate.earn_micro_per_min"] = rate,
            ["meshai.common.v1.TierRate.burn_micro_per_min"] = rate,
            ["meshai.common.v1.Blob.name"] = name,
            ["meshai.common.v1.Blob.content_type"] = name,
            ["meshai.common.v1.Blob.inline_data"] = blob,
            ["meshai.common.v1.Blob.ref_uri"] = url,
            ["meshai.common.v1.Blob.sha256"] = hash,
            ["meshai.common.v1.Blob.size_bytes"] = Range(0, 1L << 40, "1 TiB"),
            ["google.protobuf.FieldMask.paths"] = id.Times(l.ListItems, I + "ListItems"),

            // ---- identity ----
            ["meshai.identity.v1.StartMagicLinkRequest.email"] = email,
            ["meshai.identity.v1.CompleteMagicLinkRequest.token"] = token,
            ["meshai.identity.v1.CompleteMagicLinkRequest.client_name"] = name,
            ["meshai.identity.v1.StartDeviceLoginRequest.email"] = email,
            ["meshai.identity.v1.StartDeviceLoginRequest.client_name"] = name,
            ["meshai.identity.v1.PollDeviceLoginRequest.device_code"] = token,
            ["meshai.identity.v1.ApproveDeviceLoginRequest.user_code"] = id,
            ["meshai.identity.v1.RevokeSessionRequest.session_id"] = id,
            ["meshai.identity.v1.CreateApiKeyRequest.network_id"] = id,
            ["meshai.identity.v1.CreateApiKeyRequest.name"] = name,
            ["meshai.identity.v1.CreateApiKeyRequest.scopes"] = id.Times(l.ListItems, I + "ListItems"),
            ["meshai.identity.v1.ListApiKeysRequest.network_id"] = id,
            ["meshai.identity.v1.RevokeApiKeyRequest.api_key_id"] = id,
            ["meshai.identity.v1.BeginPasskeyRegistrationRequest.passkey_name"] = name,
            ["meshai.identity.v1.FinishPasskeyRegistrationRequest.ceremony_id"] = id,
            ["meshai.identity.v1.FinishPasskeyRegistrationRequest.attestation_json"] = json,
            ["meshai.identity.v1.BeginPasskeyLoginRequest.email"] = email,
            ["meshai.identity.v1.FinishPasskeyLoginRequest.ceremony_id"] = id,
            ["meshai.identity.v1.FinishPasskeyLoginRequest.assertion_json"] = json,
            ["meshai.identity.v1.FinishPasskeyLoginRequest.client_name"] = name,
            ["meshai.identity.v1.StartOidcLoginRequest.redirect_uri"] = url,
            ["meshai.identity.v1.CompleteOidcLoginRequest.state"] = token,
            ["meshai.identity.v1.CompleteOidcLoginRequest.code"] = url,
            ["meshai.identity.v1.CompleteOidcLoginRequest.client_name"] = name,

            // ---- networks ----
            ["meshai.network.v1.CreateNetworkRequest.name"] = Chars(c.MaxNetworkNameLength, C + "MaxNetworkNameLength"),
            ["meshai.network.v1.GetNetworkRequest.network_id"] = id,
            ["meshai.network.v1.ListNetworksRequest.page_size"] = pageSize,
            ["meshai.network.v1.ListNetworksRequest.page_token"] = token,
            ["meshai.network.v1.UpdateNetworkSettingsRequest.network_id"] = id,
            ["meshai.network.v1.ListMembersRequest.network_id"] = id,
            ["meshai.network.v1.ListMembersRequest.page_size"] = pageSize,
            ["meshai.network.v1.ListMembersRequest.page_token"] = token,
            ["meshai.network.v1.InviteMemberRequest.network_id"] = id,
            ["meshai.network.v1.InviteMemberRequest.invitee"] = email,
            ["meshai.network.v1.ListInvitesRequest.network_id"] = id,
            ["meshai.network.v1.AcceptInviteRequest.invite_token"] = url,
            ["meshai.network.v1.ApproveMemberRequest.network_id"] = id,
            ["meshai.network.v1.ApproveMemberRequest.user_id"] = id,
            ["meshai.network.v1.UpdateMemberRoleRequest.network_id"] = id,
            ["meshai.network.v1.UpdateMemberRoleRequest.user_id"] = id,
            ["meshai.network.v1.RemoveMemberRequest.network_id"] = id,
            ["meshai.network.v1.RemoveMemberRequest.user_id"] = id,
            ["meshai.network.v1.RotateNetworkKeysRequest.network_id"] = id,

            // Network settings: the same bounds hold for CreateNetwork, UpdateNetworkSettings, UpdateCreditRates and what is stored.
            ["meshai.network.v1.NetworkSettings.auto_approve_allowlist"] = email.Times(l.ListItems, I + "ListItems"),
            ["meshai.network.v1.NetworkSettings.key_rotation_days"] = Range(0, l.MaxKeyRotationDays, I + "MaxKeyRotationDays (0 = off)"),
            ["meshai.network.v1.NetworkSettings.min_device_trust_level"] = Range(0, l.MaxTrustLevel, I + "MaxTrustLevel (0 = not configured)"),
            ["meshai.network.v1.CreditSettings.tier_rates"] = Items(5, "one rate per tier"),
            ["meshai.network.v1.CreditSettings.multiplier_bps"] = Range(0, l.MaxMultiplierBps, I + "MaxMultiplierBps (10000 = 1.0x)"),
            ["meshai.network.v1.CreditSettings.billing_granularity_ms"] = Range(0, l.MaxBillingGranularityMs, I + "MaxBillingGranularityMs"),
            ["meshai.network.v1.CreditSettings.relay_surcharge_micro_per_mib"] = Range(0, l.MaxRelaySurchargeMicroPerMib, I + "MaxRelaySurchargeMicroPerMib"),
            ["meshai.network.v1.CreditSettings.starting_grant_micro"] = Range(0, c.StartingGrantCredits > long.MaxValue / Common.Domain.Tiers.MicroPerCredit ? long.MaxValue : c.StartingGrantCredits * Common.Domain.Tiers.MicroPerCredit,
                C + "StartingGrantCredits (a creator may ask for less, never more)"),
            ["meshai.network.v1.CreditSettings.spot_check_sample_bps"] = Range(0, 10_000, "basis points (10000 = every eligible job)"),
            ["meshai.network.v1.CreditSettings.canary_rate_bps"] = Range(0, Ledger.Canary.MaxRateBps, "basis points of settled jobs followed by a canary (0 = off)"),
            ["meshai.network.v1.ScoringWeights.rtt_ms"] = Real(-l.MaxScoringWeight, l.MaxScoringWeight, I + "MaxScoringWeight"),
            ["meshai.network.v1.ScoringWeights.is_plugged_in"] = Real(-l.MaxScoringWeight, l.MaxScoringWeight, I + "MaxScoringWeight"),
            ["meshai.network.v1.ScoringWeights.thermal_headroom"] = Real(-l.MaxScoringWeight, l.MaxScoringWeight, I + "MaxScoringWeight"),
            ["meshai.network.v1.ScoringWeights.idle_score"] = Real(-l.MaxScoringWeight, l.MaxScoringWeight, I + "MaxScoringWeight"),
            ["meshai.network.v1.ScoringWeights.credit_rate_efficiency"] = Real(-l.MaxScoringWeight, l.MaxScoringWeight, I + "MaxScoringWeight"),
            ["meshai.network.v1.MobileSafetyDefaults.min_battery_percent"] = percent,
            ["meshai.network.v1.MobileSafetyDefaults.max_thermal_level"] = thermal,
            ["meshai.network.v1.RetryPolicy.max_attempts"] = Range(0, l.MaxRetryAttempts, I + "MaxRetryAttempts"),
            ["meshai.network.v1.RetryPolicy.backoff_ms"] = Range(0, l.MaxBackoffMs, I + "MaxBackoffMs").Times(l.MaxRetryAttempts, I + "MaxRetryAttempts"),

            // ---- policies ----
            ["meshai.network.v1.GetPolicyRequest.network_id"] = id,
            ["meshai.network.v1.UpdatePolicyRequest.expected_version"] = Range(0, long.MaxValue, "a stored version"),
            ["meshai.network.v1.EvaluatePolicyRequest.network_id"] = id,
            ["meshai.network.v1.Policy.network_id"] = id,
            ["meshai.network.v1.Policy.rules"] = Items(l.PolicyItems, I + "PolicyItems"),
            ["meshai.network.v1.Policy.tests"] = Items(l.PolicyItems, I + "PolicyItems"),
            ["meshai.network.v1.Policy.version"] = Range(0, long.MaxValue, "ignored on input"),
            ["meshai.network.v1.PolicyRule.name"] = name,
            ["meshai.network.v1.PolicyRule.workload_classes"] = list,
            ["meshai.network.v1.PolicyRule.sensitivity_tags"] = list,
            ["meshai.network.v1.PolicyRule.member_roles"] = list,
            ["meshai.network.v1.PolicyRule.time_of_day"] = Chars(11, "\"HH:MM-HH:MM\""),
            ["meshai.network.v1.PolicyRule.device_ids"] = id.Times(l.ListItems, I + "ListItems"),
            ["meshai.network.v1.MobileStateConstraints.min_battery_percent"] = percent,
            ["meshai.network.v1.MobileStateConstraints.max_thermal_level"] = thermal,
            ["meshai.network.v1.MobileStateConstraints.denied_sensitivity_tags"] = list,
            ["meshai.network.v1.PolicyTest.name"] = name,
            ["meshai.network.v1.PolicyQuery.device_id"] = id,
            ["meshai.network.v1.PolicyQuery.minute_of_day"] = Range(0, 1439, "minutes since local midnight"),
            ["meshai.network.v1.PolicyQuery.device_battery_percent"] = percent,
            ["meshai.network.v1.PolicyQuery.device_thermal_level"] = thermal,
            ["meshai.network.v1.PolicyQuery.model"] = name,

            // ---- devices ----
            ["meshai.device.v1.CreateJoinTokenRequest.network_id"] = id,
            ["meshai.device.v1.CreateJoinTokenRequest.ttl_seconds"] = Range(0, c.JoinTokenMaxTtlSeconds, C + "JoinTokenMaxTtlSeconds (0 = default)"),
            ["meshai.device.v1.CreateJoinTokenRequest.max_uses"] = Range(0, l.MaxJoinTokenUses, I + "MaxJoinTokenUses (0 = one)"),
            ["meshai.device.v1.RegisterDeviceRequest.join_token"] = url,
            ["meshai.device.v1.RegisterDeviceRequest.device_name"] = name,
            ["meshai.device.v1.RegisterDeviceRequest.installation_id"] = id,
            ["meshai.device.v1.RegisterDeviceRequest.signing_public_key"] = key,
            ["meshai.device.v1.RegisterDeviceRequest.encryption_public_key"] = key,
            ["meshai.device.v1.RegisterDeviceRequest.timestamp_unix_ms"] = unixMs,
            ["meshai.device.v1.RegisterDeviceRequest.proof_signature"] = key,
            ["meshai.device.v1.CapabilityReport.cpu_cores"] = Range(0, 65_536, "cores"),
            ["meshai.device.v1.CapabilityReport.cpu_arch"] = name,
            ["meshai.device.v1.CapabilityReport.ram_mb"] = ramMb,
            ["meshai.device.v1.CapabilityReport.gpu_vram_mb"] = ramMb,
            ["meshai.device.v1.CapabilityReport.os"] = name,
            ["meshai.device.v1.CapabilityReport.network_rtt_ms"] = latencyMs,
            ["meshai.device.v1.CapabilityReport.uplink_mbps"] = Range(0, 10_000_000, "10 Tbit/s"),
            ["meshai.device.v1.CapabilityReport.downlink_mbps"] = Range(0, 10_000_000, "10 Tbit/s"),
            ["meshai.device.v1.CapabilityReport.idle_score"] = Real(0, 1, "a share"),
            ["meshai.device.v1.CapabilityReport.workloads"] = list,
            ["meshai.device.v1.CapabilityReport.lan_addresses"] = Chars(64, "a CIDR address").Times(l.ListItems, I + "ListItems"),
            ["meshai.device.v1.CapabilityReport.thermal_millicelsius"] = Range(-100_000, 300_000, "milli-degrees C"),
            ["meshai.device.v1.CapabilityReport.models"] = list,
            ["meshai.device.v1.InstalledModel.name"] = name,
            ["meshai.device.v1.InstalledModel.version"] = name,
            ["meshai.device.v1.InstalledModel.sha256"] = hash,
            ["meshai.device.v1.InstalledModel.dimension"] = Range(0, 1 << 20, "embedding dimensions"),
            ["meshai.device.v1.BatteryState.percent"] = percent,
            ["meshai.device.v1.StartDevicePairingRequest.device_name"] = name,
            ["meshai.device.v1.StartDevicePairingRequest.installation_id"] = id,
            ["meshai.device.v1.ApproveDevicePairingRequest.user_code"] = id,
            ["meshai.device.v1.ApproveDevicePairingRequest.network_id"] = id,
            ["meshai.device.v1.PollDevicePairingRequest.pairing_secret"] = token,
            ["meshai.device.v1.GetDeviceRequest.network_id"] = id,
            ["meshai.device.v1.GetDeviceRequest.device_id"] = id,
            ["meshai.device.v1.ListDevicesRequest.network_id"] = id,
            ["meshai.device.v1.ListDevicesRequest.page_size"] = pageSize,
            ["meshai.device.v1.ListDevicesRequest.page_token"] = token,
            ["meshai.device.v1.UpdateDeviceRequest.network_id"] = id,
            ["meshai.device.v1.UpdateDeviceRequest.device_id"] = id,
            ["meshai.device.v1.UpdateDeviceRequest.name"] = name,
            ["meshai.device.v1.UpdateDeviceRequest.pinned_workloads"] = list,
            ["meshai.device.v1.RevokeDeviceRequest.network_id"] = id,
            ["meshai.device.v1.RevokeDeviceRequest.device_id"] = id,
            ["meshai.device.v1.RevokeDeviceRequest.reason"] = text,
            ["meshai.device.v1.RenewCertificateRequest.timestamp_unix_ms"] = unixMs,
            ["meshai.device.v1.RenewCertificateRequest.proof_signature"] = key,
            ["meshai.device.v1.DeviceCertificate.details"] = certificate,
            ["meshai.device.v1.DeviceCertificate.signature"] = key,

            // ---- jobs ----
            ["meshai.job.v1.PlanJobRequest.max_candidates"] = Range(0, RecipientPlanner.MaxCandidates, "RecipientPlanner.MaxCandidates (0 = default)"),
            ["meshai.job.v1.SubmitJobRequest.idempotency_key"] = token,
            ["meshai.job.v1.RunJobRequest.idempotency_key"] = token,
            ["meshai.job.v1.JobEnvelope.job_id"] = id,
            ["meshai.job.v1.JobEnvelope.network_id"] = id,
            ["meshai.job.v1.JobEnvelope.submitted_by_user_id"] = id,
            ["meshai.job.v1.JobEnvelope.max_cost_credits"] = Range(0, l.MaxCostCapMicro, I + "MaxCostCapMicro (0 = no cap)"),
            ["meshai.job.v1.JobEnvelope.max_cost_micro"] = Range(0, l.MaxCostCapMicro, I + "MaxCostCapMicro (0 = no cap)"),
            ["meshai.job.v1.JobEnvelope.timeout_ms"] = Range(0, c.MaxJobTimeoutMs, C + "MaxJobTimeoutMs (0 = default)"),
            ["meshai.job.v1.JobEnvelope.trace_id"] = id,
            ["meshai.job.v1.InputManifest.payload"] = Bytes(c.MaxPayloadBytes, C + "MaxPayloadBytes"),
            ["meshai.job.v1.InputManifest.blobs"] = Items(l.Blobs, I + "Blobs"),
            ["meshai.job.v1.InputManifest.payload_sha256"] = hash,
            ["meshai.job.v1.InputManifest.labels"] = Map(l.MapEntries, l.NameChars, l.TextChars),
            ["meshai.job.v1.ResourceRequest.min_ram_mb"] = ramMb,
            ["meshai.job.v1.ResourceRequest.max_latency_ms"] = latencyMs,
            ["meshai.job.v1.ResourceRequest.requires_pinned_device_ids_optional"] = id.Times(l.ListItems, I + "ListItems"),
            ["meshai.job.v1.ResourceRequest.model"] = name,
            ["meshai.job.v1.SubmitterSignature.public_key"] = key,
            ["meshai.job.v1.SubmitterSignature.signature"] = key,
            ["meshai.job.v1.PayloadEncryption.payload_nonce"] = key,
            ["meshai.job.v1.PayloadEncryption.recipients"] = Items(RecipientPlanner.MaxCandidates, "RecipientPlanner.MaxCandidates"),
            ["meshai.job.v1.PayloadEncryption.submitter_public_key"] = key,
            ["meshai.job.v1.WrappedKey.device_id"] = id,
            ["meshai.job.v1.WrappedKey.ephemeral_public_key"] = key,
            ["meshai.job.v1.WrappedKey.nonce"] = key,
            ["meshai.job.v1.WrappedKey.wrapped_content_key"] = key,
            // ---- chunked blobs (BlobStore checks size, digest format and exact chunk sizes against Control:Blobs) ----
            ["meshai.job.v1.StartBlobUploadRequest.network_id"] = id,
            ["meshai.job.v1.StartBlobUploadRequest.size_bytes"] = Range(0, long.MaxValue, "bytes; Control:Blobs:MaxBlobBytes bounds it (BLOB_TOO_LARGE)"),
            ["meshai.job.v1.StartBlobUploadRequest.sha256"] = hash,
            ["meshai.job.v1.StartBlobUploadRequest.content_type"] = name,
            ["meshai.job.v1.UploadBlobChunkRequest.network_id"] = id,
            ["meshai.job.v1.UploadBlobChunkRequest.upload_id"] = id,
            ["meshai.job.v1.UploadBlobChunkRequest.index"] = Range(0, int.MaxValue, "chunk index; BlobStore checks it against the upload (BLOB_CHUNK_OUT_OF_RANGE)"),
            ["meshai.job.v1.UploadBlobChunkRequest.data"] = Bytes(Blobs.BlobOptions.MaxChunkBytes, "Control:Blobs:ChunkBytes (at most 8 MiB; BlobStore checks the exact size)"),
            ["meshai.job.v1.FinishBlobUploadRequest.network_id"] = id,
            ["meshai.job.v1.FinishBlobUploadRequest.upload_id"] = id,
            ["meshai.job.v1.ReadBlobRequest.network_id"] = id,
            ["meshai.job.v1.ReadBlobRequest.sha256"] = hash,
            ["meshai.job.v1.ReadBlobRequest.first_index"] = Range(0, int.MaxValue, "chunk index; checked against the blob (BLOB_CHUNK_OUT_OF_RANGE)"),
            ["meshai.job.v1.ReadJobBlobRequest.network_id"] = id,
            ["meshai.job.v1.ReadJobBlobRequest.job_id"] = id,
            ["meshai.job.v1.ReadJobBlobRequest.attempt"] = Range(0, int.MaxValue, "attempt number; JobBlobAccess checks it is open on the caller"),
            ["meshai.job.v1.ReadJobBlobRequest.sha256"] = hash,
            ["meshai.job.v1.ReadJobBlobRequest.first_index"] = Range(0, int.MaxValue, "chunk index; checked against the blob (BLOB_CHUNK_OUT_OF_RANGE)"),
            ["meshai.job.v1.WatchJobRequest.network_id"] = id,
            ["meshai.job.v1.WatchJobRequest.job_id"] = id,
            ["meshai.job.v1.GetJobRequest.network_id"] = id,
            ["meshai.job.v1.GetJobRequest.job_id"] = id,
            ["meshai.job.v1.ListJobsRequest.network_id"] = id,
            ["meshai.job.v1.ListJobsRequest.page_size"] = pageSize,
            ["meshai.job.v1.ListJobsRequest.page_token"] = token,
            ["meshai.job.v1.ListJobsRequest.states"] = list,
            ["meshai.job.v1.CancelJobRequest.network_id"] = id,
            ["meshai.job.v1.CancelJobRequest.job_id"] = id,
            ["meshai.job.v1.ExplainJobRequest.network_id"] = id,
            ["meshai.job.v1.ExplainJobRequest.job_id"] = id,

            // The decrypted workload input (inside JobEnvelope.input_manifest.payload; checked by JobEnvelopeValidator).
            ["meshai.job.v1.EmbeddingsInput.texts"] = Chars(l.EmbeddingTextChars, I + "EmbeddingTextChars", multiLine: true).Times(c.MaxEmbeddingTexts, C + "MaxEmbeddingTexts"),
            ["meshai.job.v1.EmbeddingsInput.model"] = name,
            ["meshai.job.v1.OcrInput.image_blob"] = name,
            ["meshai.job.v1.OcrInput.language"] = id,
            ["meshai.job.v1.OcrInput.max_side_px"] = Range(0, 65_536, "pixels (0 = the handler's default)"),
            ["meshai.job.v1.ChatInput.messages"] = Items(l.WorkloadItems, I + "WorkloadItems"),
            ["meshai.job.v1.ChatInput.model"] = name,
            ["meshai.job.v1.ChatInput.max_tokens"] = Range(0, l.MaxChatTokens, I + "MaxChatTokens"),
            ["meshai.job.v1.ChatInput.temperature"] = Real(0, 10, "sampling temperature"),
            ["meshai.job.v1.ChatInput.context_tokens"] = Range(0, 1 << 24, "tokens"),
            ["meshai.job.v1.ChatInput.stop"] = text.Times(l.ListItems, I + "ListItems"),
            ["meshai.job.v1.ChatInput.seed"] = Range(0, uint.MaxValue, "a 32-bit sampling seed"),
            ["meshai.job.v1.ChatMessage.content"] = Chars(l.ChatContentChars, I + "ChatContentChars", multiLine: true),
            ["meshai.job.v1.TranscribeInput.audio_blob"] = name,
            ["meshai.job.v1.TranscribeInput.language"] = id,
            ["meshai.job.v1.TranscribeInput.chunk_ms"] = Range(0, 3_600_000, "one hour (0 = the server's default)"),
            ["meshai.job.v1.BatchInput.items"] = Chars(l.TextChars, I + "TextChars", multiLine: true).Times(l.WorkloadItems, I + "WorkloadItems"),
            ["meshai.job.v1.BatchInput.operation"] = name,
            ["meshai.job.v1.EchoInput.data"] = Bytes(c.MaxPayloadBytes, C + "MaxPayloadBytes"),
            ["meshai.job.v1.EchoInput.delay_ms"] = Range(0, c.MaxJobTimeoutMs, C + "MaxJobTimeoutMs"),
            ["meshai.job.v1.EchoInput.hash_blob"] = name,

            // ---- ledger ----
            ["meshai.ledger.v1.ListLedgerEventsRequest.network_id"] = id,
            ["meshai.ledger.v1.ListLedgerEventsRequest.page_size"] = pageSize,
            ["meshai.ledger.v1.ListLedgerEventsRequest.page_token"] = token,
            ["meshai.ledger.v1.ListLedgerEventsRequest.job_id"] = id,
            ["meshai.ledger.v1.GetBalancesRequest.network_id"] = id,
            ["meshai.ledger.v1.ExportLedgerRequest.network_id"] = id,
            ["meshai.ledger.v1.ReconcileLedgerRequest.network_id"] = id,
            ["meshai.ledger.v1.GetCreditRatesRequest.network_id"] = id,
            ["meshai.ledger.v1.UpdateCreditRatesRequest.network_id"] = id,
            ["meshai.ledger.v1.UpdateCreditRatesRequest.tier_rates"] = Items(5, "one rate per tier"),
            ["meshai.ledger.v1.UpdateCreditRatesRequest.multiplier_bps"] = Range(0, l.MaxMultiplierBps, I + "MaxMultiplierBps (0 = keep)"),
            ["meshai.ledger.v1.UpdateCreditRatesRequest.billing_granularity_ms"] = Range(0, l.MaxBillingGranularityMs, I + "MaxBillingGranularityMs (0 = keep)"),

            // ---- models ----
            ["meshai.model.v1.ListModelManifestsRequest.network_id"] = id,
            ["meshai.model.v1.GetModelManifestRequest.network_id"] = id,
            ["meshai.model.v1.GetModelManifestRequest.name"] = name,
            ["meshai.model.v1.ModelManifestDetails.network_id"] = id,
            ["meshai.model.v1.ModelManifestDetails.name"] = name,
            ["meshai.model.v1.ModelManifestDetails.version"] = name,
            ["meshai.model.v1.ModelManifestDetails.files"] = Items(l.ModelFiles, I + "ModelFiles"),
            ["meshai.model.v1.ModelManifestDetails.parameters"] = Map(l.MapEntries, l.NameChars, l.TextChars),
            ["meshai.model.v1.ModelFile.path"] = Chars(l.PathChars, I + "PathChars"),
            ["meshai.model.v1.ModelFile.sha256"] = hash,
            ["meshai.model.v1.ModelFile.size_bytes"] = Range(0, 1L << 40, "1 TiB"),
            ["meshai.model.v1.ModelFile.source"] = url,

            // ---- audit ----
            ["meshai.audit.v1.ListAuditEventsRequest.network_id"] = id,
            ["meshai.audit.v1.ListAuditEventsRequest.page_size"] = pageSize,
            ["meshai.audit.v1.ListAuditEventsRequest.page_token"] = token,
            ["meshai.audit.v1.ExportAuditEventsRequest.network_id"] = id,

            // ---- relay frames (agent → relay) ----
            ["meshai.relay.v1.ConnectRequest.sequence"] = Range(0, long.MaxValue, "a counter"),
            ["meshai.relay.v1.ConnectRequest.traceparent"] = Chars(l.IdChars * 2, I + "IdChars ×2 (a W3C traceparent is 55)"),
            ["meshai.relay.v1.AgentHello.agent_version"] = name,
            ["meshai.relay.v1.AgentHello.protocol_version"] = Range(0, 1000, "a protocol version"),
            ["meshai.relay.v1.AgentHello.held_attempts"] = Items(l.HeldAttempts, I + "HeldAttempts"),
            ["meshai.relay.v1.AgentHello.network_serial"] = Range(0, long.MaxValue, "a counter"),
            ["meshai.relay.v1.HeldAttempt.job_id"] = id,
            ["meshai.relay.v1.HeldAttempt.attempt"] = attempt,
            ["meshai.relay.v1.HeldAttempt.chunk_id"] = id,
            ["meshai.relay.v1.NetworkUpdateAck.serial"] = Range(0, long.MaxValue, "a counter"),
            ["meshai.relay.v1.ChallengeAnswer.signature"] = key,
            ["meshai.relay.v1.Heartbeat.sequence"] = Range(0, long.MaxValue, "a counter"),
            ["meshai.relay.v1.Heartbeat.running_jobs"] = Chars(l.IdChars * 2, I + "IdChars ×2 (job_id/attempt)").Times(l.ListItems, I + "ListItems"),
            ["meshai.relay.v1.JobAccept.job_id"] = id,
            ["meshai.relay.v1.JobAccept.attempt"] = attempt,
            ["meshai.relay.v1.JobAccept.chunk_id"] = id,
            ["meshai.relay.v1.JobDecline.job_id"] = id,
            ["meshai.relay.v1.JobDecline.attempt"] = attempt,
            ["meshai.relay.v1.JobDecline.chunk_id"] = id,
            ["meshai.relay.v1.JobDecline.detail"] = text,
            ["meshai.relay.v1.JobProgress.job_id"] = id,
            ["meshai.relay.v1.JobProgress.attempt"] = attempt,
            ["meshai.relay.v1.JobProgress.chunk_id"] = id,
            ["meshai.relay.v1.JobProgress.fraction"] = Real(0, 1, "a share"),
            ["meshai.relay.v1.JobProgress.message"] = text,
            ["meshai.relay.v1.JobToken.job_id"] = id,
            ["meshai.relay.v1.JobToken.attempt"] = attempt,
            ["meshai.relay.v1.JobToken.token"] = Bytes(l.TokenFrameBytes, I + "TokenFrameBytes"),
            ["meshai.relay.v1.JobToken.index"] = Range(0, int.MaxValue, "a counter"),
            ["meshai.relay.v1.JobToken.nonce"] = key,
            ["meshai.relay.v1.JobToken.resume_text"] = Bytes(l.TokenFrameBytes, I + "TokenFrameBytes"),
            ["meshai.relay.v1.JobToken.resume_nonce"] = key,
            ["meshai.relay.v1.JobLog.job_id"] = id,
            ["meshai.relay.v1.JobLog.attempt"] = attempt,
            ["meshai.relay.v1.JobLog.message"] = text,
            ["meshai.relay.v1.JobLog.fields"] = Map(l.MapEntries, l.NameChars, l.TextChars),
            ["meshai.relay.v1.JobResult.job_id"] = id,
            ["meshai.relay.v1.JobResult.attempt"] = attempt,
            ["meshai.relay.v1.JobResult.chunk_id"] = id,
            ["meshai.relay.v1.JobResult.output"] = Bytes(l.ResultBytes, I + "ResultBytes"),
            ["meshai.relay.v1.JobResult.blobs"] = Items(l.Blobs, I + "Blobs"),
            ["meshai.relay.v1.JobResult.nonce"] = key,
            ["meshai.relay.v1.Metering.runtime_ms"] = runtimeMs,
            ["meshai.relay.v1.Metering.peak_memory_mb"] = ramMb,
            ["meshai.relay.v1.Metering.heartbeats_during_run"] = Range(0, int.MaxValue, "a counter"),
            ["meshai.relay.v1.JobFailure.job_id"] = id,
            ["meshai.relay.v1.JobFailure.attempt"] = attempt,
            ["meshai.relay.v1.JobFailure.chunk_id"] = id,
            ["meshai.relay.v1.JobFailure.error"] = text,

            // ---- fields the branches merged into integrate added (web relay #13, sign-in links and network watch #12, chat resume #14) ----
            ["meshai.identity.v1.CreateSignInLinkRequest.next_path"] = url,
            ["meshai.network.v1.WatchNetworkRequest.network_id"] = id,
            ["meshai.job.v1.ChatResume.assistant_text"] = Chars(1 << 20, "1 MiB (the agent's JobTokenStream.MaxResumeTextBytes, docs/chat-resume.md)", multiLine: true),
            ["meshai.job.v1.ChatResume.next_index"] = Range(0, 4096, "the agent's JobTokenStream.MaxResumeTokens (docs/chat-resume.md)"),
            ["meshai.relay.v1.AnswerChallengeRequest.session_id"] = token,
            ["meshai.relay.v1.SendHeartbeatRequest.session_id"] = token,
            ["meshai.relay.v1.AcceptJobRequest.session_id"] = token,
            ["meshai.relay.v1.DeclineJobRequest.session_id"] = token,
            ["meshai.relay.v1.ReportProgressRequest.session_id"] = token,
            ["meshai.relay.v1.ReportResultRequest.session_id"] = token,
            ["meshai.relay.v1.ReportFailureRequest.session_id"] = token,
            ["meshai.relay.v1.GetDeviceStatusRequest.session_id"] = token,
            ["meshai.relay.v1.AcceptJobRequest.sequence"] = Range(0, long.MaxValue, "a counter"),
            ["meshai.relay.v1.DeclineJobRequest.sequence"] = Range(0, long.MaxValue, "a counter"),
            ["meshai.relay.v1.ReportResultRequest.sequence"] = Range(0, long.MaxValue, "a counter"),
            ["meshai.relay.v1.ReportFailureRequest.sequence"] = Range(0, long.MaxValue, "a counter"),
        };
    }
}

// How numbers, times and enum values read in the UI (one place, so every screen says the same thing).
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  AttemptCause,
  ContributionMode,
  DataSensitivityTag,
  EligibilityFilter,
  JobState,
  OnlineStatus,
  Platform,
  Role,
  RoutingMode,
  ThermalState,
  Tier,
  WorkloadClass,
} from "@meshai/client";

const MICRO = 1_000_000n;

/** Micro-credits as credits with up to 3 decimals ("1,000", "0.125", "-2.5"). */
export function credits(micro: bigint | number | undefined): string {
  const value = BigInt(micro ?? 0);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const whole = abs / MICRO;
  const fraction = Number(abs % MICRO) / 1e6;
  const text = (Number(whole) + fraction).toLocaleString("en-US", { maximumFractionDigits: fraction > 0 && whole < 100n ? 3 : 2 });
  return (negative ? "-" : "") + text;
}

/** Credits (a number a person typed) as micro-credits. */
export function toMicro(creditsText: string): bigint {
  const value = Number(creditsText);
  if (!Number.isFinite(value)) throw new Error(`"${creditsText}" is not a number`);
  return BigInt(Math.round(value * 1e6));
}

export function ms(value: bigint | number | undefined): string {
  const n = Number(value ?? 0);
  if (n < 1000) return `${n} ms`;
  if (n < 60_000) return `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(n / 60_000)} min ${Math.round((n % 60_000) / 1000)} s`;
}

export function bytes(value: bigint | number | undefined): string {
  const n = Number(value ?? 0);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function date(ts: Timestamp | undefined): Date | undefined {
  return ts ? new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6)) : undefined;
}

/** "just now", "5 min ago", "3 h ago", else a date. */
export function ago(ts: Timestamp | undefined, now = Date.now()): string {
  const d = date(ts);
  if (!d) return "never";
  const s = Math.round((now - d.getTime()) / 1000);
  if (s < 10) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return d.toLocaleDateString();
}

export function dateTime(ts: Timestamp | undefined): string {
  return date(ts)?.toLocaleString() ?? "—";
}

export const tierLabel: Record<Tier, string> = {
  [Tier.TIER_UNSPECIFIED]: "Unknown tier",
  [Tier.TIER_0]: "Tier 0 · Phone CPU",
  [Tier.TIER_1]: "Tier 1 · Phone NPU",
  [Tier.TIER_2]: "Tier 2 · Laptop CPU",
  [Tier.TIER_3]: "Tier 3 · Small GPU",
  [Tier.TIER_4]: "Tier 4 · Server GPU",
};

export const tierShort = (t: Tier): string => (t === Tier.TIER_UNSPECIFIED ? "—" : `Tier ${t - 1}`);

export const platformLabel: Record<Platform, string> = {
  [Platform.UNSPECIFIED]: "Unknown",
  [Platform.LINUX]: "Linux",
  [Platform.MACOS]: "macOS",
  [Platform.WINDOWS]: "Windows",
  [Platform.IOS]: "iOS",
  [Platform.ANDROID]: "Android",
  [Platform.WEB]: "Browser",
};

export const onlineLabel: Record<OnlineStatus, string> = {
  [OnlineStatus.UNSPECIFIED]: "Unknown",
  [OnlineStatus.ONLINE]: "Online",
  [OnlineStatus.OFFLINE]: "Offline",
  [OnlineStatus.REVOKED]: "Removed",
};

export const contributionLabel: Record<ContributionMode, string> = {
  [ContributionMode.UNSPECIFIED]: "Default",
  [ContributionMode.MANUAL_TOGGLE]: "Manual toggle",
  [ContributionMode.SCHEDULED]: "Scheduled",
  [ContributionMode.POLICY_DRIVEN]: "Policy-driven",
};

export const thermalLabel: Record<ThermalState, string> = {
  [ThermalState.UNSPECIFIED]: "—",
  [ThermalState.NOMINAL]: "Nominal",
  [ThermalState.FAIR]: "Fair",
  [ThermalState.SERIOUS]: "Serious",
  [ThermalState.CRITICAL]: "Critical",
};

export const workloadLabel: Record<WorkloadClass, string> = {
  [WorkloadClass.UNSPECIFIED]: "Unknown",
  [WorkloadClass.EMBEDDINGS]: "Embeddings",
  [WorkloadClass.OCR_PREPROCESS]: "OCR",
  [WorkloadClass.SMALL_CHAT]: "Chat",
  [WorkloadClass.AUDIO_TRANSCRIBE_CHUNKED]: "Transcription",
  [WorkloadClass.BATCH_JOBS_EVAL_OR_SYNTH]: "Batch",
  [WorkloadClass.DIAGNOSTIC_ECHO]: "Diagnostic echo",
};

export const jobStateLabel: Record<JobState, string> = {
  [JobState.UNSPECIFIED]: "Unknown",
  [JobState.QUEUED]: "Queued",
  [JobState.PLACED]: "Placed",
  [JobState.RUNNING]: "Running",
  [JobState.COMPLETED]: "Completed",
  [JobState.FAILED]: "Failed",
  [JobState.CANCELLED]: "Cancelled",
};

export const routingLabel: Record<RoutingMode, string> = {
  [RoutingMode.UNSPECIFIED]: "Auto",
  [RoutingMode.AUTO]: "Auto (best device)",
  [RoutingMode.PINNED_DEVICE]: "Pinned device",
  [RoutingMode.PINNED_TIER]: "Pinned tier",
  [RoutingMode.LOCAL_PREFER]: "Prefer local network",
};

export const sensitivityLabel: Record<DataSensitivityTag, string> = {
  [DataSensitivityTag.UNSPECIFIED]: "Default",
  [DataSensitivityTag.PUBLIC]: "Public",
  [DataSensitivityTag.PRIVATE]: "Private",
  [DataSensitivityTag.SENSITIVE]: "Sensitive",
};

export const roleLabel: Record<Role, string> = {
  [Role.UNSPECIFIED]: "—",
  [Role.ADMIN]: "Admin",
  [Role.MEMBER]: "Member",
  [Role.GUEST]: "Guest",
};

export const causeLabel: Record<AttemptCause, string> = {
  [AttemptCause.UNSPECIFIED]: "In progress",
  [AttemptCause.SUCCEEDED]: "Succeeded",
  [AttemptCause.DISCONNECT]: "Device disconnected",
  [AttemptCause.TIMEOUT]: "Timed out",
  [AttemptCause.NODE_DECLINE]: "Device declined",
  [AttemptCause.WORKLOAD_ERROR]: "Workload error",
  [AttemptCause.CANCELLED]: "Cancelled",
  [AttemptCause.COST_CAP]: "Cost cap reached",
};

export const filterLabel: Record<EligibilityFilter, string> = {
  [EligibilityFilter.UNSPECIFIED]: "Eligible",
  [EligibilityFilter.NETWORK_MEMBERSHIP]: "Network membership",
  [EligibilityFilter.POLICY_ALLOWS]: "Policy",
  [EligibilityFilter.DEVICE_MEETS]: "Resources",
  [EligibilityFilter.DEVICE_STATE_OK]: "Device state",
  [EligibilityFilter.DEVICE_TRUST_LEVEL_OK]: "Trust level",
  [EligibilityFilter.ONLINE]: "Online",
  [EligibilityFilter.PINNED]: "Pinning",
  [EligibilityFilter.CONTRIBUTION_ENABLED]: "Contribution",
  [EligibilityFilter.WORKLOAD_SUPPORTED]: "Workload support",
  [EligibilityFilter.MODEL_AVAILABLE]: "Model",
};

/** Workloads a person can run from the dashboard, in menu order. */
export const runnableWorkloads: WorkloadClass[] = [
  WorkloadClass.EMBEDDINGS,
  WorkloadClass.OCR_PREPROCESS,
  WorkloadClass.SMALL_CHAT,
  WorkloadClass.AUDIO_TRANSCRIBE_CHUNKED,
  WorkloadClass.DIAGNOSTIC_ECHO,
];

// Running a workload from the browser exactly like the C# SDK: the input is serialized, sealed end to end for PlanJob's
// candidates (their keys signed by the network's control key), submitted, and watched; streamed tokens and the result
// come back sealed to this browser's submitter key (kept in IndexedDB) and are opened here. Control and the relay only
// ever see ciphertext. The estimate is asked with a shape-only probe (same workload and counts, no content).
import { create, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  JobEnvelopeSchema,
  JobState,
  PayloadEncryptionScheme,
  RoutingMode,
  WorkloadClass,
  WorkloadInputSchema,
  openResult,
  openToken,
} from "@meshai/client";
import type { BlobSchema, DataSensitivityTag, EstimateJobResponse, Job, JobLogFrame, ResourceRequestSchema, WorkloadInput, WorkloadOutput } from "@meshai/client";

import { api } from "../shared/api";
import { x25519Key } from "../shared/keystore";

/** The key results of jobs submitted from this browser are sealed to. */
export const submitterKey = () => x25519Key("dashboard-submitter");

export interface Routing {
  mode: RoutingMode;
  deviceId?: string;
  tier?: number;
  sensitivity: DataSensitivityTag;
  maxCostMicro?: bigint;
}

export interface RunState {
  job?: Job;
  progress?: { fraction: number; message: string; chunksCompleted: number; chunkCount: number };
  tokens: string;
  /** Token frames received (and opened) before the result. */
  tokenFrames: number;
  logs: JobLogFrame[];
  output?: WorkloadOutput;
  error?: unknown;
  done: boolean;
}

/** What this browser remembers of jobs it ran (logs are streamed, not stored by the server; the OCR image stays here). */
export interface LocalJob {
  logs: JobLogFrame[];
  imageUrl?: string;
  tokens?: string;
}
export const localJobs = new Map<string, LocalJob>();

const resources = (r: Routing): MessageInitShape<typeof ResourceRequestSchema> => ({
  ...(r.mode === RoutingMode.PINNED_DEVICE && r.deviceId ? { requiresPinnedDeviceIdsOptional: [r.deviceId] } : {}),
  ...(r.mode === RoutingMode.PINNED_TIER && r.tier ? { pinnedTier: r.tier, minTier: r.tier } : {}),
});

/**
 * The same input with every piece of content replaced: what EstimateJob needs (workload, counts), nothing a person typed.
 * Each non-blank text or message becomes one placeholder character (the input rules refuse blank ones, and a blank one
 * stays blank so the estimate names the line the submit would refuse); files keep only their references.
 */
const PLACEHOLDER = "x";
const placeholder = (text: string) => (text.trim() === "" ? text : PLACEHOLDER);

export function shapeOnly(input: MessageInitShape<typeof WorkloadInputSchema>): WorkloadInput {
  const full = create(WorkloadInputSchema, input);
  const v = full.input;
  switch (v.case) {
    case "embeddings":
      return create(WorkloadInputSchema, { input: { case: "embeddings", value: { texts: v.value.texts.map(placeholder), model: v.value.model } } });
    case "ocr":
      return create(WorkloadInputSchema, { input: { case: "ocr", value: { imageBlob: v.value.imageBlob, language: v.value.language } } });
    case "chat":
      return create(WorkloadInputSchema, { input: { case: "chat", value: { maxTokens: v.value.maxTokens, messages: v.value.messages.map((m) => ({ role: m.role, content: placeholder(m.content) })) } } });
    case "transcribe":
      return create(WorkloadInputSchema, { input: { case: "transcribe", value: { audioBlob: v.value.audioBlob, language: v.value.language, chunkMs: v.value.chunkMs } } });
    case "echo":
      return create(WorkloadInputSchema, { input: { case: "echo", value: { delayMs: v.value.delayMs } } });
    default:
      return full;
  }
}

export function estimate(networkId: string, workload: WorkloadClass, input: MessageInitShape<typeof WorkloadInputSchema>, routing: Routing, signal?: AbortSignal): Promise<EstimateJobResponse> {
  const envelope = create(JobEnvelopeSchema, {
    networkId,
    workloadId: workload,
    inputManifest: { payload: toBinary(WorkloadInputSchema, shapeOnly(input)) },
    routingMode: routing.mode,
    resourceRequest: resources(routing),
    dataSensitivityTag: routing.sensitivity,
    maxCostMicro: routing.maxCostMicro ?? 0n,
    payloadEncryption: { scheme: PayloadEncryptionScheme.NONE },
  });
  return api().job.estimateJob({ envelope }, signal ? { signal } : {});
}

/** Submits (end-to-end encrypted) and follows the job until its result; `onUpdate` sees every change. */
export async function runJob(
  networkId: string,
  workload: WorkloadClass,
  input: MessageInitShape<typeof WorkloadInputSchema>,
  blobs: MessageInitShape<typeof BlobSchema>[],
  routing: Routing,
  onUpdate: (state: RunState) => void,
  extras: { imageUrl?: string } = {},
): Promise<RunState> {
  const key = await submitterKey();
  let state: RunState = { tokens: "", tokenFrames: 0, logs: [], done: false };
  const update = (patch: Partial<RunState>) => onUpdate((state = { ...state, ...patch }));
  try {
    const job = await api().submitJob(workload, { input, blobs }, {
      networkId,
      mode: routing.mode,
      resources: resources(routing),
      dataSensitivity: routing.sensitivity,
      maxCostMicro: routing.maxCostMicro ?? 0n,
      submitterKey: key,
      idempotencyKey: crypto.randomUUID(),
    });
    const local: LocalJob = { logs: [], ...(extras.imageUrl ? { imageUrl: extras.imageUrl } : {}) };
    localJobs.set(job.jobId, local);
    update({ job });
    for await (const frame of api().streamJob(job.jobId, { networkId })) {
      const f = frame.frame;
      if (f.case === "status" && f.value.job) {
        update({ job: f.value.job });
      } else if (f.case === "progress") {
        update({ progress: { fraction: f.value.fraction, message: f.value.message, chunksCompleted: f.value.chunksCompleted, chunkCount: f.value.chunkCount } });
      } else if (f.case === "token") {
        local.tokens = state.tokens + openToken(f.value, job.jobId, key);
        update({ tokens: local.tokens, tokenFrames: state.tokenFrames + 1 });
      } else if (f.case === "log") {
        local.logs.push(f.value);
        update({ logs: [...local.logs] });
      } else if (f.case === "result") {
        update({ output: openResult(f.value, job.jobId, key), ...(f.value.job ? { job: f.value.job } : {}) });
        break;
      }
    }
    if (!state.output) {
      const final = await api().job.getJob({ networkId, jobId: job.jobId });
      update({ ...(final.job ? { job: final.job } : {}), ...(final.result ? { output: openResult(final.result, job.jobId, key) } : {}) });
    }
    if (state.job && (state.job.state === JobState.FAILED || state.job.state === JobState.CANCELLED)) {
      update({ error: new Error(state.job.errorMessage || `The job was ${state.job.state === JobState.FAILED ? "failed" : "cancelled"}.`) });
    }
  } catch (e) {
    update({ error: e });
  }
  update({ done: true });
  return state;
}

/** The result of a finished job, opened with this browser's key (undefined when it was sealed to another key). */
export async function loadResult(networkId: string, jobId: string): Promise<{ job?: Job; output?: WorkloadOutput; sealedElsewhere: boolean }> {
  const res = await api().job.getJob({ networkId, jobId });
  if (!res.result) return { ...(res.job ? { job: res.job } : {}), sealedElsewhere: false };
  try {
    return { ...(res.job ? { job: res.job } : {}), output: openResult(res.result, jobId, await submitterKey()), sealedElsewhere: false };
  } catch {
    return { ...(res.job ? { job: res.job } : {}), sealedElsewhere: true };
  }
}

// @meshai/client: the generated MeshAI contracts (protos/, built by `npm run generate`) plus a small
// gRPC-Web convenience client. See README.md.

import { clone, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import type { CallOptions, Client, Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { AuditService } from "./gen/meshai/audit/v1/audit_service_pb.js";
import type { BlobSchema } from "./gen/meshai/common/v1/common_pb.js";
import { RoutingMode, WorkloadClass } from "./gen/meshai/common/v1/common_pb.js";
import type { DataSensitivityTag } from "./gen/meshai/common/v1/common_pb.js";
import { Role } from "./gen/meshai/common/v1/common_pb.js";
import { DeviceService } from "./gen/meshai/device/v1/device_service_pb.js";
import type { RegisterDeviceRequestSchema, RegisterDeviceResponse } from "./gen/meshai/device/v1/device_service_pb.js";
import { IdentityService } from "./gen/meshai/identity/v1/identity_service_pb.js";
import { encryptEnvelope, openFromDevice, verifyPlanSignature } from "./crypto.js";
import type { X25519KeyPair } from "./crypto.js";
import { InputManifestSchema, JobEnvelopeSchema, PayloadEncryptionScheme } from "./gen/meshai/job/v1/job_pb.js";
import type { Job, JobEnvelope, ResourceRequestSchema } from "./gen/meshai/job/v1/job_pb.js";
import { JobService } from "./gen/meshai/job/v1/job_service_pb.js";
import type { JobResultFrame, JobTokenFrame, WatchJobResponse } from "./gen/meshai/job/v1/job_service_pb.js";
import { WorkloadInputSchema, WorkloadOutputSchema } from "./gen/meshai/job/v1/workloads_pb.js";
import type { WorkloadInput, WorkloadOutput } from "./gen/meshai/job/v1/workloads_pb.js";
import type { Balances, LedgerEvent } from "./gen/meshai/ledger/v1/ledger_pb.js";
import { LedgerService } from "./gen/meshai/ledger/v1/ledger_service_pb.js";
import { ModelService } from "./gen/meshai/model/v1/model_service_pb.js";
import { BillingMode, InviteType, NetworkVisibility } from "./gen/meshai/network/v1/network_pb.js";
import type { Network, NetworkSettingsSchema } from "./gen/meshai/network/v1/network_pb.js";
import { NetworkService } from "./gen/meshai/network/v1/network_service_pb.js";
import type { InviteMemberResponse } from "./gen/meshai/network/v1/network_service_pb.js";
import { PolicyService } from "./gen/meshai/network/v1/policy_service_pb.js";
import { WebRelayService } from "./gen/meshai/relay/v1/web_relay_service_pb.js";

// Every generated schema, enum and service descriptor. A name exported by two files is a compile error
// here (TS2308), so a clash introduced in the protos shows up at build time.
export * from "./gen/meshai/audit/v1/audit_service_pb.js";
export * from "./gen/meshai/common/v1/common_pb.js";
export * from "./gen/meshai/device/v1/device_pb.js";
export * from "./gen/meshai/device/v1/device_service_pb.js";
export * from "./gen/meshai/identity/v1/identity_pb.js";
export * from "./gen/meshai/identity/v1/identity_service_pb.js";
export * from "./gen/meshai/job/v1/blob_service_pb.js";
export * from "./gen/meshai/job/v1/job_pb.js";
export * from "./gen/meshai/job/v1/job_service_pb.js";
export * from "./gen/meshai/job/v1/workloads_pb.js";
export * from "./gen/meshai/ledger/v1/ledger_pb.js";
export * from "./gen/meshai/ledger/v1/ledger_service_pb.js";
export * from "./gen/meshai/model/v1/model_service_pb.js";
export * from "./gen/meshai/network/v1/network_pb.js";
export * from "./gen/meshai/network/v1/network_service_pb.js";
export * from "./gen/meshai/network/v1/policy_service_pb.js";
export * from "./gen/meshai/relay/v1/relay_service_pb.js";
export * from "./gen/meshai/relay/v1/web_relay_service_pb.js";
export * from "./crypto.js";
export * from "./device.js";
export * from "./errors.js";

/** Version of this package (kept equal to package.json by a test). */
export const CLIENT_VERSION = "0.2.0";

/** Most texts one embeddings job takes (the server's default limit; checked here before the payload is sealed). */
export const MAX_EMBEDDING_TEXTS = 256;

/** A bearer token, or a function returning the current one (called on every request). */
export type TokenSource = string | (() => string | undefined | Promise<string | undefined>);

export interface MeshClientOptions {
  /** Server base URL, e.g. "https://mesh.example.com" (gRPC-Web endpoint). */
  baseUrl: string;
  /** Session token or API key sent as `authorization: Bearer <token>`. */
  token?: TokenSource;
  /** fetch implementation (defaults to globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
  /** Network used by submitJob/streamJob when the call does not name one. */
  networkId?: string;
  /** Extra interceptors, run after the auth interceptor. */
  interceptors?: Interceptor[];
  /** Default deadline for every call, in milliseconds. */
  defaultTimeoutMs?: number;
}

/** The workload input of a job: serialized into input_manifest.payload (not end-to-end encrypted by this helper). */
export interface JobInputs {
  input: MessageInitShape<typeof WorkloadInputSchema>;
  blobs?: MessageInitShape<typeof BlobSchema>[];
  labels?: Record<string, string>;
}

/** Where and how a job may run. */
export interface JobRouting {
  /** Defaults to MeshClientOptions.networkId. */
  networkId?: string;
  /** Defaults to ROUTING_MODE_AUTO. */
  mode?: RoutingMode;
  resources?: MessageInitShape<typeof ResourceRequestSchema>;
  dataSensitivity?: DataSensitivityTag;
  /** Most you accept to pay, in micro-credits (1 credit = 1 000 000n); 0n or undefined = no cap. */
  maxCostMicro?: bigint;
  /** @deprecated Use maxCostMicro (this always held micro-credits too); used only when maxCostMicro is not given. */
  maxCostCredits?: bigint;
  timeoutMs?: bigint;
  traceId?: string;
  /** Resubmitting with the same key returns the same job. */
  idempotencyKey?: string;
  /**
   * Encrypt the payload end to end, like the C# SDK: PlanJob's candidates (signature checked against the network's
   * control key) get the content key wrapped, and the result comes back sealed to this key (open it with openResult).
   * Undefined: the payload travels in the clear (TLS only).
   */
  submitterKey?: X25519KeyPair;
  /** Candidates the payload key is wrapped for (PlanJob max_candidates; 0 = server default of 3). */
  maxCandidates?: number;
}

export interface LedgerView {
  balances: Balances | undefined;
  events: LedgerEvent[];
  nextPageToken: string;
}

export interface MeshClient {
  readonly transport: Transport;
  readonly identity: Client<typeof IdentityService>;
  readonly network: Client<typeof NetworkService>;
  readonly device: Client<typeof DeviceService>;
  readonly job: Client<typeof JobService>;
  readonly ledger: Client<typeof LedgerService>;
  readonly policy: Client<typeof PolicyService>;
  readonly model: Client<typeof ModelService>;
  readonly audit: Client<typeof AuditService>;
  /** The relay for browser devices (the web contributor): a server stream plus one unary call per device frame. */
  readonly webRelay: Client<typeof WebRelayService>;

  /** A private, credits-internal network with the caller as admin. */
  createNetwork(
    name: string,
    options?: { settings?: MessageInitShape<typeof NetworkSettingsSchema> },
    call?: CallOptions,
  ): Promise<Network>;
  /** Invites by email (invitee contains "@"), by username, or as a share link (empty invitee). */
  inviteMember(
    networkId: string,
    invitee: string,
    options?: { inviteType?: InviteType; role?: Role },
    call?: CallOptions,
  ): Promise<InviteMemberResponse>;
  /** Agent-side registration; the caller computes the proof-of-possession signature. */
  registerDevice(
    request: MessageInitShape<typeof RegisterDeviceRequestSchema>,
    call?: CallOptions,
  ): Promise<RegisterDeviceResponse>;
  /** Submits a job whose input matches the workload class; resolves with the job as accepted. */
  submitJob(workloadId: WorkloadClass, inputs: JobInputs, routing?: JobRouting, call?: CallOptions): Promise<Job>;
  /**
   * Encrypts an envelope's plaintext payload in place for the job's candidates: PlanJob (without the payload), check the
   * recipient list's signature against the network's current control key, then seal (see crypto.ts). Throws when the
   * plan is not signed by that key.
   */
  encryptForCandidates(envelope: JobEnvelope, submitterKey: X25519KeyPair, maxCandidates?: number, call?: CallOptions): Promise<void>;
  /** Status, progress, tokens, logs and the result of a job, as they happen. */
  streamJob(jobId: string, options?: { networkId?: string }, call?: CallOptions): AsyncIterable<WatchJobResponse>;
  /** Balances and the first page of ledger events of a network. */
  getLedger(
    networkId: string,
    options?: { pageSize?: number; pageToken?: string; jobId?: string },
    call?: CallOptions,
  ): Promise<LedgerView>;
}

/** Adds `authorization: Bearer <token>` to every request when a token is available. */
export function bearerAuthInterceptor(token: TokenSource): Interceptor {
  return (next) => async (req) => {
    const value = typeof token === "function" ? await token() : token;
    if (value) {
      req.header.set("authorization", `Bearer ${value}`);
    }
    return next(req);
  };
}

/** Which WorkloadInput case each workload class takes. */
const inputCaseByWorkload: Partial<Record<WorkloadClass, NonNullable<WorkloadInput["input"]["case"]>>> = {
  [WorkloadClass.EMBEDDINGS]: "embeddings",
  [WorkloadClass.OCR_PREPROCESS]: "ocr",
  [WorkloadClass.SMALL_CHAT]: "chat",
  [WorkloadClass.AUDIO_TRANSCRIBE_CHUNKED]: "transcribe",
  [WorkloadClass.BATCH_JOBS_EVAL_OR_SYNTH]: "batch",
  [WorkloadClass.DIAGNOSTIC_ECHO]: "echo",
};

/** Lower-case hex SHA-256 (WebCrypto: browsers and Node >= 20). */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function createMeshClient(options: MeshClientOptions): MeshClient {
  const interceptors: Interceptor[] = [];
  if (options.token !== undefined) {
    interceptors.push(bearerAuthInterceptor(options.token));
  }
  interceptors.push(...(options.interceptors ?? []));

  const transport = createGrpcWebTransport({
    baseUrl: options.baseUrl,
    interceptors,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.defaultTimeoutMs !== undefined ? { defaultTimeoutMs: options.defaultTimeoutMs } : {}),
  });

  const network = createClient(NetworkService, transport);
  const device = createClient(DeviceService, transport);
  const job = createClient(JobService, transport);
  const ledger = createClient(LedgerService, transport);

  const resolveNetwork = (networkId: string | undefined): string => {
    const id = networkId ?? options.networkId;
    if (!id) {
      throw new Error("networkId is required (pass it to the call or to createMeshClient)");
    }
    return id;
  };

  return {
    transport,
    identity: createClient(IdentityService, transport),
    network,
    device,
    job,
    ledger,
    policy: createClient(PolicyService, transport),
    model: createClient(ModelService, transport),
    audit: createClient(AuditService, transport),
    webRelay: createClient(WebRelayService, transport),

    async createNetwork(name, opts, call) {
      const res = await network.createNetwork(
        {
          name,
          visibility: NetworkVisibility.PRIVATE,
          billingMode: BillingMode.CREDITS_INTERNAL,
          ...(opts?.settings ? { settings: opts.settings } : {}),
        },
        call,
      );
      if (!res.network) {
        throw new Error("CreateNetwork returned no network");
      }
      return res.network;
    },

    inviteMember(networkId, invitee, opts, call) {
      const inviteType =
        opts?.inviteType ??
        (invitee === ""
          ? InviteType.SHARE_LINK_WITH_APPROVAL
          : invitee.includes("@")
            ? InviteType.EMAIL
            : InviteType.USERNAME);
      return network.inviteMember({ networkId, inviteType, invitee, role: opts?.role ?? Role.MEMBER }, call);
    },

    registerDevice(request, call) {
      return device.registerDevice(request, call);
    },

    async encryptForCandidates(envelope, submitterKey, maxCandidates = 0, call) {
      const probe = clone(JobEnvelopeSchema, envelope);
      probe.inputManifest = create(InputManifestSchema);
      probe.payloadEncryption = undefined;
      const plan = await job.planJob({ envelope: probe, maxCandidates }, call);
      const current = (await network.getNetwork({ networkId: envelope.networkId }, call)).network;
      if (!current || current.controlKeyId !== plan.signingKeyId) {
        throw new Error(`PlanJob was signed with key ${plan.signingKeyId}, which is not the current control key of ${envelope.networkId}.`);
      }
      if (!verifyPlanSignature(plan, envelope.networkId, current.controlPublicKey)) {
        throw new Error(`PlanJob's recipient list for ${envelope.networkId} is not signed by the network's control key; refusing to encrypt to it.`);
      }
      encryptEnvelope(
        envelope,
        plan.recipients.map((r) => ({ deviceId: r.deviceId, publicKey: r.encryptionPublicKey })),
        submitterKey.publicKey,
      );
    },

    async submitJob(workloadId, inputs, routing = {}, call) {
      const input = create(WorkloadInputSchema, inputs.input);
      const expectedCase = inputCaseByWorkload[workloadId];
      if (expectedCase === undefined || input.input.case !== expectedCase) {
        throw new Error(
          `workload ${WorkloadClass[workloadId] ?? workloadId} takes input "${expectedCase ?? "?"}", got "${input.input.case ?? "none"}"`,
        );
      }
      if (input.input.case === "embeddings" && (input.input.value.texts.length === 0 || input.input.value.texts.length > MAX_EMBEDDING_TEXTS)) {
        throw new Error(`embeddings take 1 to ${MAX_EMBEDDING_TEXTS} texts (got ${input.input.value.texts.length})`);
      }
      const payload = toBinary(WorkloadInputSchema, input);
      const envelope = create(JobEnvelopeSchema, {
        networkId: resolveNetwork(routing.networkId),
        workloadId,
        inputManifest: {
          payload,
          blobs: inputs.blobs ?? [],
          payloadSha256: await sha256Hex(payload),
          labels: inputs.labels ?? {},
        },
        ...(routing.dataSensitivity !== undefined ? { dataSensitivityTag: routing.dataSensitivity } : {}),
        ...(routing.resources ? { resourceRequest: routing.resources } : {}),
        routingMode: routing.mode ?? RoutingMode.AUTO,
        maxCostMicro: routing.maxCostMicro ?? routing.maxCostCredits ?? 0n,
        timeoutMs: routing.timeoutMs ?? 0n,
        payloadEncryption: { scheme: PayloadEncryptionScheme.NONE },
        traceId: routing.traceId ?? "",
      });
      if (routing.submitterKey) {
        await this.encryptForCandidates(envelope, routing.submitterKey, routing.maxCandidates ?? 0, call);
      }
      const res = await job.submitJob({ envelope, idempotencyKey: routing.idempotencyKey ?? "" }, call);
      if (!res.job) {
        throw new Error("SubmitJob returned no job");
      }
      return res.job;
    },

    streamJob(jobId, opts, call) {
      return job.watchJob({ networkId: resolveNetwork(opts?.networkId), jobId }, call);
    },

    async getLedger(networkId, opts, call) {
      const [balances, events] = await Promise.all([
        ledger.getBalances({ networkId }, call),
        ledger.listLedgerEvents(
          { networkId, pageSize: opts?.pageSize ?? 0, pageToken: opts?.pageToken ?? "", jobId: opts?.jobId ?? "" },
          call,
        ),
      ]);
      return { balances: balances.balances, events: events.events, nextPageToken: events.nextPageToken };
    },
  };
}

/**
 * The WorkloadOutput of a result frame: opened with the submitter's key when the device sealed it (encrypted = true),
 * decoded as it is otherwise.
 */
export function openResult(result: JobResultFrame, jobId: string, submitterKey?: X25519KeyPair): WorkloadOutput {
  let bytes = result.output;
  if (result.encrypted) {
    if (!submitterKey) {
      throw new Error(`the result of job ${jobId} is encrypted to its submitter; this client has no key to open it`);
    }
    bytes = openFromDevice(result.output, result.nonce, submitterKey, jobId);
  }
  return fromBinary(WorkloadOutputSchema, bytes);
}

/** The text of a streamed token: opened with the submitter's key when it came sealed (a nonce is present). */
export function openToken(token: JobTokenFrame, jobId: string, submitterKey?: X25519KeyPair): string {
  if (token.nonce.length === 0) {
    return new TextDecoder().decode(token.token);
  }
  if (!submitterKey) {
    throw new Error(`the tokens of job ${jobId} are encrypted to its submitter; this client has no key to open them`);
  }
  return new TextDecoder().decode(openFromDevice(token.token, token.nonce, submitterKey, jobId));
}

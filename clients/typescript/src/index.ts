// @meshai/client: the generated MeshAI contracts (protos/, built by `npm run generate`) plus a small
// gRPC-Web convenience client. See README.md.

import { create, toBinary } from "@bufbuild/protobuf";
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
import { PayloadEncryptionScheme } from "./gen/meshai/job/v1/job_pb.js";
import type { Job, ResourceRequestSchema } from "./gen/meshai/job/v1/job_pb.js";
import { JobService } from "./gen/meshai/job/v1/job_service_pb.js";
import type { WatchJobResponse } from "./gen/meshai/job/v1/job_service_pb.js";
import { WorkloadInputSchema } from "./gen/meshai/job/v1/workloads_pb.js";
import type { WorkloadInput } from "./gen/meshai/job/v1/workloads_pb.js";
import type { Balances, LedgerEvent } from "./gen/meshai/ledger/v1/ledger_pb.js";
import { LedgerService } from "./gen/meshai/ledger/v1/ledger_service_pb.js";
import { ModelService } from "./gen/meshai/model/v1/model_service_pb.js";
import { BillingMode, InviteType, NetworkVisibility } from "./gen/meshai/network/v1/network_pb.js";
import type { Network, NetworkSettingsSchema } from "./gen/meshai/network/v1/network_pb.js";
import { NetworkService } from "./gen/meshai/network/v1/network_service_pb.js";
import type { InviteMemberResponse } from "./gen/meshai/network/v1/network_service_pb.js";
import { PolicyService } from "./gen/meshai/network/v1/policy_service_pb.js";

// Every generated schema, enum and service descriptor. A name exported by two files is a compile error
// here (TS2308), so a clash introduced in the protos shows up at build time.
export * from "./gen/meshai/audit/v1/audit_service_pb.js";
export * from "./gen/meshai/common/v1/common_pb.js";
export * from "./gen/meshai/device/v1/device_pb.js";
export * from "./gen/meshai/device/v1/device_service_pb.js";
export * from "./gen/meshai/identity/v1/identity_pb.js";
export * from "./gen/meshai/identity/v1/identity_service_pb.js";
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

    async submitJob(workloadId, inputs, routing = {}, call) {
      const input = create(WorkloadInputSchema, inputs.input);
      const expectedCase = inputCaseByWorkload[workloadId];
      if (expectedCase === undefined || input.input.case !== expectedCase) {
        throw new Error(
          `workload ${WorkloadClass[workloadId] ?? workloadId} takes input "${expectedCase ?? "?"}", got "${input.input.case ?? "none"}"`,
        );
      }
      const payload = toBinary(WorkloadInputSchema, input);
      const res = await job.submitJob(
        {
          envelope: {
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
          },
          idempotencyKey: routing.idempotencyKey ?? "",
        },
        call,
      );
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

// The web contributor: a browser tab as a device of a MeshAI network. Joins with the one-use token of a join link, holds
// the relay session (relay.ts), heartbeats like the native agent (capabilities, running jobs, contribution switch),
// verifies every offer exactly as the agent does (@meshai/client OfferVerifier), decides from the browser's own signals
// whether to contribute (decideContribution), runs embeddings on the verified model in a worker and hands a running job
// back the moment a rule stops it (unplugged, cellular, hidden, switched off, too hot). The UI (app.tsx) renders the
// snapshot this publishes. Decisions: docs/contributor.md.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  CutReason,
  DeclineReason,
  OfferVerifier,
  PayloadCryptoError,
  Tier,
  WorkloadClass,
  WorkloadInputSchema,
  WorkloadOutputSchema,
  createMeshClient,
  decideContribution,
  decryptEnvelopeWith,
  isEncrypted,
  peekTicket,
  sealToSubmitter,
} from "@meshai/client";
import type {
  ContributionDecision,
  DeviceSignals,
  GetDeviceStatusResponse,
  JobEnvelope,
  JobOffer,
  MeshClient,
  PlacementTicketDetails,
  WorkloadInput,
  WorkloadOutput,
} from "@meshai/client";

import { Embedder, EmbeddingCancelled } from "./embedder";
import { controlKeys, deviceKeys, forgetEnrollment, loadEnrollment, register } from "./identity";
import type { DeviceKeys, Enrollment } from "./identity";
import { embeddingsManifest, loadVerifiedModel } from "./models";
import { WebRelaySession } from "./relay";
import type { TerminalKind } from "./relay";
import type { SignalApis } from "./signals";
import { SignalWatcher } from "./signals";

export type Phase =
  | "starting"
  | "needs-link"
  | "join"
  | "joining"
  | "connecting"
  | "reconnecting"
  | "preparing"
  | "contributing"
  | "working"
  | "paused"
  | "off"
  | "revoked";

export interface ActivityEvent {
  at: number;
  kind: "done" | "declined" | "refused" | "handed-back" | "failed" | "info";
  text: string;
  jobId?: string;
}

export interface ModelState {
  name: string;
  state: "none" | "waiting" | "downloading" | "verifying" | "loading" | "ready" | "failed";
  progress: number;
  detail: string;
  sha256: string;
  threads: number;
}

export interface Snapshot {
  phase: Phase;
  reason: string;
  decision: ContributionDecision;
  signals: DeviceSignals;
  apis: SignalApis;
  mobile: boolean;
  switchedOn: boolean;
  joinToken?: string;
  error?: string;
  device?: { id: string; name: string; networkId: string; networkName: string; keys: string };
  today: { jobs: number; mintedMicro: bigint };
  batteryCapBps: number;
  job?: { id: string; attempt: number; workload: string; progress: number; message: string };
  model: ModelState;
  events: ActivityEvent[];
  rttMs: number;
}

const SWITCH_KEY = "meshai.contribute.switch";
/** Most texts one embeddings job may carry (the agent's EmbeddingsHandler.MaxTexts). */
const MAX_TEXTS = 256;
const STATUS_REFRESH_MS = 60_000;

/** A terminal frame's fields (JobAccept, JobDecline, JobResult, JobFailure): the attempt it belongs to and the rest. */
type TerminalFrame = { jobId: string; attempt: number; chunkId: string; [field: string]: unknown };

/** A workload input the device refuses (not retried elsewhere: the input itself is wrong). */
class InvalidInput extends Error {}

interface RunningJob {
  ticket: PlacementTicketDetails;
  envelope: JobEnvelope;
  input: WorkloadInput;
  abort: AbortController;
  handedBack?: string;
  startedAt: number;
  heartbeatsAtStart: number;
}

const now = (): Timestamp => {
  const ms = Date.now();
  return { $typeName: "google.protobuf.Timestamp", seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
};

export class Contributor {
  private readonly client: MeshClient = createMeshClient({ baseUrl: window.location.origin });
  private readonly watcher = new SignalWatcher();
  private readonly listeners = new Set<() => void>();
  private keys?: DeviceKeys;
  private enrollment?: Enrollment;
  private session?: WebRelaySession;
  private sessionAbort?: AbortController;
  private welcomed = false;
  private verifier?: OfferVerifier;
  private status?: GetDeviceStatusResponse;
  private embedder?: Embedder;
  private modelName = "";
  private modelVersion = "";
  private modelDimension = 0;
  private preparing = false;
  private running?: RunningJob;
  private heartbeatTimer?: ReturnType<typeof setInterval>;
  private statusTimer?: ReturnType<typeof setInterval>;
  private heartbeats = 0;
  private sequence = 0n;
  private readonly sentAt = new Map<bigint, number>();
  private wakeLock?: { release(): Promise<void> };
  private wakeLockPending = false;
  private lastProgressAt = 0;
  // Relay protocol 2: every terminal frame is numbered and kept until its FrameAck; what a session could not deliver goes
  // out again, in order, on the next one (whose hello lists the attempts they belong to).
  private protocol = 1;
  private nextSequence = BigInt(Date.now()) * 1000n;
  private readonly unacked = new Map<bigint, { kind: TerminalKind; frame: TerminalFrame }>();
  private state: Snapshot;

  constructor() {
    const switchedOn = localStorage.getItem(SWITCH_KEY) !== "off";
    this.state = {
      phase: "starting",
      reason: "",
      decision: { allowed: false, reason: "", rules: [] },
      signals: this.watcher.signals,
      apis: this.watcher.apis,
      mobile: this.watcher.mobile,
      switchedOn,
      today: { jobs: 0, mintedMicro: 0n },
      batteryCapBps: 10_000,
      model: { name: "", state: "none", progress: 0, detail: "", sha256: "", threads: 0 },
      events: [],
      rttMs: 0,
    };
  }

  // ---------------------------------------------------------------- what the UI uses

  snapshot(): Snapshot {
    return this.state;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  async start(): Promise<void> {
    const token = new URLSearchParams(window.location.hash.slice(1)).get("token") ?? undefined;
    if (token) {
      // The token works once: keep it out of the address bar, history and anything copied from it.
      window.history.replaceState(null, "", window.location.pathname);
    }
    this.watcher.onChange(() => this.onSignals());
    await this.watcher.start();
    [this.keys, this.enrollment] = await Promise.all([deviceKeys(), loadEnrollment()]);
    if (this.enrollment && !token) {
      this.begin();
      return;
    }
    this.update({ phase: token ? "join" : "needs-link", ...(token ? { joinToken: token } : {}) });
  }

  async join(name: string): Promise<void> {
    const token = this.state.joinToken;
    if (!token || !this.keys) return;
    this.update({ phase: "joining", error: undefined });
    try {
      this.enrollment = await register(this.client, this.keys, token, name.trim().slice(0, 64), this.capabilities());
      this.update({ joinToken: undefined });
      this.event("info", `Joined the network as ${this.enrollment.deviceName} (${this.enrollment.deviceId}).`);
      this.begin();
    } catch (e) {
      const error = ConnectError.from(e);
      const message =
        error.code === Code.Unauthenticated || error.code === Code.FailedPrecondition
          ? "This join link was already used or has expired. Ask for a new one (meshnet device join --web)."
          : error.rawMessage;
      this.update({ phase: "join", error: message });
    }
  }

  setSwitch(on: boolean): void {
    localStorage.setItem(SWITCH_KEY, on ? "on" : "off");
    this.update({ switchedOn: on });
    this.event("info", on ? "Contribution switched on." : "Contribution switched off.");
    this.onSignals();
  }

  // ---------------------------------------------------------------- session

  private begin(): void {
    const enrollment = this.enrollment!;
    this.verifier = new OfferVerifier({ controlKeys: () => controlKeys(enrollment), deviceId: enrollment.deviceId, networkId: enrollment.networkId });
    this.update({
      device: { id: enrollment.deviceId, name: enrollment.deviceName, networkId: enrollment.networkId, networkName: "", keys: this.keys!.backend },
    });
    void this.connectLoop();
  }

  private async connectLoop(): Promise<void> {
    let delay = 1000;
    for (;;) {
      this.update({ phase: this.state.phase === "reconnecting" ? "reconnecting" : "connecting" });
      const session = new WebRelaySession(this.client, this.enrollment!, this.keys!);
      const abort = new AbortController();
      this.session = session;
      this.sessionAbort = abort;
      this.welcomed = false;
      const end = await session.run(
        this.capabilities(),
        this.heldAttempts(),
        {
          welcome: (welcome) => {
            this.protocol = welcome.protocolVersion || 1;
            this.onWelcome(welcome.heartbeatIntervalMs);
            void this.resendUnacked(session);
          },
          frameAck: (ack) => {
            const acked = this.unacked.get(ack.sequence);
            this.unacked.delete(ack.sequence);
            // Control has handled (and settled) the job's end: the day's counters are now current.
            if (acked?.kind === "result" || acked?.kind === "failure") void this.refreshStatus();
          },
          offer: (offer) => void this.onOffer(session, offer),
          cancel: (cancel) => {
            if (this.running && this.running.ticket.jobId === cancel.jobId && this.running.ticket.attempt === cancel.attempt) this.running.abort.abort("cancelled");
          },
          heartbeatAck: (ack) => {
            const sent = this.sentAt.get(ack.sequence);
            if (sent !== undefined) {
              this.sentAt.delete(ack.sequence);
              this.update({ rttMs: Math.round(performance.now() - sent) });
            }
          },
        },
        abort.signal,
      );
      this.stopTimers();
      this.session = undefined;
      this.welcomed = false;
      // Protocol 2: a running job goes on; its frames reach control on the next session (control waits for the device
      // for its reconnect grace). Protocol 1: the stream is gone and with it the way to report; control retries elsewhere.
      if (this.protocol < 2) this.running?.abort.abort("disconnected");
      if (end.cut?.reason === CutReason.REVOKED || end.error?.code === Code.PermissionDenied) {
        this.running?.abort.abort("disconnected");
        this.unacked.clear();
        // Revoked (cut at once by the relay) or a certificate the network no longer trusts: rejoining needs a new link.
        const why = end.cut?.reason === CutReason.REVOKED ? end.cut.detail || "device revoked" : `certificate refused: ${end.error?.rawMessage ?? end.cut?.detail}`;
        this.event("info", `This device was removed from the network (${why}).`);
        await forgetEnrollment();
        this.releaseWakeLock();
        this.update({ phase: "revoked", reason: why });
        return;
      }
      delay = end.welcomed ? 1000 : Math.min(delay * 2, 15_000);
      const why = end.cut ? `the relay ended the session (${CutReason[end.cut.reason] ?? end.cut.reason}: ${end.cut.detail})` : (end.error?.rawMessage ?? "the connection closed");
      this.update({ phase: "reconnecting", reason: `Reconnecting in ${Math.round(delay / 1000)} s: ${why}` });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  private onWelcome(intervalMs: number): void {
    this.welcomed = true;
    this.heartbeatTimer = setInterval(() => void this.sendHeartbeat(), Math.max(1000, intervalMs || 5000));
    this.statusTimer = setInterval(() => void this.refreshStatus(), STATUS_REFRESH_MS);
    void this.sendHeartbeat();
    void this.refreshStatus().then(() => this.onSignals());
    this.onSignals();
  }

  private stopTimers(): void {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.statusTimer);
    this.heartbeatTimer = undefined;
    this.statusTimer = undefined;
  }

  private async sendHeartbeat(): Promise<void> {
    const session = this.session;
    if (!session?.live) return;
    const sequence = ++this.sequence;
    this.sentAt.set(sequence, performance.now());
    for (const stale of this.sentAt.keys()) if (stale < sequence - 16n) this.sentAt.delete(stale);
    try {
      await session.heartbeat({
        sequence,
        capabilities: this.capabilities(),
        runningJobs: this.running ? [`${this.running.ticket.jobId}/${this.running.ticket.attempt}`] : [],
        contributionEnabled: this.decide().allowed,
        sentTime: now(),
      });
      this.heartbeats++;
    } catch (e) {
      if (ConnectError.from(e).code === Code.Unauthenticated) this.sessionAbort?.abort(); // the session is gone: reconnect
    }
  }

  private async refreshStatus(): Promise<void> {
    const session = this.session;
    if (!session?.live || !this.welcomed) return;
    try {
      this.status = await session.status();
      this.update({
        today: { jobs: this.status.jobsCompletedToday, mintedMicro: this.status.mintedTodayMicro },
        batteryCapBps: Number(this.status.batteryMintCapBps),
        device: { ...this.state.device!, name: this.status.deviceName || this.state.device!.name, networkName: this.status.networkName },
      });
    } catch {
      // Shown again on the next refresh; the session's own errors reconnect it.
    }
  }

  // ---------------------------------------------------------------- rules

  private decide(): ContributionDecision {
    return decideContribution(this.watcher.signals, this.status?.mobileSafety, {
      switchedOn: this.state.switchedOn,
      adminEnabled: this.status?.contributionEnabled ?? true,
      mobile: this.watcher.mobile,
    });
  }

  /** Re-decides after any change: hands a running job back when a rule stops it; loads the model when allowed. */
  private onSignals(): void {
    const decision = this.decide();
    this.update({ decision, signals: this.watcher.signals, apis: this.watcher.apis });
    if (!decision.allowed && this.running && !this.running.handedBack) {
      this.running.handedBack = decision.reason;
      this.running.abort.abort("handed back");
    }
    if (decision.allowed && this.welcomed && !this.embedder && !this.preparing) void this.prepareModel();
    this.syncWakeLock();
    this.update({});
  }

  // ---------------------------------------------------------------- model

  private async prepareModel(): Promise<void> {
    this.preparing = true;
    const model = (patch: Partial<ModelState>) => this.update({ model: { ...this.state.model, ...patch } });
    try {
      model({ state: "waiting", detail: "Reading the network's signed model manifest", progress: 0 });
      const details = await embeddingsManifest(this.client, this.enrollment!, this.keys!);
      if (!details) {
        model({ state: "none", detail: "The network has published no embeddings model yet (meshnet models publish); this phone takes diagnostic jobs only." });
        return;
      }
      model({ name: details.name, state: "downloading", detail: "" });
      const verified = await loadVerifiedModel(details, (stage, fraction, detail) => model({ state: stage === "manifest" ? "waiting" : stage, progress: fraction, detail }));
      model({ state: "loading", progress: 1, detail: `Starting ONNX Runtime (${verified.source === "cache" ? "verified copy kept in this browser" : "downloaded and verified"})` });
      const parameters = details.parameters;
      this.embedder = await Embedder.load(verified.model, verified.vocab, Number(parameters["max_tokens"] || 128), parameters["pooling"] || "mean");
      this.modelName = details.name;
      this.modelVersion = details.version;
      this.modelDimension = Number(parameters["dimension"] || 0);
      model({ state: "ready", detail: `Ready in ${Math.round(this.embedder.loadMs)} ms`, sha256: verified.weightsSha256, threads: this.embedder.threads });
      this.event("info", `Model ${details.name} v${details.version} verified against the signed manifest and loaded (${this.embedder.threads} thread${this.embedder.threads === 1 ? "" : "s"}).`);
      void this.sendHeartbeat(); // advertise the model now rather than at the next beat
    } catch (e) {
      model({ state: "failed", detail: e instanceof Error ? e.message : String(e) });
      this.event("failed", `The model could not be prepared: ${e instanceof Error ? e.message : String(e)}`);
      setTimeout(() => this.onSignals(), STATUS_REFRESH_MS);
    } finally {
      this.preparing = false;
      this.update({});
    }
  }

  // ---------------------------------------------------------------- offers and jobs

  private async onOffer(session: WebRelaySession, offer: JobOffer): Promise<void> {
    const check = this.verifier!.check(offer);
    if (!check.accepted) {
      const ticket = peekTicket(offer);
      this.event("refused", `Refused a job offer: ${check.detail}.`, ticket?.jobId);
      if (ticket) await this.terminal(session, "decline", { jobId: ticket.jobId, attempt: ticket.attempt, chunkId: ticket.chunkId, reason: check.reason, detail: check.detail });
      return;
    }
    const ticket = check.ticket!;
    const envelope = check.envelope!;
    const decline = async (reason: DeclineReason, detail: string, kind: ActivityEvent["kind"] = "declined") => {
      this.event(kind, `Declined job ${ticket.jobId}: ${detail}.`, ticket.jobId);
      await this.terminal(session, "decline", { jobId: ticket.jobId, attempt: ticket.attempt, chunkId: ticket.chunkId, reason, detail });
    };

    let input: WorkloadInput;
    try {
      const payload = offer.chunk && offer.chunk.payload.length > 0 ? offer.chunk.payload
        : isEncrypted(envelope) ? await decryptEnvelopeWith(envelope, ticket.deviceId, this.keys!.encryption)
        : (envelope.inputManifest?.payload ?? new Uint8Array());
      input = fromBinary(WorkloadInputSchema, payload);
    } catch (e) {
      if (e instanceof PayloadCryptoError) return decline(DeclineReason.BAD_TICKET, `encrypted payload cannot be opened here: ${e.message}`, "refused");
      return decline(DeclineReason.UNSUPPORTED_WORKLOAD, "payload is not a WorkloadInput");
    }

    const decision = this.decide();
    if (!decision.allowed) return decline(DeclineReason.DEVICE_STATE, `not contributing now: ${decision.reason}`);
    if (this.running) return decline(DeclineReason.BUSY, "this page runs one job at a time");
    if (input.input.case === "embeddings" && !this.embedder) return decline(DeclineReason.UNSUPPORTED_WORKLOAD, "the embeddings model is not loaded on this page yet");
    if (input.input.case !== "embeddings" && input.input.case !== "echo") return decline(DeclineReason.UNSUPPORTED_WORKLOAD, `no handler for ${input.input.case ?? "an empty input"} on this device`);

    const running: RunningJob = { ticket, envelope, input, abort: new AbortController(), startedAt: performance.now(), heartbeatsAtStart: this.heartbeats };
    this.running = running;
    const timeout = envelope.timeoutMs > 0n ? setTimeout(() => running.abort.abort("timeout"), Number(envelope.timeoutMs)) : undefined;
    const workload = input.input.case === "embeddings" ? "embeddings" : "echo";
    this.update({ job: { id: ticket.jobId, attempt: ticket.attempt, workload, progress: 0, message: "starting" } });
    this.syncPhase();
    try {
      await this.terminal(session, "accept", { jobId: ticket.jobId, attempt: ticket.attempt, chunkId: ticket.chunkId });
      const output = await this.runWorkload(session, running);
      let bytes: Uint8Array = toBinary(WorkloadOutputSchema, output);
      let nonce: Uint8Array = new Uint8Array();
      let encrypted = false;
      const submitter = envelope.payloadEncryption?.submitterPublicKey;
      if (isEncrypted(envelope) && submitter) {
        const sealed = sealToSubmitter(bytes, submitter, ticket.jobId);
        bytes = sealed.sealed;
        nonce = sealed.nonce;
        encrypted = true;
      }
      // Through the live session (it may be a newer one than the offer's, after a reconnect).
      await this.terminal(this.session ?? session, "result", { jobId: ticket.jobId, attempt: ticket.attempt, chunkId: ticket.chunkId, output: bytes, nonce, encrypted, metering: this.meter(running) });
      const seconds = ((performance.now() - running.startedAt) / 1000).toFixed(1);
      const what = output.output.case === "embeddings" ? `${output.output.value.embeddings.length} embeddings` : "echo";
      this.event("done", `Finished job ${ticket.jobId}: ${what} in ${seconds} s.`, ticket.jobId);
    } catch (e) {
      const cancelled = e instanceof EmbeddingCancelled || running.abort.signal.aborted;
      const why = running.handedBack ? `handed back: device stopped contributing (${running.handedBack})`
        : cancelled ? (running.abort.signal.reason === "disconnected" ? "agent disconnected" : "cancelled or timed out")
        : e instanceof InvalidInput ? e.message
        : `${e instanceof Error ? e.name : "Error"}: ${e instanceof Error ? e.message : String(e)}`;
      const retryable = !(e instanceof InvalidInput);
      this.event(running.handedBack ? "handed-back" : "failed", running.handedBack ? `Handed job ${ticket.jobId} back: ${running.handedBack}.` : `Job ${ticket.jobId} failed: ${why}.`, ticket.jobId);
      if (this.session?.live || this.protocol >= 2) {
        await this.terminal(this.session ?? session, "failure", { jobId: ticket.jobId, attempt: ticket.attempt, chunkId: ticket.chunkId, error: why, retryable, metering: this.meter(running) });
      }
    } finally {
      clearTimeout(timeout);
      this.running = undefined;
      this.update({ job: undefined });
      this.syncPhase();
      void this.refreshStatus();
    }
  }

  private async runWorkload(session: WebRelaySession, running: RunningJob): Promise<WorkloadOutput> {
    const { input, ticket } = running;
    if (input.input.case === "echo") {
      const echo = input.input.value;
      if (echo.delayMs > 0) {
        await this.quietly(session.progress({ jobId: ticket.jobId, attempt: ticket.attempt, chunkId: ticket.chunkId, fraction: 0, message: `waiting ${echo.delayMs} ms` }));
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, Math.min(echo.delayMs, 600_000));
          running.abort.signal.addEventListener("abort", () => (clearTimeout(timer), reject(new EmbeddingCancelled("stopped"))), { once: true });
        });
      }
      return create(WorkloadOutputSchema, { output: { case: "echo", value: { data: echo.data } } });
    }
    if (input.input.case !== "embeddings") throw new InvalidInput("unsupported input");
    const request = input.input.value;
    if (request.texts.length === 0 || request.texts.length > MAX_TEXTS) throw new InvalidInput(`embeddings take 1..${MAX_TEXTS} texts, got ${request.texts.length}`);
    if (request.model && request.model !== this.modelName) throw new InvalidInput(`model ${request.model} is not installed here (this device has ${this.modelName})`);
    const result = await this.embedder!.embed(
      request.texts,
      (done, total) => {
        this.update({ job: { ...this.state.job!, progress: done / total, message: `${done}/${total} texts` } });
        const t = performance.now();
        if (t - this.lastProgressAt > 250 || done === total) {
          this.lastProgressAt = t;
          void this.quietly(session.progress({ jobId: ticket.jobId, attempt: ticket.attempt, chunkId: ticket.chunkId, fraction: done / total, message: `${done}/${total} texts` }));
        }
      },
      running.abort.signal,
    );
    return create(WorkloadOutputSchema, {
      output: {
        case: "embeddings",
        value: { embeddings: result.vectors.map((v) => ({ values: Array.from(v) })), model: this.modelName, dimension: result.dimension, tokenCounts: result.tokenCounts },
      },
    });
  }

  private meter(running: RunningJob) {
    return {
      runtimeMs: BigInt(Math.round(performance.now() - running.startedAt)),
      tier: Tier.TIER_0,
      peakMemoryMb: 0n,
      heartbeatsDuringRun: this.heartbeats - running.heartbeatsAtStart,
    };
  }

  /** Sends a terminal frame through the session it belongs to; under protocol 2 it is kept until control acknowledges it. */
  private async terminal(session: WebRelaySession, kind: TerminalKind, frame: TerminalFrame): Promise<void> {
    const sequence = this.protocol >= 2 ? ++this.nextSequence : 0n;
    if (sequence > 0n) this.unacked.set(sequence, { kind, frame });
    try {
      await session.terminal(kind as "accept", frame as never, sequence);
    } catch {
      // Protocol 2: kept for the next session. Protocol 1: lost with the stream; control retries the job elsewhere.
    }
  }

  private async resendUnacked(session: WebRelaySession): Promise<void> {
    if (this.protocol < 2) return;
    for (const [sequence, pending] of [...this.unacked].sort(([a], [b]) => (a < b ? -1 : 1))) {
      try {
        await session.terminal(pending.kind as "accept", pending.frame as never, sequence);
      } catch {
        return; // this session failed too: the next one tries again
      }
    }
  }

  /** The attempts this device still runs or holds unacknowledged frames of (AgentHello.held_attempts). */
  private heldAttempts() {
    const held = new Map<string, { jobId: string; attempt: number; chunkId: string }>();
    for (const { frame } of this.unacked.values()) held.set(`${frame.jobId}/${frame.attempt}/${frame.chunkId}`, frame);
    if (this.running) {
      const t = this.running.ticket;
      held.set(`${t.jobId}/${t.attempt}/${t.chunkId}`, { jobId: t.jobId, attempt: t.attempt, chunkId: t.chunkId });
    }
    return [...held.values()];
  }

  private capabilities() {
    return this.watcher.capabilities({
      rttMs: this.state.rttMs,
      busy: this.running !== undefined,
      workloads: this.embedder ? [WorkloadClass.EMBEDDINGS, WorkloadClass.DIAGNOSTIC_ECHO] : [WorkloadClass.DIAGNOSTIC_ECHO],
      models: this.embedder
        ? [{ name: this.modelName, version: this.modelVersion, sha256: this.state.model.sha256, dimension: this.modelDimension, workloadClass: WorkloadClass.EMBEDDINGS, isDefault: true }]
        : [],
    });
  }

  // ---------------------------------------------------------------- presentation

  private syncPhase(): void {
    this.update({});
  }

  private derivePhase(): { phase: Phase; reason: string } {
    const current = this.state.phase;
    if (["starting", "needs-link", "join", "joining", "revoked"].includes(current)) return { phase: current, reason: this.state.reason };
    if (!this.welcomed) return { phase: current === "reconnecting" ? "reconnecting" : "connecting", reason: current === "reconnecting" ? this.state.reason : "" };
    if (this.running) return { phase: "working", reason: "" };
    const decision = this.state.decision;
    if (!this.state.switchedOn) return { phase: "off", reason: "Switched off on this page." };
    if (!decision.allowed) return { phase: "paused", reason: decision.reason };
    if (!this.embedder && ["waiting", "downloading", "verifying", "loading"].includes(this.state.model.state)) return { phase: "preparing", reason: this.state.model.detail };
    return { phase: "contributing", reason: "" };
  }

  private syncWakeLock(): void {
    const wanted = this.welcomed && this.state.decision.allowed && this.watcher.signals.visible;
    if (wanted && !this.wakeLock && !this.wakeLockPending && "wakeLock" in navigator) {
      this.wakeLockPending = true;
      (navigator as Navigator & { wakeLock: { request(type: "screen"): Promise<{ release(): Promise<void>; addEventListener(t: string, l: () => void): void }> } }).wakeLock
        .request("screen")
        .then((lock) => {
          this.wakeLock = lock;
          lock.addEventListener("release", () => (this.wakeLock = undefined));
        })
        .catch(() => undefined)
        .finally(() => (this.wakeLockPending = false));
    } else if (!wanted) {
      this.releaseWakeLock();
    }
  }

  private releaseWakeLock(): void {
    void this.wakeLock?.release().catch(() => undefined);
    this.wakeLock = undefined;
  }

  private event(kind: ActivityEvent["kind"], text: string, jobId?: string): void {
    this.state = { ...this.state, events: [{ at: Date.now(), kind, text, ...(jobId ? { jobId } : {}) }, ...this.state.events].slice(0, 30) };
    this.listeners.forEach((l) => l());
  }

  private update(patch: Partial<Snapshot>): void {
    const next = { ...this.state, ...patch };
    this.state = next;
    const derived = this.derivePhase();
    this.state = { ...next, ...derived };
    this.listeners.forEach((l) => l());
  }

  private async quietly(call: Promise<unknown>): Promise<void> {
    try {
      await call;
    } catch {
      // The session is gone or the relay refused the frame; the job's fate is then control's (retry on disconnect).
    }
  }
}

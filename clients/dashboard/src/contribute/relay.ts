// One relay session of the browser device over gRPC-Web (WebRelayService, protos/meshai/relay/v1/web_relay_service.proto):
// the server stream delivers the same frames a native agent's Connect stream does (Challenge, Welcome, HeartbeatAck,
// JobOffer, JobCancel, Cut); every frame the device sends is a unary call carrying the session id. The handshake is the
// agent's: hello with the certificate, the challenge signed with the device key ("meshai-relay-v1\n" + nonce + relay id).
import { Code, ConnectError } from "@connectrpc/connect";
import { relayChallengeMessage } from "@meshai/client";
import type {
  CapabilityReportSchema,
  ConnectResponse,
  Cut,
  FrameAck,
  HeartbeatAck,
  HeldAttemptSchema,
  HeartbeatSchema,
  JobAcceptSchema,
  JobCancel,
  JobDeclineSchema,
  JobFailureSchema,
  JobOffer,
  JobProgressSchema,
  JobResultSchema,
  MeshClient,
  Welcome,
} from "@meshai/client";
import type { MessageInitShape } from "@bufbuild/protobuf";

import type { DeviceKeys, Enrollment } from "./identity";
import { certificateOf } from "./identity";

/** The browser device's agent version string (AgentHello.agent_version). */
export const WEB_AGENT_VERSION = "web-contributor/1.0";

/** The relay protocol the page speaks: 2 = numbered terminal frames acknowledged by FrameAck, held attempts in the hello. */
export const RELAY_PROTOCOL = 2;

/** The frames that end (or begin) an attempt: numbered and acknowledged under protocol 2. */
export type TerminalKind = "accept" | "decline" | "result" | "failure";

export interface SessionHandlers {
  welcome(welcome: Welcome): void;
  offer(offer: JobOffer): void;
  cancel(cancel: JobCancel): void;
  heartbeatAck(ack: HeartbeatAck): void;
  frameAck(ack: FrameAck): void;
}

/** How a session ended: after Welcome or not, with the relay's Cut when it sent one, or the error that ended it. */
export interface SessionEnd {
  welcomed: boolean;
  cut?: Cut;
  error?: ConnectError;
}

export class WebRelaySession {
  private sessionId = "";
  // Frames go out one at a time, in order: HTTP/2 may deliver concurrent unary calls in any order, and the relay must see
  // a job's accept before its progress and its progress before its result.
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly client: MeshClient,
    private readonly enrollment: Enrollment,
    private readonly keys: DeviceKeys,
  ) {}

  /** Runs the stream until it ends (or `signal` aborts it). */
  async run(
    capabilities: MessageInitShape<typeof CapabilityReportSchema>,
    heldAttempts: MessageInitShape<typeof HeldAttemptSchema>[],
    handlers: SessionHandlers,
    signal: AbortSignal,
  ): Promise<SessionEnd> {
    const end: SessionEnd = { welcomed: false };
    const answerFailed = new AbortController();
    const abort = AbortSignal.any([signal, answerFailed.signal]);
    try {
      const stream = this.client.webRelay.openSession(
        { hello: { certificate: certificateOf(this.enrollment), agentVersion: WEB_AGENT_VERSION, capabilities, protocolVersion: RELAY_PROTOCOL, heldAttempts } },
        { signal: abort },
      );
      for await (const response of stream) {
        if (response.frame.case === "session") {
          this.sessionId = response.frame.value.sessionId;
          continue;
        }
        if (response.frame.case !== "relay") continue;
        const frame: ConnectResponse["frame"] = response.frame.value.frame;
        switch (frame.case) {
          case "challenge": {
            const challenge = frame.value;
            // Not awaited here: the relay answers the call once the Welcome is on this stream.
            void this.keys
              .sign(relayChallengeMessage(challenge.nonce, challenge.relayId))
              .then((signature) => this.client.webRelay.answerChallenge({ sessionId: this.sessionId, answer: { signature } }, { signal: abort }))
              .catch(() => answerFailed.abort());
            break;
          }
          case "welcome":
            end.welcomed = true;
            handlers.welcome(frame.value);
            break;
          case "heartbeatAck":
            handlers.heartbeatAck(frame.value);
            break;
          case "jobOffer":
            handlers.offer(frame.value);
            break;
          case "jobCancel":
            handlers.cancel(frame.value);
            break;
          case "frameAck":
            handlers.frameAck(frame.value);
            break;
          case "cut":
            end.cut = frame.value;
            break;
          default:
            break;
        }
      }
    } catch (e) {
      const error = ConnectError.from(e);
      if (error.code !== Code.Canceled || !signal.aborted) end.error = error;
    } finally {
      this.sessionId = "";
    }
    return end;
  }

  get live(): boolean {
    return this.sessionId !== "";
  }

  heartbeat(heartbeat: MessageInitShape<typeof HeartbeatSchema>): Promise<unknown> {
    return this.send(() => this.client.webRelay.sendHeartbeat({ sessionId: this.sessionId, heartbeat }));
  }

  /** A terminal frame with its sequence number (0 under protocol 1). */
  terminal(kind: "accept", frame: MessageInitShape<typeof JobAcceptSchema>, sequence: bigint): Promise<unknown>;
  terminal(kind: "decline", frame: MessageInitShape<typeof JobDeclineSchema>, sequence: bigint): Promise<unknown>;
  terminal(kind: "result", frame: MessageInitShape<typeof JobResultSchema>, sequence: bigint): Promise<unknown>;
  terminal(kind: "failure", frame: MessageInitShape<typeof JobFailureSchema>, sequence: bigint): Promise<unknown>;
  terminal(kind: TerminalKind, frame: object, sequence: bigint): Promise<unknown> {
    const relay = this.client.webRelay;
    const sessionId = this.sessionId;
    switch (kind) {
      case "accept":
        return this.send(() => relay.acceptJob({ sessionId, accept: frame as MessageInitShape<typeof JobAcceptSchema>, sequence }));
      case "decline":
        return this.send(() => relay.declineJob({ sessionId, decline: frame as MessageInitShape<typeof JobDeclineSchema>, sequence }));
      case "result":
        return this.send(() => relay.reportResult({ sessionId, result: frame as MessageInitShape<typeof JobResultSchema>, sequence }));
      case "failure":
        return this.send(() => relay.reportFailure({ sessionId, failure: frame as MessageInitShape<typeof JobFailureSchema>, sequence }));
    }
  }

  progress(progress: MessageInitShape<typeof JobProgressSchema>): Promise<unknown> {
    return this.send(() => this.client.webRelay.reportProgress({ sessionId: this.sessionId, progress }));
  }

  status() {
    return this.client.webRelay.getDeviceStatus({ sessionId: this.sessionId });
  }

  private send<T>(call: () => Promise<T>): Promise<T> {
    const next = this.chain.then(call, call);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

// The device side of the mesh for devices written in TypeScript (the web contributor page, or a Node program):
//   - the exact bytes a device signs (services/MeshAI.Common/Crypto/ProofMessages.cs, ModelManifests.FetchProof);
//   - offer verification exactly as the native agent does it (agent/MeshAI.Agent/Jobs/OfferVerifier.cs over
//     PlacementTickets.Verify and EnvelopeSignatures.Verify): control-key signature, device, network, expiry, envelope
//     hash, chunk hash, optional submitter signature, replay;
//   - signed model manifests (ModelManifests.Verify);
//   - the mobile-safety decision from what the device can tell (charging, Wi-Fi, battery, thermal, page visibility);
//   - the WordPiece tokenizer of Microsoft.ML.Tokenizers' BertTokenizer as the agent configures it (lower-casing,
//     accents kept, CJK split, control characters dropped, words + punctuation, [CLS] … [SEP], truncation by whole words)
//     and sentence-embedding pooling (agent/MeshAI.Agent/Embeddings/EmbeddingModel.cs).
// tests/MeshAI.Contracts.Tests/DeviceInteropTests.cs drives the BUILT package (scripts/device-interop.mjs) against the C#
// implementations, so the two cannot drift apart silently.

import { clone, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";

import { NetworkType, ThermalState } from "./gen/meshai/device/v1/device_pb.js";
import { JobEnvelopeSchema } from "./gen/meshai/job/v1/job_pb.js";
import type { JobEnvelope } from "./gen/meshai/job/v1/job_pb.js";
import { ModelManifestDetailsSchema } from "./gen/meshai/model/v1/model_service_pb.js";
import type { ModelManifest, ModelManifestDetails } from "./gen/meshai/model/v1/model_service_pb.js";
import { MobileContributionPolicy } from "./gen/meshai/network/v1/network_pb.js";
import type { MobileSafetyDefaults } from "./gen/meshai/network/v1/network_pb.js";
import { ChunkPayloadSchema, DeclineReason, PlacementTicketDetailsSchema } from "./gen/meshai/relay/v1/relay_service_pb.js";
import type { JobOffer, PlacementTicket, PlacementTicketDetails } from "./gen/meshai/relay/v1/relay_service_pb.js";

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Lower-case hex SHA-256 (synchronous; small inputs such as envelopes and tickets). */
export function sha256HexSync(data: Uint8Array): string {
  return toHex(sha256(data));
}

/** The id a signing key is named by in tickets and manifests (SigningKeyPair.KeyId): "k_" + 16 hex of its SHA-256. */
export function signingKeyId(publicKey: Uint8Array): string {
  return "k_" + sha256HexSync(publicKey).slice(0, 16);
}

// ---------------------------------------------------------------------------------------------------------------------
// What a device signs (ProofMessages.cs).
// ---------------------------------------------------------------------------------------------------------------------

/** Proof of key possession at registration (RegisterDeviceRequest.proof_signature). */
export function registerProofMessage(
  joinToken: string,
  installationId: string,
  timestampUnixMs: bigint,
  signingPublicKey: Uint8Array,
  encryptionPublicKey: Uint8Array,
): Uint8Array {
  return utf8(`meshai-register-v1\n${joinToken}\n${installationId}\n${timestampUnixMs}\n${toHex(signingPublicKey)}\n${toHex(encryptionPublicKey)}`);
}

/** The relay challenge answer (ChallengeAnswer.signature): "meshai-relay-v1\n" ‖ nonce ‖ relay_id. */
export function relayChallengeMessage(nonce: Uint8Array, relayId: string): Uint8Array {
  return concat(utf8("meshai-relay-v1\n"), nonce, utf8(relayId));
}

/** What a device signs to read its network's model manifests (ModelManifests.FetchProof). */
export function modelFetchProofMessage(certificateSerial: string, networkId: string, timestampUnixMs: bigint): Uint8Array {
  return utf8(`meshai-model-fetch-v1\n${certificateSerial}\n${networkId}\n${timestampUnixMs}`);
}

/** gRPC metadata names of the device proof ModelService checks (ModelManifests.cs). */
export const MODEL_FETCH_HEADERS = {
  certificate: "meshai-device-certificate-bin",
  timestamp: "meshai-device-timestamp",
  proof: "meshai-device-proof-bin",
} as const;

// Strict RFC 8032 verification (canonical encodings), as libsodium/NSec verify on the C# side.
function verifyEd25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    return signature.length === 64 && publicKey.length === 32 && ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Offers (PlacementTickets.Verify, EnvelopeSignatures.Verify, OfferVerifier.Check).
// ---------------------------------------------------------------------------------------------------------------------

/** Verifies a placement ticket; the details, or undefined with the same reason text as PlacementTickets.Verify. */
export function verifyPlacementTicket(
  ticket: PlacementTicket | undefined,
  trustedControlKeys: ReadonlyMap<string, Uint8Array>,
  envelopeBytes: Uint8Array,
  expectedDeviceId: string,
  expectedNetworkId: string,
  now: Date,
): { details?: PlacementTicketDetails; reason: string } {
  if (!ticket || ticket.details.length === 0) return { reason: "unsigned offer" };
  const key = trustedControlKeys.get(ticket.signingKeyId);
  if (!key || !verifyEd25519(ticket.signature, ticket.details, key)) return { reason: "ticket signature invalid" };
  let details: PlacementTicketDetails;
  try {
    details = fromBinary(PlacementTicketDetailsSchema, ticket.details);
  } catch {
    return { reason: "ticket malformed" };
  }
  if (details.deviceId !== expectedDeviceId) return { reason: "ticket is for another device" };
  if (details.networkId !== expectedNetworkId) return { reason: "ticket is for another network" };
  const expire = details.expireTime;
  if (!expire || Number(expire.seconds) * 1000 + Math.floor(expire.nanos / 1e6) < now.getTime()) return { reason: "ticket expired" };
  if (details.envelopeSha256 !== sha256HexSync(envelopeBytes)) return { reason: "envelope does not match the ticket" };
  return { details, reason: "" };
}

/** SHA-256 of the envelope with the server-assigned fields and the signature cleared (EnvelopeSignatures.Digest). */
export function envelopeSignatureDigest(envelope: JobEnvelope): Uint8Array {
  const copy = clone(JobEnvelopeSchema, envelope);
  copy.jobId = "";
  copy.submittedByUserId = "";
  copy.traceId = "";
  copy.authSignature = undefined;
  return sha256(toBinary(JobEnvelopeSchema, copy));
}

/** True when the envelope's submitter signature verifies (a signed timeout of 0 stays valid after control fills it in). */
export function verifyEnvelopeSignature(envelope: JobEnvelope): boolean {
  const signature = envelope.authSignature;
  if (!signature) return false;
  const message = (e: JobEnvelope) => concat(utf8("meshai-envelope-v1\n"), envelopeSignatureDigest(e));
  if (verifyEd25519(signature.signature, message(envelope), signature.publicKey)) return true;
  if (envelope.timeoutMs === 0n) return false;
  const asSubmitted = clone(JobEnvelopeSchema, envelope);
  asSubmitted.timeoutMs = 0n;
  return verifyEd25519(signature.signature, message(asSubmitted), signature.publicKey);
}

/** The outcome of checking an offer: the verified ticket and envelope, or why it is declined. */
export interface OfferCheck {
  accepted: boolean;
  ticket?: PlacementTicketDetails;
  envelope?: JobEnvelope;
  reason: DeclineReason;
  detail: string;
}

export interface OfferVerifierOptions {
  /** The network's trusted control signing keys by key id, at a time (current and within their grace window). */
  controlKeys: (now: Date) => ReadonlyMap<string, Uint8Array>;
  deviceId: string;
  networkId: string;
  now?: () => Date;
  /** Offers remembered against replay (10 000, like the agent). */
  replayMemory?: number;
}

/**
 * Checks every offer before the device accepts it, like the native agent's OfferVerifier: the placement ticket must be
 * signed by a trusted control key of the device's network, name this device and network, be unexpired and bind the
 * offered envelope's hash (and the chunk's hash for chunked jobs); a submitter signature, when present, must verify;
 * a job_id + attempt + chunk seen before is refused as a replay.
 */
export class OfferVerifier {
  private readonly seen = new Set<string>();
  private readonly order: string[] = [];
  private readonly options: Required<OfferVerifierOptions>;

  constructor(options: OfferVerifierOptions) {
    this.options = { now: () => new Date(), replayMemory: 10_000, ...options };
  }

  check(offer: JobOffer): OfferCheck {
    const now = this.options.now();
    const decline = (reason: DeclineReason, detail: string): OfferCheck => ({ accepted: false, reason, detail });
    const verified = verifyPlacementTicket(offer.ticket, this.options.controlKeys(now), offer.envelope, this.options.deviceId, this.options.networkId, now);
    const details = verified.details;
    if (!details) return decline(DeclineReason.BAD_TICKET, verified.reason);

    let envelope: JobEnvelope;
    try {
      envelope = fromBinary(JobEnvelopeSchema, offer.envelope);
    } catch {
      return decline(DeclineReason.BAD_TICKET, "envelope malformed");
    }
    if (envelope.jobId !== details.jobId || envelope.networkId !== this.options.networkId) {
      return decline(DeclineReason.BAD_TICKET, "envelope does not belong to the ticket's job or network");
    }

    // A chunk's payload travels beside the envelope, so the ticket binds its hash too.
    const hasChunk = offer.chunk !== undefined;
    if (hasChunk !== (details.chunkSha256 !== "") || (hasChunk && sha256HexSync(toBinary(ChunkPayloadSchema, offer.chunk!)) !== details.chunkSha256)) {
      return decline(DeclineReason.BAD_TICKET, "chunk payload does not match the ticket");
    }
    if (!hasChunk && envelope.authSignature !== undefined && !verifyEnvelopeSignature(envelope)) {
      return decline(DeclineReason.BAD_TICKET, "submitter signature invalid");
    }

    const key = `${details.jobId}/${details.attempt}/${details.chunkId}`;
    if (this.seen.has(key)) {
      return decline(DeclineReason.REPLAYED, `job ${details.jobId} attempt ${details.attempt} was offered before`);
    }
    this.seen.add(key);
    this.order.push(key);
    while (this.order.length > this.options.replayMemory) {
      this.seen.delete(this.order.shift()!);
    }
    return { accepted: true, ticket: details, envelope, reason: DeclineReason.UNSPECIFIED, detail: "" };
  }
}

/** The ticket details of an offer without verifying them (to name the job in a decline), or undefined. */
export function peekTicket(offer: JobOffer): PlacementTicketDetails | undefined {
  try {
    const details = fromBinary(PlacementTicketDetailsSchema, offer.ticket?.details ?? new Uint8Array());
    return details.jobId ? details : undefined;
  } catch {
    return undefined;
  }
}

/** The details of a model manifest signed by one of the network's control keys (ModelManifests.Verify), or why not. */
export function verifyModelManifest(
  manifest: ModelManifest | undefined,
  trustedControlKeys: ReadonlyMap<string, Uint8Array>,
  expectedNetworkId: string,
): { details?: ModelManifestDetails; reason: string } {
  if (!manifest || manifest.details.length === 0) return { reason: "unsigned manifest" };
  const key = trustedControlKeys.get(manifest.signingKeyId);
  if (!key) return { reason: `signed by key ${manifest.signingKeyId}, which is not one of this network's control keys` };
  if (!verifyEd25519(manifest.signature, manifest.details, key)) return { reason: "signature does not verify with the network's control key" };
  let details: ModelManifestDetails;
  try {
    details = fromBinary(ModelManifestDetailsSchema, manifest.details);
  } catch {
    return { reason: "manifest details malformed" };
  }
  if (details.networkId !== expectedNetworkId) return { reason: `manifest is for network ${details.networkId}, not ${expectedNetworkId}` };
  return { details, reason: "" };
}

// ---------------------------------------------------------------------------------------------------------------------
// WordPiece tokenization (Microsoft.ML.Tokenizers BertTokenizer with BertOptions { LowerCaseBeforeTokenization = true }).
// ---------------------------------------------------------------------------------------------------------------------

const CONTROL = /^\p{Cc}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;
const UPPERCASE = /^\p{Lu}$/u;
// .NET's \w, tested per UTF-16 code unit as .NET's regex engine does (a surrogate half is neither word nor punctuation).
const WORD_UNIT = /^[\p{L}\p{Mn}\p{Nd}\p{Pc}]$/u;
const PUNCTUATION_UNIT = /^\p{P}$/u;

function isCjk(codePoint: number): boolean {
  return (
    (codePoint >= 0x3400 && codePoint <= 0x4dbf) ||
    (codePoint >= 0xf900 && codePoint <= 0xfaff) ||
    (codePoint >= 0x4e00 && codePoint <= 0x9fff) ||
    (codePoint >= 0x20000 && codePoint <= 0x2a6df) ||
    (codePoint >= 0x2a700 && codePoint <= 0x2b73f) ||
    (codePoint >= 0x2b740 && codePoint <= 0x2b81f) ||
    (codePoint >= 0x2b820 && codePoint <= 0x2ceaf) ||
    (codePoint >= 0x2f800 && codePoint <= 0x2fa1f)
  );
}

const unitClass = new Map<number, 0 | 1 | 2>();
/** 1 = word character, 2 = punctuation, 0 = neither (per UTF-16 code unit). */
function classify(unit: number): 0 | 1 | 2 {
  let known = unitClass.get(unit);
  if (known === undefined) {
    const isSurrogate = unit >= 0xd800 && unit <= 0xdfff;
    const ch = String.fromCharCode(unit);
    known = isSurrogate ? 0 : WORD_UNIT.test(ch) ? 1 : PUNCTUATION_UNIT.test(ch) ? 2 : 0;
    unitClass.set(unit, known);
  }
  return known;
}

/** The BertNormalizer step: drop NUL, U+FFFD and control characters, spaces to ' ', lower-case, pad CJK, then NFC. */
export function bertNormalize(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0 || c === 0xfffd) continue;
    let inc = 0;
    let codePoint = c;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        codePoint = (c - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
        inc = 1;
      }
    }
    const ch = inc ? text.slice(i, i + 2) : text[i]!;
    if (CONTROL.test(ch)) {
      i += inc;
      continue;
    }
    if (SPACE_SEPARATOR.test(ch)) {
      out += " ";
      i += inc;
      continue;
    }
    if (UPPERCASE.test(ch)) {
      out += ch.toLowerCase();
      i += inc;
      continue;
    }
    if (isCjk(codePoint)) {
      out += " " + ch + " ";
      i += inc;
      continue;
    }
    out += ch;
    i += inc;
  }
  return out.length === 0 ? "" : out.normalize("NFC");
}

/** A BERT WordPiece vocabulary (vocab.txt: one token per line, id = line number) and the agent's tokenization. */
export class WordPieceTokenizer {
  /** Longest word (UTF-16 code units) split into pieces; longer words become [UNK]. */
  static readonly maxInputCharsPerWord = 100;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  readonly unkId: number;
  private readonly vocab: Map<string, number>;

  private constructor(vocab: Map<string, number>) {
    const id = (token: string): number => {
      const value = vocab.get(token);
      if (value === undefined) throw new Error(`the vocabulary has no ${token}`);
      return value;
    };
    this.vocab = vocab;
    this.unkId = id("[UNK]");
    this.sepId = id("[SEP]");
    this.padId = id("[PAD]");
    this.clsId = id("[CLS]");
    const maskId = id("[MASK]");
    // The text is lower-cased before matching, so the special tokens are matched (and known) in lower case.
    for (const [token, value] of [["[unk]", this.unkId], ["[sep]", this.sepId], ["[pad]", this.padId], ["[cls]", this.clsId], ["[mask]", maskId]] as const) {
      vocab.set(token, value);
    }
  }

  /** Reads vocab.txt (UTF-8 text). */
  static fromVocab(text: string): WordPieceTokenizer {
    const vocab = new Map<string, number>();
    const lines = text.split("\n");
    if (lines.at(-1) === "") lines.pop();
    lines.forEach((line, index) => {
      const token = line.endsWith("\r") ? line.slice(0, -1) : line;
      if (token.length > 0) vocab.set(token, index);
    });
    return new WordPieceTokenizer(vocab);
  }

  /** Token ids of a text as the model sees them: [CLS] … [SEP], at most maxTokens (special tokens included). */
  encode(text: string, maxTokens: number): number[] {
    if (maxTokens < 2) return [];
    const budget = maxTokens - 2;
    const ids: number[] = [];
    const normalized = bertNormalize(text);
    for (const [start, length] of this.preTokenize(normalized)) {
      // A special token ("[sep]" in the text) is a vocabulary entry of its own, so it encodes like any word.
      if (!this.encodeWord(normalized.slice(start, start + length), ids, budget) || ids.length >= budget) break;
    }
    return [this.clsId, ...ids, this.sepId];
  }

  // Special tokens first, and between them runs of word characters or single punctuation characters (other characters —
  // spaces, symbols, emoji, surrogates — separate them and are dropped).
  private *preTokenize(text: string): Generator<[number, number]> {
    let at = 0;
    const specials = /\[unk\]|\[sep\]|\[pad\]|\[cls\]|\[mask\]/g;
    for (let match = specials.exec(text); match; match = specials.exec(text)) {
      yield* this.words(text, at, match.index);
      yield [match.index, match[0].length];
      at = match.index + match[0].length;
    }
    yield* this.words(text, at, text.length);
  }

  private *words(text: string, from: number, to: number): Generator<[number, number]> {
    let i = from;
    while (i < to) {
      const kind = classify(text.charCodeAt(i));
      if (kind === 1) {
        let end = i + 1;
        while (end < to && classify(text.charCodeAt(end)) === 1) end++;
        yield [i, end - i];
        i = end;
      } else if (kind === 2) {
        yield [i, 1];
        i++;
      } else {
        i++;
      }
    }
  }

  // Greedy longest-match-first over UTF-16 code units; a word that cannot be split is one [UNK]; a word whose pieces do
  // not fit the remaining budget is left out entirely and ends the text.
  private encodeWord(word: string, ids: number[], budget: number): boolean {
    if (word.length === 0) return true;
    if (word.length > WordPieceTokenizer.maxInputCharsPerWord) {
      if (budget - ids.length < 1) return false;
      ids.push(this.unkId);
      return true;
    }
    const pieces: number[] = [];
    let start = 0;
    let bad = false;
    while (start < word.length) {
      let end = word.length;
      let found: number | undefined;
      while (start < end) {
        const piece = (start > 0 ? "##" : "") + word.slice(start, end);
        found = this.vocab.get(piece);
        if (found !== undefined) break;
        end--;
      }
      if (found === undefined) {
        bad = true;
        break;
      }
      pieces.push(found);
      start = end;
    }
    if (pieces.length > budget - ids.length) return false;
    ids.push(...(bad ? [this.unkId] : pieces));
    return true;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Pooling (EmbeddingModel.cs: Pooling.MeanPoolAndNormalize / FirstTokenNormalized).
// ---------------------------------------------------------------------------------------------------------------------

/** Mean over the tokens the attention mask keeps, then L2-normalised; hidden is [batch, seq, dim] row-major. */
export function meanPoolAndNormalize(hidden: ArrayLike<number>, mask: ArrayLike<number | bigint>, batch: number, seq: number, dim: number): Float32Array[] {
  const result: Float32Array[] = [];
  for (let b = 0; b < batch; b++) {
    const sum = new Float64Array(dim);
    let kept = 0;
    for (let t = 0; t < seq; t++) {
      if (Number(mask[b * seq + t]) === 0) continue;
      kept++;
      const row = (b * seq + t) * dim;
      for (let d = 0; d < dim; d++) sum[d]! += hidden[row + d]!;
    }
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      sum[d] = sum[d]! / Math.max(1, kept);
      norm += sum[d]! * sum[d]!;
    }
    norm = Math.max(Math.sqrt(norm), 1e-12);
    const vector = new Float32Array(dim);
    for (let d = 0; d < dim; d++) vector[d] = sum[d]! / norm;
    result.push(vector);
  }
  return result;
}

/** Each text's first ([CLS]) token state, L2-normalised. */
export function firstTokenNormalized(hidden: ArrayLike<number>, batch: number, seq: number, dim: number): Float32Array[] {
  const result: Float32Array[] = [];
  for (let b = 0; b < batch; b++) {
    const row = b * seq * dim;
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += hidden[row + d]! * hidden[row + d]!;
    norm = Math.max(Math.sqrt(norm), 1e-12);
    const vector = new Float32Array(dim);
    for (let d = 0; d < dim; d++) vector[d] = hidden[row + d]! / norm;
    result.push(vector);
  }
  return result;
}

/** Cosine similarity of two vectors. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.max(Math.sqrt(na) * Math.sqrt(nb), 1e-12);
}

// ---------------------------------------------------------------------------------------------------------------------
// Mobile safety, decided on the device from what it can tell (the spec's mobile defaults; the network's MobileSafetyDefaults
// are the same rules control's device_state_ok filter applies, EligibilityFilters.DeviceStateOk).
// ---------------------------------------------------------------------------------------------------------------------

/** What a browser can tell about its device now; a field left undefined means this browser has no API for it. */
export interface DeviceSignals {
  battery?: { percent: number; charging: boolean };
  network?: "wifi" | "ethernet" | "cellular" | "other";
  thermal?: ThermalState;
  /** The page is on screen (a hidden page hands its job back). */
  visible: boolean;
}

/** One rule of the decision: met, not met, or not checkable here (which counts as not met: the safe choice). */
export interface ContributionRule {
  id: "switch" | "admin" | "visible" | "policy" | "charging" | "wifi" | "battery" | "thermal";
  label: string;
  state: "ok" | "blocked" | "unknown";
  detail: string;
}

/** Whether the device may take (or keep) work now; reason names the first rule that stops it. */
export interface ContributionDecision {
  allowed: boolean;
  reason: string;
  rules: ContributionRule[];
}

const thermalNames: Record<number, string> = { 1: "nominal", 2: "fair", 3: "serious", 4: "critical" };

/**
 * The contribution rules for a device: the person's switch, the admin's switch, the page being visible, and — for a mobile
 * device — the network's mobile policy (charging, Wi-Fi, minimum battery) and thermal limit. A rule this browser cannot
 * check (no Battery Status, Network Information or Compute Pressure API) is "unknown" and stops contribution: the safe
 * choice. The thermal limit applies to every device whose thermal state is known, like control's filter.
 */
export function decideContribution(
  signals: DeviceSignals,
  safety: MobileSafetyDefaults | undefined,
  options: { switchedOn: boolean; adminEnabled: boolean; mobile: boolean },
): ContributionDecision {
  const rules: ContributionRule[] = [];
  const rule = (id: ContributionRule["id"], label: string, state: ContributionRule["state"], detail: string) => rules.push({ id, label, state, detail });
  rule("switch", "Your switch", options.switchedOn ? "ok" : "blocked", options.switchedOn ? "on" : "contribution is switched off on this page");
  rule("admin", "Network admin", options.adminEnabled ? "ok" : "blocked", options.adminEnabled ? "allows this device" : "an admin switched contribution off for this device");
  rule("visible", "Page on screen", signals.visible ? "ok" : "blocked", signals.visible ? "visible" : "the page is hidden (phones pause hidden pages)");

  const policy = safety?.mobileContributionPolicy ?? MobileContributionPolicy.CHARGING_AND_WIFI_ONLY;
  if (options.mobile) {
    if (policy === MobileContributionPolicy.NEVER) {
      rule("policy", "Network policy", "blocked", "this network takes no work from phones");
    }
    const battery = signals.battery;
    if (policy === MobileContributionPolicy.CHARGING_AND_WIFI_ONLY || policy === MobileContributionPolicy.CHARGING_ONLY) {
      if (!battery) rule("charging", "Charging", "unknown", "this browser cannot tell whether the phone is charging (no Battery Status API)");
      else rule("charging", "Charging", battery.charging ? "ok" : "blocked", battery.charging ? "plugged in" : "not charging");
    }
    if (policy === MobileContributionPolicy.CHARGING_AND_WIFI_ONLY) {
      const network = signals.network;
      if (!network) rule("wifi", "Wi-Fi", "unknown", "this browser cannot tell Wi-Fi from cellular data (no Network Information API)");
      else rule("wifi", "Wi-Fi", network === "wifi" ? "ok" : "blocked", network === "wifi" ? "on Wi-Fi" : network === "cellular" ? "on cellular data" : `on ${network}, not Wi-Fi`);
    }
    const min = safety?.minBatteryPercent ?? 0;
    if (min > 0) {
      if (!battery) rule("battery", "Battery level", "unknown", `this browser cannot read the battery level (the network asks for ${min}% or charging)`);
      else if (battery.percent < min && !battery.charging) rule("battery", "Battery level", "blocked", `battery ${battery.percent}% is below ${min}%`);
      else rule("battery", "Battery level", "ok", `${battery.percent}%`);
    }
  }
  const maxThermal = safety?.maxThermalLevel ?? 0;
  if (maxThermal > 0) {
    const thermal = signals.thermal;
    if (thermal === undefined || thermal === ThermalState.UNSPECIFIED) {
      if (options.mobile) rule("thermal", "Temperature", "unknown", "this browser cannot tell how hot the phone runs (no Compute Pressure API)");
    } else {
      const hot = thermal >= maxThermal;
      rule("thermal", "Temperature", hot ? "blocked" : "ok", hot ? `running hot (${thermalNames[thermal]} pressure)` : `${thermalNames[thermal]} pressure`);
    }
  }
  const first = rules.find((r) => r.state !== "ok");
  return { allowed: first === undefined, reason: first ? first.detail : "", rules };
}

/** The capability-report fields a browser can fill from its signals (battery, network type, thermal state). */
export function signalFields(signals: DeviceSignals): { batteryStateOptional?: { percent: number; charging: boolean; pluggedIn: boolean }; networkType: NetworkType; thermalStateOptional: ThermalState } {
  const networkType =
    signals.network === "wifi" ? NetworkType.WIFI : signals.network === "cellular" ? NetworkType.CELLULAR : signals.network === "ethernet" ? NetworkType.ETHERNET : NetworkType.UNSPECIFIED;
  return {
    ...(signals.battery ? { batteryStateOptional: { percent: signals.battery.percent, charging: signals.battery.charging, pluggedIn: signals.battery.charging } } : {}),
    networkType,
    thermalStateOptional: signals.thermal ?? ThermalState.UNSPECIFIED,
  };
}

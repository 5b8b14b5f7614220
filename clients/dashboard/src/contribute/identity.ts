// The browser device's identity: an ed25519 signing key and an X25519 payload key generated IN the browser (WebCrypto,
// non-extractable, where the browser supports the curves — Chromium does in secure contexts; otherwise the audited @noble
// implementations with the raw key in IndexedDB), and its enrollment: the CA-issued certificate and the network's public
// keys from RegisterDevice. Everything lives in IndexedDB (shared/keystore.ts) and never leaves the browser but the
// public keys. Registration proves possession exactly like the native agent (ProofMessages.Register).
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  DeviceCertificateDetailsSchema,
  DeviceCertificateSchema,
  NetworkKeyPurpose,
  registerProofMessage,
  signingKeyId,
} from "@meshai/client";
import type { CapabilityReportSchema, DeviceCertificate, MeshClient, X25519Agreement } from "@meshai/client";
import type { MessageInitShape } from "@bufbuild/protobuf";

import { loadValue, storeValue } from "../shared/keystore";

const SIGNING = "contributor.signing";
const ENCRYPTION = "contributor.encryption";
const ENROLLMENT = "contributor.enrollment";

/** The device's keys, wherever their private halves live. */
export interface DeviceKeys {
  signingPublicKey: Uint8Array;
  sign(message: Uint8Array): Promise<Uint8Array>;
  encryption: X25519Agreement;
  /** "WebCrypto" (non-extractable keys) or "@noble" (raw keys in IndexedDB). */
  backend: string;
}

/** What RegisterDevice handed out, kept across reloads. */
export interface Enrollment {
  deviceId: string;
  networkId: string;
  deviceName: string;
  installationId: string;
  /** Serialized DeviceCertificate. */
  certificate: Uint8Array;
  serial: string;
  notAfterMs: number;
  /** The network's public keys: CA and control signing, with their grace end (0 = current). */
  networkKeys: { keyId: string; publicKey: Uint8Array; purpose: NetworkKeyPurpose; notAfterMs: number }[];
  joinedAtMs: number;
}

type StoredKey = { kind: "webcrypto"; pair: CryptoKeyPair; publicKey: Uint8Array } | { kind: "noble"; privateKey: Uint8Array; publicKey: Uint8Array };

async function webCryptoPair(algorithm: "Ed25519" | "X25519", usages: KeyUsage[]): Promise<StoredKey | undefined> {
  try {
    const pair = (await crypto.subtle.generateKey({ name: algorithm }, false, usages)) as CryptoKeyPair;
    const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return { kind: "webcrypto", pair, publicKey };
  } catch {
    return undefined; // this browser's WebCrypto has no such curve: fall back to @noble
  }
}

async function loadOrCreate(name: string, algorithm: "Ed25519" | "X25519", usages: KeyUsage[]): Promise<StoredKey> {
  const stored = await loadValue<StoredKey>(name);
  if (stored && (stored.kind === "webcrypto" || stored.kind === "noble")) return stored;
  const fresh: StoredKey = (await webCryptoPair(algorithm, usages)) ?? noblePair(algorithm);
  await storeValue(name, fresh);
  return fresh;
}

function noblePair(algorithm: "Ed25519" | "X25519"): StoredKey {
  const curve = algorithm === "Ed25519" ? ed25519 : x25519;
  const privateKey = curve.utils.randomSecretKey();
  return { kind: "noble", privateKey, publicKey: curve.getPublicKey(privateKey) };
}

/** The device keys (created and stored on first use). */
export async function deviceKeys(): Promise<DeviceKeys> {
  const signing = await loadOrCreate(SIGNING, "Ed25519", ["sign", "verify"]);
  const encryption = await loadOrCreate(ENCRYPTION, "X25519", ["deriveBits"]);
  return {
    signingPublicKey: signing.publicKey,
    backend: signing.kind === "webcrypto" && encryption.kind === "webcrypto" ? "WebCrypto" : "@noble",
    async sign(message) {
      if (signing.kind === "noble") return ed25519.sign(message, signing.privateKey);
      return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, signing.pair.privateKey, message as Uint8Array<ArrayBuffer>));
    },
    encryption: {
      publicKey: encryption.publicKey,
      async sharedSecret(peer) {
        if (encryption.kind === "noble") return x25519.getSharedSecret(encryption.privateKey, peer);
        const peerKey = await crypto.subtle.importKey("raw", peer as Uint8Array<ArrayBuffer>, { name: "X25519" }, true, []);
        return new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: peerKey }, encryption.pair.privateKey, 256));
      },
    },
  };
}

/** The stored enrollment, if this browser joined a network. */
export function loadEnrollment(): Promise<Enrollment | undefined> {
  return loadValue<Enrollment>(ENROLLMENT);
}

/** Forgets the enrollment (after a revocation; the keys stay, a new join link registers them again). */
export function forgetEnrollment(): Promise<void> {
  return storeValue(ENROLLMENT, undefined);
}

const timestampMs = (ts: { seconds: bigint; nanos: number } | undefined): number => (ts ? Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6) : 0);

/** Registers this browser with a one-use join token: proof of possession, then the CA-issued certificate. */
export async function register(
  client: MeshClient,
  keys: DeviceKeys,
  joinToken: string,
  deviceName: string,
  capabilities: MessageInitShape<typeof CapabilityReportSchema>,
): Promise<Enrollment> {
  const installationId = (await loadValue<string>("contributor.installation")) ?? `web-${crypto.randomUUID()}`;
  await storeValue("contributor.installation", installationId);
  const timestamp = BigInt(Date.now());
  const proof = await keys.sign(registerProofMessage(joinToken, installationId, timestamp, keys.signingPublicKey, keys.encryption.publicKey));
  const response = await client.registerDevice({
    joinToken,
    deviceName,
    installationId,
    signingPublicKey: keys.signingPublicKey,
    encryptionPublicKey: keys.encryption.publicKey,
    capabilities,
    timestampUnixMs: timestamp,
    proofSignature: proof,
  });
  const certificate = response.certificate;
  if (!certificate || !response.device) throw new Error("RegisterDevice returned no certificate");
  const details = fromBinary(DeviceCertificateDetailsSchema, certificate.details);
  const enrollment: Enrollment = {
    deviceId: response.device.deviceId,
    networkId: response.device.networkId,
    deviceName: response.device.name,
    installationId,
    certificate: toBinary(DeviceCertificateSchema, certificate),
    serial: details.serial,
    notAfterMs: timestampMs(details.notAfter),
    networkKeys: response.networkKeys.map((k) => ({ keyId: k.keyId, publicKey: k.publicKey, purpose: k.purpose, notAfterMs: timestampMs(k.notAfter) })),
    joinedAtMs: Date.now(),
  };
  await storeValue(ENROLLMENT, enrollment);
  return enrollment;
}

/** The certificate message of an enrollment. */
export function certificateOf(enrollment: Enrollment): DeviceCertificate {
  return fromBinary(DeviceCertificateSchema, enrollment.certificate);
}

/**
 * The network's control signing keys trusted now (current, or within their grace window), by the server's key id and by
 * the id tickets carry (signingKeyId), like the agent's AgentEnrollment.ControlKeys.
 */
export function controlKeys(enrollment: Enrollment, now = Date.now()): Map<string, Uint8Array> {
  const keys = new Map<string, Uint8Array>();
  for (const k of enrollment.networkKeys) {
    if (k.purpose !== NetworkKeyPurpose.CONTROL_SIGNING || (k.notAfterMs !== 0 && k.notAfterMs <= now)) continue;
    keys.set(k.keyId, k.publicKey);
    keys.set(signingKeyId(k.publicKey), k.publicKey);
  }
  return keys;
}

// End-to-end payload encryption, byte-compatible with services/MeshAI.Common/Crypto/PayloadCrypto.cs (docs/security.md):
// the serialized WorkloadInput is sealed once under a random content key (XChaCha20-Poly1305, AD = "meshai-payload-v1\n" +
// network_id + "\n" + workload_id); the content key is wrapped per candidate device with ephemeral X25519 → HKDF-SHA256
// (salt = eph_pub ‖ device_pub, info = "meshai-wrap-v1\n" + device_id) → XChaCha20-Poly1305 (AD = info); results and
// streamed tokens come back sealed to the submitter's X25519 key the same way (info = "meshai-result-v1\n" + job_id,
// sealed = eph_pub ‖ ciphertext). Audited pure-JS primitives from the @noble family; the same code runs in browsers and
// Node ≥ 20.19. The device side (decryptEnvelope, sealToSubmitter) is here too, for browser devices.

import { create, toBinary } from "@bufbuild/protobuf";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";

import { PayloadEncryptionScheme, PayloadEncryptionSchema, WrappedKeySchema } from "./gen/meshai/job/v1/job_pb.js";
import type { JobEnvelope, PayloadEncryption, WrappedKey } from "./gen/meshai/job/v1/job_pb.js";
import { PlanJobResponseSchema } from "./gen/meshai/job/v1/job_service_pb.js";
import type { PlanJobResponse, RecipientKey } from "./gen/meshai/job/v1/job_service_pb.js";

/** XChaCha20-Poly1305 key size. */
export const KEY_SIZE = 32;
/** XChaCha20-Poly1305 nonce size. */
export const NONCE_SIZE = 24;
/** Raw X25519 public key size. */
export const PUBLIC_KEY_SIZE = 32;
const TAG_SIZE = 16;

/** Raised when a payload, wrapped key or result cannot be opened (wrong key, tampered, malformed). */
export class PayloadCryptoError extends Error {
  override name = "PayloadCryptoError";
}

/** An X25519 key pair as raw 32-byte keys. */
export interface X25519KeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

/** A fresh X25519 key pair (the submitter key results are sealed to, or a device's payload key). */
export function generateX25519KeyPair(): X25519KeyPair {
  const privateKey = x25519.utils.randomSecretKey();
  return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
}

/** The X25519 public key of a raw private key. */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(privateKey);
}

/** Cryptographically random bytes (WebCrypto). */
export function randomBytes(length: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(length));
}

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

/** True when the envelope's payload is end-to-end encrypted. */
export function isEncrypted(envelope: JobEnvelope): boolean {
  return envelope.payloadEncryption?.scheme === PayloadEncryptionScheme.X25519_HKDF_XCHACHA20POLY1305;
}

/** Associated data of the payload ciphertext: it cannot move to another network or workload. */
export function payloadContext(networkId: string, workloadId: number): Uint8Array {
  return utf8(`meshai-payload-v1\n${networkId}\n${workloadId}`);
}

const wrapInfo = (deviceId: string): Uint8Array => utf8(`meshai-wrap-v1\n${deviceId}`);
const resultInfo = (jobId: string): Uint8Array => utf8(`meshai-result-v1\n${jobId}`);

function requireKey(key: Uint8Array, what: string): void {
  if (key.length !== PUBLIC_KEY_SIZE) {
    throw new PayloadCryptoError(`${what} must be a raw 32-byte X25519 key (got ${key.length} bytes)`);
  }
}

// HKDF-SHA256(ikm = X25519(private, peer), salt = ephemeral public ‖ recipient public, info = context).
function derive(privateKey: Uint8Array, peerPublic: Uint8Array, ephemeralPublic: Uint8Array, recipientPublic: Uint8Array, info: Uint8Array): Uint8Array {
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(privateKey, peerPublic);
  } catch (e) {
    throw new PayloadCryptoError(`key agreement failed: ${(e as Error).message}`);
  }
  return expand(shared, ephemeralPublic, recipientPublic, info);
}

// The HKDF step over an X25519 shared secret (wiped afterwards); an all-zero secret means a low-order peer key.
function expand(shared: Uint8Array, ephemeralPublic: Uint8Array, recipientPublic: Uint8Array, info: Uint8Array): Uint8Array {
  if (shared.every((b) => b === 0)) {
    throw new PayloadCryptoError("key agreement failed (low-order point)");
  }
  try {
    return hkdf(sha256, shared, concat(ephemeralPublic, recipientPublic), info, KEY_SIZE);
  } finally {
    shared.fill(0);
  }
}

function ephemeralAgreement(recipientPublic: Uint8Array, info: Uint8Array): { ephemeralPublic: Uint8Array; key: Uint8Array } {
  requireKey(recipientPublic, "recipient key");
  const ephemeral = generateX25519KeyPair();
  try {
    return { ephemeralPublic: ephemeral.publicKey, key: derive(ephemeral.privateKey, recipientPublic, ephemeral.publicKey, recipientPublic, info) };
  } finally {
    ephemeral.privateKey.fill(0);
  }
}

function agree(own: X25519KeyPair, ephemeralPublic: Uint8Array, info: Uint8Array): Uint8Array {
  if (ephemeralPublic.length !== PUBLIC_KEY_SIZE) {
    throw new PayloadCryptoError("ephemeral key must be 32 bytes");
  }
  return derive(own.privateKey, ephemeralPublic, ephemeralPublic, own.publicKey, info);
}

function seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, associatedData).encrypt(plaintext);
}

function open(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, associatedData: Uint8Array): Uint8Array | undefined {
  if (nonce.length !== NONCE_SIZE || ciphertext.length < TAG_SIZE) {
    return undefined;
  }
  try {
    return xchacha20poly1305(key, nonce, associatedData).decrypt(ciphertext);
  } catch {
    return undefined;
  }
}

/** Wraps a content key for one device (ephemeral X25519 with its key, HKDF-SHA256, XChaCha20-Poly1305). */
export function wrapKey(contentKey: Uint8Array, deviceId: string, recipientPublicKey: Uint8Array): WrappedKey {
  const info = wrapInfo(deviceId);
  const { ephemeralPublic, key } = ephemeralAgreement(recipientPublicKey, info);
  try {
    const nonce = randomBytes(NONCE_SIZE);
    return create(WrappedKeySchema, { deviceId, ephemeralPublicKey: ephemeralPublic, nonce, wrappedContentKey: seal(key, nonce, contentKey, info) });
  } finally {
    key.fill(0);
  }
}

/** Unwraps a content key with the recipient device's key pair. */
export function unwrapKey(wrapped: WrappedKey, deviceId: string, recipient: X25519KeyPair): Uint8Array {
  const info = wrapInfo(deviceId);
  const key = agree(recipient, wrapped.ephemeralPublicKey, info);
  try {
    const contentKey = open(key, wrapped.nonce, wrapped.wrappedContentKey, info);
    if (contentKey?.length !== KEY_SIZE) {
      throw new PayloadCryptoError("wrapped key does not authenticate for this device");
    }
    return contentKey;
  } finally {
    key.fill(0);
  }
}

/** A device that may run the job and the X25519 key its payload key is wrapped to. */
export interface Recipient {
  deviceId: string;
  publicKey: Uint8Array;
}

/**
 * Encrypts the envelope's plaintext payload (a serialized WorkloadInput) in place for every recipient and records the
 * submitter's public key for the result. payload_sha256 is cleared: a hash of the plaintext would let anyone holding the
 * envelope confirm a guessed input; the AEAD tag binds the content instead.
 */
export function encryptEnvelope(envelope: JobEnvelope, recipients: readonly Recipient[], submitterPublicKey: Uint8Array): void {
  requireKey(submitterPublicKey, "submitter key");
  if (recipients.length === 0) {
    throw new PayloadCryptoError("at least one recipient is required");
  }
  const manifest = envelope.inputManifest;
  if (!manifest) {
    throw new PayloadCryptoError("the envelope has no input manifest");
  }
  const contentKey = randomBytes(KEY_SIZE);
  try {
    const payloadNonce = randomBytes(NONCE_SIZE);
    const ciphertext = seal(contentKey, payloadNonce, manifest.payload, payloadContext(envelope.networkId, envelope.workloadId));
    const encryption: PayloadEncryption = create(PayloadEncryptionSchema, {
      scheme: PayloadEncryptionScheme.X25519_HKDF_XCHACHA20POLY1305,
      payloadNonce,
      submitterPublicKey: new Uint8Array(submitterPublicKey),
      recipients: recipients.map((r) => wrapKey(contentKey, r.deviceId, r.publicKey)),
    });
    manifest.payload = ciphertext;
    manifest.payloadSha256 = "";
    envelope.payloadEncryption = encryption;
  } finally {
    contentKey.fill(0);
  }
}

/** Device side: the plaintext payload of an encrypted envelope, opened with this device's key pair. */
export function decryptEnvelope(envelope: JobEnvelope, deviceId: string, deviceKey: X25519KeyPair): Uint8Array {
  if (!isEncrypted(envelope) || !envelope.payloadEncryption) {
    throw new PayloadCryptoError("payload is not end-to-end encrypted");
  }
  const encryption = envelope.payloadEncryption;
  const wrapped = encryption.recipients.find((r) => r.deviceId === deviceId);
  if (!wrapped) {
    throw new PayloadCryptoError(`the payload key was not wrapped for device ${deviceId}`);
  }
  const contentKey = unwrapKey(wrapped, deviceId, deviceKey);
  try {
    const plaintext = open(contentKey, encryption.payloadNonce, envelope.inputManifest?.payload ?? new Uint8Array(), payloadContext(envelope.networkId, envelope.workloadId));
    if (!plaintext) {
      throw new PayloadCryptoError("payload ciphertext does not authenticate");
    }
    return plaintext;
  } finally {
    contentKey.fill(0);
  }
}

/**
 * A device's X25519 key whose private half need not be readable by JavaScript (a non-extractable WebCrypto key kept in
 * IndexedDB): its public key and the raw X25519 agreement with a peer's public key.
 */
export interface X25519Agreement {
  publicKey: Uint8Array;
  sharedSecret(peerPublicKey: Uint8Array): Promise<Uint8Array>;
}

/** {@link decryptEnvelope} with a key that only agrees (see {@link X25519Agreement}); the same bytes, the same errors. */
export async function decryptEnvelopeWith(envelope: JobEnvelope, deviceId: string, deviceKey: X25519Agreement): Promise<Uint8Array> {
  if (!isEncrypted(envelope) || !envelope.payloadEncryption) {
    throw new PayloadCryptoError("payload is not end-to-end encrypted");
  }
  const encryption = envelope.payloadEncryption;
  const wrapped = encryption.recipients.find((r) => r.deviceId === deviceId);
  if (!wrapped) {
    throw new PayloadCryptoError(`the payload key was not wrapped for device ${deviceId}`);
  }
  if (wrapped.ephemeralPublicKey.length !== PUBLIC_KEY_SIZE) {
    throw new PayloadCryptoError("ephemeral key must be 32 bytes");
  }
  let shared: Uint8Array;
  try {
    shared = await deviceKey.sharedSecret(wrapped.ephemeralPublicKey);
  } catch (e) {
    throw new PayloadCryptoError(`key agreement failed: ${(e as Error).message}`);
  }
  const info = wrapInfo(deviceId);
  const key = expand(shared, wrapped.ephemeralPublicKey, deviceKey.publicKey, info);
  let contentKey: Uint8Array | undefined;
  try {
    contentKey = open(key, wrapped.nonce, wrapped.wrappedContentKey, info);
  } finally {
    key.fill(0);
  }
  if (contentKey?.length !== KEY_SIZE) {
    throw new PayloadCryptoError("wrapped key does not authenticate for this device");
  }
  try {
    const plaintext = open(contentKey, encryption.payloadNonce, envelope.inputManifest?.payload ?? new Uint8Array(), payloadContext(envelope.networkId, envelope.workloadId));
    if (!plaintext) {
      throw new PayloadCryptoError("payload ciphertext does not authenticate");
    }
    return plaintext;
  } finally {
    contentKey.fill(0);
  }
}

/** Device side: seals a result (or a streamed token) of a job to the submitter; returns eph_pub ‖ ciphertext and the nonce. */
export function sealToSubmitter(plaintext: Uint8Array, submitterPublicKey: Uint8Array, jobId: string): { sealed: Uint8Array; nonce: Uint8Array } {
  const info = resultInfo(jobId);
  const { ephemeralPublic, key } = ephemeralAgreement(submitterPublicKey, info);
  try {
    const nonce = randomBytes(NONCE_SIZE);
    return { sealed: concat(ephemeralPublic, seal(key, nonce, plaintext, info)), nonce };
  } finally {
    key.fill(0);
  }
}

/** Submitter side: opens what a device sealed with {@link sealToSubmitter}. */
export function openFromDevice(sealed: Uint8Array, nonce: Uint8Array, submitter: X25519KeyPair, jobId: string): Uint8Array {
  if (sealed.length < PUBLIC_KEY_SIZE + TAG_SIZE) {
    throw new PayloadCryptoError("sealed result is too short");
  }
  const info = resultInfo(jobId);
  const key = agree(submitter, sealed.subarray(0, PUBLIC_KEY_SIZE), info);
  try {
    const plaintext = open(key, nonce, sealed.subarray(PUBLIC_KEY_SIZE), info);
    if (!plaintext) {
      throw new PayloadCryptoError(`result of job ${jobId} does not authenticate with this submitter key`);
    }
    return plaintext;
  } finally {
    key.fill(0);
  }
}

/** The bytes control signs in PlanJobResponse.signature: a domain tag, the network id and the serialized recipients. */
export function planSignatureMessage(networkId: string, recipients: readonly RecipientKey[]): Uint8Array {
  const list = toBinary(PlanJobResponseSchema, create(PlanJobResponseSchema, { recipients: [...recipients] }));
  return concat(utf8(`meshai-plan-v1\n${networkId}\n`), list);
}

/** True when the plan's recipient list carries a valid ed25519 signature by the network's control key. */
export function verifyPlanSignature(plan: PlanJobResponse, networkId: string, controlPublicKey: Uint8Array): boolean {
  try {
    return ed25519.verify(plan.signature, planSignatureMessage(networkId, plan.recipients), controlPublicKey);
  } catch {
    return false;
  }
}

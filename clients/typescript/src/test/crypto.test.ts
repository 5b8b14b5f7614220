import assert from "node:assert/strict";
import { test } from "node:test";

import { create, toBinary } from "@bufbuild/protobuf";
import { ed25519 } from "@noble/curves/ed25519.js";

import {
  JobEnvelopeSchema,
  PayloadCryptoError,
  PayloadEncryptionScheme,
  PlanJobResponseSchema,
  WorkloadClass,
  WorkloadInputSchema,
  decryptEnvelope,
  encryptEnvelope,
  generateX25519KeyPair,
  isEncrypted,
  openFromDevice,
  openResult,
  openToken,
  planSignatureMessage,
  sealToSubmitter,
  verifyPlanSignature,
} from "../index.js";

const input = () => toBinary(WorkloadInputSchema, create(WorkloadInputSchema, { input: { case: "embeddings", value: { texts: ["secret words"] } } }));
const envelope = () =>
  create(JobEnvelopeSchema, { networkId: "net_a", workloadId: WorkloadClass.EMBEDDINGS, inputManifest: { payload: input(), payloadSha256: "ab" } });

test("encryptEnvelope seals the payload once for every recipient; each opens it, nobody else can", () => {
  const laptop = generateX25519KeyPair();
  const desktop = generateX25519KeyPair();
  const submitter = generateX25519KeyPair();
  const e = envelope();
  encryptEnvelope(e, [{ deviceId: "dev_laptop", publicKey: laptop.publicKey }, { deviceId: "dev_desktop", publicKey: desktop.publicKey }], submitter.publicKey);

  assert.ok(isEncrypted(e));
  assert.equal(e.payloadEncryption?.scheme, PayloadEncryptionScheme.X25519_HKDF_XCHACHA20POLY1305);
  assert.equal(e.inputManifest?.payloadSha256, "", "no hash of the plaintext travels");
  assert.deepStrictEqual(e.payloadEncryption?.submitterPublicKey, submitter.publicKey);
  assert.notDeepStrictEqual(e.inputManifest?.payload, input());
  assert.deepStrictEqual(decryptEnvelope(e, "dev_laptop", laptop), input());
  assert.deepStrictEqual(decryptEnvelope(e, "dev_desktop", desktop), input());
  assert.throws(() => decryptEnvelope(e, "dev_other", laptop), PayloadCryptoError);
  assert.throws(() => decryptEnvelope(e, "dev_laptop", desktop), /does not authenticate/);

  const moved = create(JobEnvelopeSchema, { ...e, networkId: "net_b" });
  assert.throws(() => decryptEnvelope(moved, "dev_laptop", laptop), /does not authenticate/, "the ciphertext is bound to its network");
  const tampered = create(JobEnvelopeSchema, e);
  tampered.inputManifest!.payload = e.inputManifest!.payload.map((b, i) => (i === 0 ? b ^ 1 : b));
  assert.throws(() => decryptEnvelope(tampered, "dev_laptop", laptop), PayloadCryptoError);
  assert.throws(() => encryptEnvelope(envelope(), [], submitter.publicKey), /at least one recipient/);
});

test("a device's sealed result and tokens open only with the submitter's key and the job id", () => {
  const submitter = generateX25519KeyPair();
  const output = new TextEncoder().encode("the answer");
  const { sealed, nonce } = sealToSubmitter(output, submitter.publicKey, "job_1");
  assert.equal(sealed.length, 32 + output.length + 16, "ephemeral key ‖ ciphertext ‖ tag");
  assert.deepStrictEqual(openFromDevice(sealed, nonce, submitter, "job_1"), output);
  assert.throws(() => openFromDevice(sealed, nonce, submitter, "job_2"), /does not authenticate/);
  assert.throws(() => openFromDevice(sealed, nonce, generateX25519KeyPair(), "job_1"), /does not authenticate/);

  const token = sealToSubmitter(new TextEncoder().encode(" hello"), submitter.publicKey, "job_1");
  assert.equal(openToken({ token: token.sealed, nonce: token.nonce, index: 0 } as never, "job_1", submitter), " hello");
  assert.equal(openToken({ token: new TextEncoder().encode("plain"), nonce: new Uint8Array(), index: 1 } as never, "job_1"), "plain", "unsealed tokens pass through");

  const result = sealToSubmitter(toBinary(WorkloadInputSchema, create(WorkloadInputSchema)), submitter.publicKey, "job_3");
  assert.throws(() => openResult({ output: result.sealed, nonce: result.nonce, encrypted: true, blobs: [] } as never, "job_3"), /no key to open it/);
});

test("a plan verifies against the control key that signed it and not after a recipient key is swapped", () => {
  const control = ed25519.utils.randomSecretKey();
  const plan = create(PlanJobResponseSchema, {
    recipients: [{ deviceId: "dev_a", encryptionPublicKey: generateX25519KeyPair().publicKey, certificateSerial: "s1" }],
    signingKeyId: "k_1",
  });
  plan.signature = ed25519.sign(planSignatureMessage("net_a", plan.recipients), control);
  const publicKey = ed25519.getPublicKey(control);
  assert.ok(verifyPlanSignature(plan, "net_a", publicKey));
  assert.equal(verifyPlanSignature(plan, "net_b", publicKey), false, "the network id is signed");
  plan.recipients[0]!.encryptionPublicKey = generateX25519KeyPair().publicKey;
  assert.equal(verifyPlanSignature(plan, "net_a", publicKey), false);
});

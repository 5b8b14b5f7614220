// The BUILT @meshai/client's payload crypto (dist/crypto.js) answering one JSON request per stdin line with one JSON line
// on stdout, so tests/MeshAI.Contracts.Tests/PayloadCryptoInteropTests.cs can prove byte compatibility with
// services/MeshAI.Common/Crypto/PayloadCrypto.cs in both directions. Bytes travel as base64.
//
//   {"op":"encrypt","envelope":B64,"recipients":[{"deviceId":"dev_…","publicKey":B64}]}
//        → {"envelope":B64 (JobEnvelope with the payload sealed),"submitterPrivateKey":B64,"submitterPublicKey":B64}
//   {"op":"open","sealed":B64,"nonce":B64,"privateKey":B64,"jobId":"job_…"}          → {"plaintext":B64}
//   {"op":"decrypt","envelope":B64,"deviceId":"dev_…","privateKey":B64}               → {"plaintext":B64}
//   {"op":"seal","plaintext":B64,"publicKey":B64,"jobId":"job_…"}                     → {"sealed":B64,"nonce":B64}
//   {"op":"verifyPlan","plan":B64 (PlanJobResponse),"networkId":"net_…","publicKey":B64} → {"valid":bool}
// An error answers {"error":"…"}.
import { createInterface } from "node:readline";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  JobEnvelopeSchema,
  PlanJobResponseSchema,
  decryptEnvelope,
  encryptEnvelope,
  generateX25519KeyPair,
  openFromDevice,
  sealToSubmitter,
  verifyPlanSignature,
  x25519PublicKey,
} from "../dist/index.js";

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const bytes = (text) => new Uint8Array(Buffer.from(text, "base64"));
const keyPair = (privateKey) => ({ privateKey: bytes(privateKey), publicKey: x25519PublicKey(bytes(privateKey)) });

const ops = {
  encrypt(r) {
    const envelope = fromBinary(JobEnvelopeSchema, bytes(r.envelope));
    const submitter = generateX25519KeyPair();
    encryptEnvelope(envelope, r.recipients.map((x) => ({ deviceId: x.deviceId, publicKey: bytes(x.publicKey) })), submitter.publicKey);
    return { envelope: b64(toBinary(JobEnvelopeSchema, envelope)), submitterPrivateKey: b64(submitter.privateKey), submitterPublicKey: b64(submitter.publicKey) };
  },
  open: (r) => ({ plaintext: b64(openFromDevice(bytes(r.sealed), bytes(r.nonce), keyPair(r.privateKey), r.jobId)) }),
  decrypt: (r) => ({ plaintext: b64(decryptEnvelope(fromBinary(JobEnvelopeSchema, bytes(r.envelope)), r.deviceId, keyPair(r.privateKey))) }),
  seal(r) {
    const { sealed, nonce } = sealToSubmitter(bytes(r.plaintext), bytes(r.publicKey), r.jobId);
    return { sealed: b64(sealed), nonce: b64(nonce) };
  },
  verifyPlan: (r) => ({ valid: verifyPlanSignature(fromBinary(PlanJobResponseSchema, bytes(r.plan)), r.networkId, bytes(r.publicKey)) }),
};

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let answer;
  try {
    const request = JSON.parse(line);
    const op = ops[request.op];
    answer = op ? op(request) : { error: `unknown op ${request.op}` };
  } catch (error) {
    answer = { error: String(error?.message ?? error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}

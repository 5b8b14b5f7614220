// The BUILT @meshai/client's device side (dist/device.js) answering one JSON request per stdin line with one JSON line on
// stdout, so tests/MeshAI.Unit.Tests/Agent/DeviceInteropTests.cs can hold it to the C# agent's behaviour: offer
// verification (OfferVerifier), signed model manifests (ModelManifests.Verify), the bytes a device signs (ProofMessages),
// and WordPiece tokenization (the agent's BertTokenizer). Bytes travel as base64.
//
//   {"op":"verifyOffer","verifier":"name","offer":B64 (JobOffer),"controlKeys":{"keyId":B64},"deviceId":"…","networkId":"…","nowMs":N}
//        → {"accepted":bool,"reason":N (DeclineReason),"detail":"…"}   (one OfferVerifier per "verifier" name: replay memory)
//   {"op":"verifyManifest","manifest":B64 (ModelManifest),"controlKeys":{…},"networkId":"…"} → {"valid":bool,"reason":"…"}
//   {"op":"messages","joinToken":"…","installationId":"…","timestampMs":"N","signingPublicKey":B64,"encryptionPublicKey":B64,
//    "nonce":B64,"relayId":"…","serial":"…","networkId":"…"} → {"register":B64,"relay":B64,"fetch":B64}
//   {"op":"tokenize","vocabPath":"…","maxTokens":N,"texts":["…"]} → {"ids":[[N…]…]}
// An error answers {"error":"…"}.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fromBinary } from "@bufbuild/protobuf";
import {
  JobOfferSchema,
  ModelManifestSchema,
  OfferVerifier,
  WordPieceTokenizer,
  modelFetchProofMessage,
  registerProofMessage,
  relayChallengeMessage,
  verifyModelManifest,
} from "../dist/index.js";

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const bytes = (text) => new Uint8Array(Buffer.from(text, "base64"));
const keys = (map) => new Map(Object.entries(map ?? {}).map(([id, key]) => [id, bytes(key)]));

const verifiers = new Map();
const tokenizers = new Map();

const ops = {
  verifyOffer(r) {
    let verifier = verifiers.get(r.verifier);
    if (!verifier) {
      verifier = new OfferVerifier({ controlKeys: () => keys(r.controlKeys), deviceId: r.deviceId, networkId: r.networkId, now: () => new Date(verifier.nowMs) });
      verifiers.set(r.verifier, verifier);
    }
    verifier.nowMs = r.nowMs;
    const check = verifier.check(fromBinary(JobOfferSchema, bytes(r.offer)));
    return { accepted: check.accepted, reason: check.reason, detail: check.detail };
  },
  verifyManifest(r) {
    const result = verifyModelManifest(fromBinary(ModelManifestSchema, bytes(r.manifest)), keys(r.controlKeys), r.networkId);
    return { valid: result.details !== undefined, reason: result.reason };
  },
  messages: (r) => ({
    register: b64(registerProofMessage(r.joinToken, r.installationId, BigInt(r.timestampMs), bytes(r.signingPublicKey), bytes(r.encryptionPublicKey))),
    relay: b64(relayChallengeMessage(bytes(r.nonce), r.relayId)),
    fetch: b64(modelFetchProofMessage(r.serial, r.networkId, BigInt(r.timestampMs))),
  }),
  tokenize(r) {
    let tokenizer = tokenizers.get(r.vocabPath);
    if (!tokenizer) {
      tokenizer = WordPieceTokenizer.fromVocab(readFileSync(r.vocabPath, "utf8"));
      tokenizers.set(r.vocabPath, tokenizer);
    }
    return { ids: r.texts.map((text) => tokenizer.encode(text, r.maxTokens)) };
  },
};

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let answer;
  try {
    const request = JSON.parse(line);
    const op = ops[request.op];
    answer = op ? op(request) : { error: `unknown op ${request.op}` };
  } catch (error) {
    answer = { error: String(error?.stack ?? error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}

// Cross-language wire vectors (tests/vectors/, produced by tests/MeshAI.Contracts.Tests/VectorFixtures.cs).
// Decodes the C#-encoded bytes with the generated schemas and checks every field against expected.json,
// so a drift on either side (C# fixtures, committed bytes, protos, TypeScript codegen) fails here.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import type { DescEnum, DescMessage, JsonValue } from "@bufbuild/protobuf";

import {
  BlobSchema,
  ConnectRequestSchema,
  ConnectResponseSchema,
  DataSensitivityTagSchema,
  JobEnvelopeSchema,
  PayloadEncryptionSchemeSchema,
  PlacementTicketDetailsSchema,
  RoutingModeSchema,
  TierSchema,
  WorkloadClassSchema,
} from "../index.js";
import type { Blob, JobEnvelope } from "../index.js";
import { readVector, vectorsDir } from "../test-support/support.js";

// expected.json is plain JSON; fields are read by name and converted explicitly below.
type J = any;

interface VectorEntry {
  file: string;
  type: string;
  sha256: string;
  message: J;
}

const expected: { vectors: Record<string, VectorEntry>; embedded: Record<string, { type: string; message: J }> } = JSON.parse(
  readFileSync(join(vectorsDir(), "expected.json"), "utf8"),
);

function vector(name: string): VectorEntry {
  const v = expected.vectors[name];
  assert.ok(v, `expected.json has no vector "${name}"`);
  return v;
}

const schemas: Record<string, DescMessage> = {
  [JobEnvelopeSchema.typeName]: JobEnvelopeSchema,
  [ConnectRequestSchema.typeName]: ConnectRequestSchema,
  [ConnectResponseSchema.typeName]: ConnectResponseSchema,
  [PlacementTicketDetailsSchema.typeName]: PlacementTicketDetailsSchema,
};

function schemaOf(typeName: string): DescMessage {
  const s = schemas[typeName];
  assert.ok(s, `no schema registered for ${typeName}`);
  return s;
}

const sha256Hex = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** A base64 string from expected.json as bytes (fails when the field is missing). */
function b64(v: J, path: string): Uint8Array {
  assert.equal(typeof v, "string", `${path}: expected.json value missing`);
  return new Uint8Array(Buffer.from(v as string, "base64"));
}

/** An int64 from expected.json (canonical JSON writes them as strings). */
function i64(v: J, path: string): bigint {
  assert.equal(typeof v, "string", `${path}: expected.json int64 missing`);
  return BigInt(v as string);
}

/** An enum value by its proto name. */
function enumValue(e: DescEnum, name: J, path: string): number {
  const value = e.values.find((v) => v.name === name);
  assert.ok(value, `${path}: "${String(name)}" is not a value of ${e.typeName}`);
  return value.number;
}

function eq<T>(path: string, actual: T, wanted: T): void {
  assert.deepStrictEqual(actual, wanted, path);
}

/** Byte arrays equal; on mismatch the message names the first differing offset instead of dumping both. */
function eqByteArrays(path: string, actual: Uint8Array, wanted: Uint8Array): void {
  const n = Math.min(actual.length, wanted.length);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== wanted[i]) {
      assert.fail(
        `${path}: bytes differ at offset ${i}: got 0x${(actual[i] ?? 0).toString(16).padStart(2, "0")}, ` +
          `expected 0x${(wanted[i] ?? 0).toString(16).padStart(2, "0")} (lengths ${actual.length}/${wanted.length})`,
      );
    }
  }
  assert.equal(actual.length, wanted.length, `${path}: length`);
}

function eqBytes(path: string, actual: Uint8Array, wantedB64: J): void {
  eqByteArrays(path, actual, b64(wantedB64, path));
}

function assertBlobs(path: string, actual: Blob[], wanted: J[]): void {
  eq(`${path}.length`, actual.length, wanted.length);
  wanted.forEach((w, i) => {
    const a = actual[i];
    assert.ok(a, `${path}[${i}] missing`);
    eq(`${path}[${i}].name`, a.name, w.name);
    eq(`${path}[${i}].contentType`, a.contentType, w.contentType);
    if (w.inlineData !== undefined) {
      eq(`${path}[${i}].source.case`, a.source.case, "inlineData");
      assert.ok(a.source.case === "inlineData");
      eqBytes(`${path}[${i}].inlineData`, a.source.value, w.inlineData);
    } else {
      eq(`${path}[${i}].source.case`, a.source.case, "refUri");
      assert.ok(a.source.case === "refUri");
      eq(`${path}[${i}].refUri`, a.source.value, w.refUri);
    }
    eq(`${path}[${i}].sha256`, a.sha256, w.sha256);
    eq(`${path}[${i}].sizeBytes`, a.sizeBytes, i64(w.sizeBytes, `${path}[${i}].sizeBytes`));
  });
}

function assertJobEnvelope(at: string, a: JobEnvelope, w: J): void {
  eq(`${at}.jobId`, a.jobId, w.jobId);
  eq(`${at}.networkId`, a.networkId, w.networkId);
  eq(`${at}.submittedByUserId`, a.submittedByUserId, w.submittedByUserId);
  eq(`${at}.workloadId`, a.workloadId, enumValue(WorkloadClassSchema, w.workloadId, `${at}.workloadId`));

  const im = a.inputManifest;
  assert.ok(im, `${at}.inputManifest missing`);
  eqBytes(`${at}.inputManifest.payload`, im.payload, w.inputManifest.payload);
  assertBlobs(`${at}.inputManifest.blobs`, im.blobs, w.inputManifest.blobs);
  eq(`${at}.inputManifest.payloadSha256`, im.payloadSha256, w.inputManifest.payloadSha256);
  eq(`${at}.inputManifest.payloadSha256 = sha256(payload)`, im.payloadSha256, sha256Hex(im.payload));
  eq(`${at}.inputManifest.labels`, { ...im.labels }, w.inputManifest.labels);

  eq(`${at}.dataSensitivityTag`, a.dataSensitivityTag, enumValue(DataSensitivityTagSchema, w.dataSensitivityTag, `${at}.dataSensitivityTag`));

  const rr = a.resourceRequest;
  assert.ok(rr, `${at}.resourceRequest missing`);
  const wr = w.resourceRequest;
  eq(`${at}.resourceRequest.minTier`, rr.minTier, enumValue(TierSchema, wr.minTier, `${at}.resourceRequest.minTier`));
  eq(`${at}.resourceRequest.needsGpu`, rr.needsGpu, wr.needsGpu);
  eq(`${at}.resourceRequest.minRamMb`, rr.minRamMb, i64(wr.minRamMb, `${at}.resourceRequest.minRamMb`));
  eq(`${at}.resourceRequest.maxLatencyMs`, rr.maxLatencyMs, wr.maxLatencyMs);
  eq(`${at}.resourceRequest.requiresPinnedDeviceIdsOptional`, rr.requiresPinnedDeviceIdsOptional, wr.requiresPinnedDeviceIdsOptional);
  eq(`${at}.resourceRequest.pinnedTier`, rr.pinnedTier, enumValue(TierSchema, wr.pinnedTier, `${at}.resourceRequest.pinnedTier`));

  eq(`${at}.routingMode`, a.routingMode, enumValue(RoutingModeSchema, w.routingMode, `${at}.routingMode`));
  // 2^53 + 1: only exact as a bigint.
  eq(`${at}.maxCostCredits`, a.maxCostCredits, i64(w.maxCostCredits, `${at}.maxCostCredits`));
  eq(`${at}.maxCostCredits is beyond Number.MAX_SAFE_INTEGER`, a.maxCostCredits > BigInt(Number.MAX_SAFE_INTEGER), true);
  eq(`${at}.timeoutMs`, a.timeoutMs, i64(w.timeoutMs, `${at}.timeoutMs`));

  const sig = a.authSignature;
  assert.ok(sig, `${at}.authSignature missing`);
  eqBytes(`${at}.authSignature.publicKey`, sig.publicKey, w.authSignature.publicKey);
  eqBytes(`${at}.authSignature.signature`, sig.signature, w.authSignature.signature);

  const pe = a.payloadEncryption;
  assert.ok(pe, `${at}.payloadEncryption missing`);
  const wp = w.payloadEncryption;
  eq(`${at}.payloadEncryption.scheme`, pe.scheme, enumValue(PayloadEncryptionSchemeSchema, wp.scheme, `${at}.payloadEncryption.scheme`));
  eqBytes(`${at}.payloadEncryption.payloadNonce`, pe.payloadNonce, wp.payloadNonce);
  eq(`${at}.payloadEncryption.recipients.length`, pe.recipients.length, wp.recipients.length);
  (wp.recipients as J[]).forEach((wk, i) => {
    const k = pe.recipients[i];
    assert.ok(k, `${at}.payloadEncryption.recipients[${i}] missing`);
    eq(`${at}.payloadEncryption.recipients[${i}].deviceId`, k.deviceId, wk.deviceId);
    eqBytes(`${at}.payloadEncryption.recipients[${i}].ephemeralPublicKey`, k.ephemeralPublicKey, wk.ephemeralPublicKey);
    eqBytes(`${at}.payloadEncryption.recipients[${i}].nonce`, k.nonce, wk.nonce);
    eqBytes(`${at}.payloadEncryption.recipients[${i}].wrappedContentKey`, k.wrappedContentKey, wk.wrappedContentKey);
  });
  eqBytes(`${at}.payloadEncryption.submitterPublicKey`, pe.submitterPublicKey, wp.submitterPublicKey);
  eq(`${at}.traceId`, a.traceId, w.traceId);
}

test("job_envelope.bin: every field decodes to the expected value", () => {
  const v = vector("job_envelope");
  eq("type", v.type, JobEnvelopeSchema.typeName);
  const env = fromBinary(JobEnvelopeSchema, readVector(v.file));
  assertJobEnvelope("envelope", env, v.message);
});

test("relay_connect_request_job_result.bin: every field of the job_result frame decodes to the expected value", () => {
  const v = vector("relay_connect_request_job_result");
  eq("type", v.type, ConnectRequestSchema.typeName);
  const req = fromBinary(ConnectRequestSchema, readVector(v.file));
  eq("frame.case", req.frame.case, "jobResult");
  assert.ok(req.frame.case === "jobResult");
  const r = req.frame.value;
  const w = v.message.jobResult;
  eq("jobResult.jobId", r.jobId, w.jobId);
  eq("jobResult.attempt", r.attempt, w.attempt);
  eq("jobResult.chunkId", r.chunkId, w.chunkId);
  eqBytes("jobResult.output", r.output, w.output);
  assertBlobs("jobResult.blobs", r.blobs, w.blobs);
  eqBytes("jobResult.nonce", r.nonce, w.nonce);
  eq("jobResult.encrypted", r.encrypted, w.encrypted);
  eq("jobResult.encrypted is true", r.encrypted, true);
  assert.ok(r.metering, "jobResult.metering missing");
  eq("jobResult.metering.runtimeMs", r.metering.runtimeMs, i64(w.metering.runtimeMs, "runtimeMs"));
  eq("jobResult.metering.tier", r.metering.tier, enumValue(TierSchema, w.metering.tier, "jobResult.metering.tier"));
  eq("jobResult.metering.peakMemoryMb", r.metering.peakMemoryMb, i64(w.metering.peakMemoryMb, "peakMemoryMb"));
  eq("jobResult.metering.heartbeatsDuringRun", r.metering.heartbeatsDuringRun, w.metering.heartbeatsDuringRun);
});

test("relay_connect_response_job_offer.bin: every field of the job_offer frame decodes to the expected value", () => {
  const v = vector("relay_connect_response_job_offer");
  eq("type", v.type, ConnectResponseSchema.typeName);
  const res = fromBinary(ConnectResponseSchema, readVector(v.file));
  eq("frame.case", res.frame.case, "jobOffer");
  assert.ok(res.frame.case === "jobOffer");
  const o = res.frame.value;
  const w = v.message.jobOffer;

  assert.ok(o.ticket, "jobOffer.ticket missing");
  eqBytes("jobOffer.ticket.details", o.ticket.details, w.ticket.details);
  eqBytes("jobOffer.ticket.signature", o.ticket.signature, w.ticket.signature);
  eq("jobOffer.ticket.signingKeyId", o.ticket.signingKeyId, w.ticket.signingKeyId);

  const d = fromBinary(PlacementTicketDetailsSchema, o.ticket.details);
  const wd = expected.embedded["placement_ticket_details"]?.message;
  assert.ok(wd, "expected.json has no embedded placement_ticket_details");
  eq("ticket.details.jobId", d.jobId, wd.jobId);
  eq("ticket.details.attempt", d.attempt, wd.attempt);
  eq("ticket.details.deviceId", d.deviceId, wd.deviceId);
  eq("ticket.details.networkId", d.networkId, wd.networkId);
  eq("ticket.details.envelopeSha256", d.envelopeSha256, wd.envelopeSha256);
  eq("ticket.details.envelopeSha256 = sha256(jobOffer.envelope)", d.envelopeSha256, sha256Hex(o.envelope));
  assert.ok(d.expireTime, "ticket.details.expireTime missing");
  const wantedMs = Date.parse(wd.expireTime as string);
  eq("ticket.details.expireTime.seconds", d.expireTime.seconds, BigInt(Math.floor(wantedMs / 1000)));
  eq("ticket.details.expireTime.nanos", d.expireTime.nanos, (wantedMs % 1000) * 1_000_000);
  eq("ticket.details.chunkId", d.chunkId, wd.chunkId);

  eqBytes("jobOffer.envelope", o.envelope, w.envelope);
  eqByteArrays("jobOffer.envelope vs job_envelope.bin", o.envelope, readVector(vector("job_envelope").file));
  assertJobEnvelope("jobOffer.envelope", fromBinary(JobEnvelopeSchema, o.envelope), vector("job_envelope").message);

  assert.ok(o.chunk, "jobOffer.chunk missing");
  eq("jobOffer.chunk.chunkId", o.chunk.chunkId, w.chunk.chunkId);
  eq("jobOffer.chunk.chunkIndex", o.chunk.chunkIndex, w.chunk.chunkIndex);
  eq("jobOffer.chunk.chunkCount", o.chunk.chunkCount, w.chunk.chunkCount);
  eqBytes("jobOffer.chunk.payload", o.chunk.payload, w.chunk.payload);
});

/** Compares two JSON trees leaf by leaf so a mismatch names its path. */
function assertJsonLeaves(path: string, actual: JsonValue | undefined, wanted: JsonValue | undefined): void {
  if (wanted !== null && typeof wanted === "object") {
    assert.ok(actual !== null && typeof actual === "object", `${path}: expected an object/array, got ${JSON.stringify(actual)}`);
    const keys = new Set([...Object.keys(wanted), ...Object.keys(actual)]);
    for (const k of keys) {
      assertJsonLeaves(
        `${path}.${k}`,
        (actual as Record<string, JsonValue>)[k],
        (wanted as Record<string, JsonValue>)[k],
      );
    }
    return;
  }
  assert.deepStrictEqual(actual, wanted, path);
}

test("relay_connect_response_network_update.bin: the pushed update's int64 fields survive beyond 2^53", () => {
  const v = vector("relay_connect_response_network_update");
  const d = fromBinary(ConnectResponseSchema, readVector(v.file));
  assert.ok(d.frame.case === "networkUpdate");
  const u = d.frame.value;
  const m = v.message.networkUpdate as J;
  eq("networkUpdate.serial", u.serial, i64(m.serial, "networkUpdate.serial"));
  eq("networkUpdate.modelsChangedUnixMs", u.modelsChangedUnixMs, i64(m.modelsChangedUnixMs, "networkUpdate.modelsChangedUnixMs"));
  assert.ok(u.modelsChangedUnixMs > BigInt(Number.MAX_SAFE_INTEGER));
  eq("networkUpdate.fullState", u.fullState, true);
});

test("relay_connect_response_welcome.bin: the Welcome's heartbeat rhythm and sparse acknowledgements decode", () => {
  const v = vector("relay_connect_response_welcome");
  const d = fromBinary(ConnectResponseSchema, readVector(v.file));
  assert.ok(d.frame.case === "welcome");
  const w = d.frame.value;
  const m = v.message.welcome as J;
  eq("welcome.heartbeatIntervalMs", w.heartbeatIntervalMs, m.heartbeatIntervalMs);
  eq("welcome.graceMs", w.graceMs, m.graceMs);
  eq("welcome.protocolVersion", w.protocolVersion, m.protocolVersion);
  eq("welcome.heartbeatAckEvery", w.heartbeatAckEvery, m.heartbeatAckEvery);
  eq("welcome.relayUrls", w.relayUrls, m.relayUrls);
});

test("decoded vectors equal expected.json in canonical proto3 JSON, leaf by leaf", () => {
  for (const [name, v] of Object.entries(expected.vectors)) {
    const schema = schemaOf(v.type);
    assertJsonLeaves(name, toJson(schema, fromBinary(schema, readVector(v.file))), v.message as JsonValue);
  }
  const d = fromBinary(ConnectResponseSchema, readVector(vector("relay_connect_response_job_offer").file));
  assert.ok(d.frame.case === "jobOffer" && d.frame.value.ticket);
  assertJsonLeaves(
    "placement_ticket_details",
    toJson(PlacementTicketDetailsSchema, fromBinary(PlacementTicketDetailsSchema, d.frame.value.ticket.details)),
    expected.embedded["placement_ticket_details"]?.message as JsonValue,
  );
});

/**
 * Every field of the schema (recursively) is present in the expected JSON, i.e. set to a non-default
 * value by the C# fixtures. Only the selected member of a oneof is required. A field added to the protos
 * but not to VectorFixtures.cs fails here.
 */
function assertCovers(path: string, desc: DescMessage, json: J, missing: string[]): void {
  if (desc.typeName.startsWith("google.protobuf.")) {
    return; // Well-known types have their own JSON shape (e.g. Timestamp is a string).
  }
  for (const field of desc.fields) {
    const value = json?.[field.jsonName];
    if (field.oneof && field.oneof.fields.some((f) => f !== field && json?.[f.jsonName] !== undefined)) {
      continue;
    }
    if (value === undefined) {
      missing.push(`${path}.${field.jsonName}`);
      continue;
    }
    if (field.fieldKind === "message") {
      assertCovers(`${path}.${field.jsonName}`, field.message, value, missing);
    } else if (field.fieldKind === "list" && field.listKind === "message") {
      (value as J[]).forEach((item, i) => assertCovers(`${path}.${field.jsonName}[${i}]`, field.message, item, missing));
    } else if (field.fieldKind === "map" && field.mapKind === "message") {
      for (const [k, item] of Object.entries(value as Record<string, J>)) {
        assertCovers(`${path}.${field.jsonName}[${k}]`, field.message, item, missing);
      }
    }
  }
}

test("expected.json sets every field of every vector's schema (fixtures are fully populated)", () => {
  const missing: string[] = [];
  const oneofs: string[] = [];
  for (const [name, v] of Object.entries(expected.vectors)) {
    assertCovers(name, schemaOf(v.type), v.message, missing);
  }
  const d = expected.embedded["placement_ticket_details"];
  assert.ok(d);
  assertCovers("placement_ticket_details", schemaOf(d.type), d.message, missing);
  // Blob.source: the vectors carry one inline and one ref blob, so both oneof members are exercised.
  for (const blob of vector("job_envelope").message.inputManifest.blobs as J[]) {
    oneofs.push(blob.inlineData !== undefined ? "inlineData" : "refUri");
  }
  assert.deepStrictEqual(missing, [], "fields missing from expected.json");
  assert.deepStrictEqual(oneofs.sort(), ["inlineData", "refUri"]);
  assert.ok(BlobSchema.oneofs.some((o) => o.name === "source"));
});

test("the TypeScript encoder reproduces the C#-encoded bytes exactly", () => {
  for (const [name, v] of Object.entries(expected.vectors)) {
    const schema = schemaOf(v.type);
    const committed = readVector(v.file);
    const fromExpected = toBinary(schema, fromJson(schema, v.message as JsonValue));
    eqByteArrays(`${name}: toBinary(fromJson(expected.json)) vs ${v.file}`, fromExpected, committed);
    const roundTrip = toBinary(schema, fromBinary(schema, committed));
    eqByteArrays(`${name}: toBinary(fromBinary(${v.file}))`, roundTrip, committed);
  }
});

test("each vector file's SHA-256 matches expected.json", () => {
  const names = Object.keys(expected.vectors).sort();
  assert.deepStrictEqual(names, [
    "job_envelope",
    "relay_connect_request_job_result",
    "relay_connect_response_job_offer",
    "relay_connect_response_network_update",
    "relay_connect_response_welcome",
  ]);
  for (const [name, v] of Object.entries(expected.vectors)) {
    eq(`${name}: sha256(${v.file})`, sha256Hex(readVector(v.file)), v.sha256);
  }
});

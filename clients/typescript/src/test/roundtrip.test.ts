import assert from "node:assert/strict";
import { test } from "node:test";

import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";

import { WatchJobResponseSchema } from "../index.js";

test("WatchJobResponse token frame: toBinary gives the expected wire bytes and fromBinary restores every field", () => {
  const token = new TextEncoder().encode("Hello");
  const nonce = new Uint8Array([1, 2, 3]);
  const frame = create(WatchJobResponseSchema, {
    frame: { case: "token", value: { token, index: 300, nonce } },
  });

  const bytes = toBinary(WatchJobResponseSchema, frame);
  // field 3 (token, LEN) { field 1 bytes "Hello", field 2 varint 300, field 3 bytes 01 02 03 }
  const wire = [0x1a, 0x0f, 0x0a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x10, 0xac, 0x02, 0x1a, 0x03, 0x01, 0x02, 0x03];
  assert.deepStrictEqual([...bytes], wire);

  const decoded = fromBinary(WatchJobResponseSchema, bytes);
  assert.equal(decoded.frame.case, "token");
  assert.ok(decoded.frame.case === "token");
  assert.deepStrictEqual(decoded.frame.value.token, token);
  assert.equal(new TextDecoder().decode(decoded.frame.value.token), "Hello");
  assert.equal(decoded.frame.value.index, 300);
  assert.deepStrictEqual(decoded.frame.value.nonce, nonce);
  assert.ok(equals(WatchJobResponseSchema, decoded, frame));
});

test("WatchJobResponse: an empty token frame still records which frame it is", () => {
  const frame = create(WatchJobResponseSchema, { frame: { case: "token", value: {} } });
  const bytes = toBinary(WatchJobResponseSchema, frame);
  assert.deepStrictEqual([...bytes], [0x1a, 0x00]);
  const decoded = fromBinary(WatchJobResponseSchema, bytes);
  assert.equal(decoded.frame.case, "token");
  assert.ok(decoded.frame.case === "token");
  assert.equal(decoded.frame.value.index, 0);
  assert.equal(decoded.frame.value.token.length, 0);
});

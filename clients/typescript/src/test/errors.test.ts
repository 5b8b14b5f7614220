import assert from "node:assert/strict";
import { test } from "node:test";

import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

import { describeRpcError, userMessage } from "../index.js";

const message = (fields: [number, string | Uint8Array][]) => {
  const w = new BinaryWriter();
  for (const [no, value] of fields) {
    w.tag(no, 2);
    if (typeof value === "string") w.string(value);
    else w.bytes(value);
  }
  return w.finish();
};

test("describeRpcError reads ErrorInfo, BadRequest, PreconditionFailure and ResourceInfo details", () => {
  const error = new ConnectError("estimated cost exceeds max_cost_credits", Code.FailedPrecondition);
  error.details.push(
    { type: "google.rpc.ErrorInfo", value: message([[1, "COST_CAP"], [2, "meshai.net"]]) },
    { type: "google.rpc.BadRequest", value: message([[1, message([[1, "envelope.max_cost_credits"], [2, "too low"]])]]) },
    { type: "google.rpc.PreconditionFailure", value: message([[1, message([[1, "COST_CAP"], [2, "envelope.max_cost_credits"], [3, "raise the cap"]])]]) },
    { type: "google.rpc.ResourceInfo", value: message([[1, "network"], [2, "net_x"], [4, "not visible"]]) },
  );
  const view = describeRpcError(error);
  assert.equal(view.code, Code.FailedPrecondition);
  assert.equal(view.codeName, "FAILED_PRECONDITION");
  assert.equal(view.reason, "COST_CAP");
  assert.equal(view.domain, "meshai.net");
  assert.equal(view.message, "estimated cost exceeds max_cost_credits", "the message without the [code] prefix");
  assert.deepStrictEqual(view.fieldViolations, [{ field: "envelope.max_cost_credits", description: "too low" }]);
  assert.deepStrictEqual(view.preconditionViolations, [{ type: "COST_CAP", subject: "envelope.max_cost_credits", description: "raise the cap" }]);
  assert.deepStrictEqual(view.resource, { type: "network", name: "net_x", description: "not visible" });
  assert.equal(userMessage(error), "estimated cost exceeds max_cost_credits");
});

test("userMessage explains an unreachable server and never shows a stack", () => {
  assert.match(userMessage(new ConnectError("fetch failed", Code.Unavailable)), /cannot be reached/);
  assert.equal(describeRpcError(new TypeError("Failed to fetch")).retryable, true);
  assert.equal(userMessage(new ConnectError("", Code.Unauthenticated)), "Please sign in again.");
  assert.equal(userMessage(new ConnectError("magic link is unknown, already used or expired", Code.Unauthenticated)), "magic link is unknown, already used or expired");
});

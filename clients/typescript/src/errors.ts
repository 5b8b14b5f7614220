// The user-facing side of gRPC errors: the status plus its google.rpc rich details (ErrorInfo, BadRequest,
// PreconditionFailure, ResourceInfo, QuotaFailure), decoded from the grpc-status-details-bin trailer that Connect exposes
// as ConnectError.details. The server builds every error through services/MeshAI.Common/Errors/RpcErrors.cs.

import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

export interface FieldViolation {
  field: string;
  description: string;
}

export interface PreconditionViolation {
  type: string;
  subject: string;
  description: string;
}

/** A gRPC error as a person should read it. */
export interface RpcErrorView {
  /** Connect/gRPC code (Code.NotFound, …); Code.Unknown for errors that are not RPC errors. */
  code: Code;
  /** The code's name in gRPC spelling (NOT_FOUND). */
  codeName: string;
  /** The server's message (never a stack trace). */
  message: string;
  /** ErrorInfo.reason, e.g. "JOB_COST_CAP_EXCEEDED"; empty when absent. */
  reason: string;
  /** ErrorInfo.domain ("meshai.net"). */
  domain: string;
  fieldViolations: FieldViolation[];
  preconditionViolations: PreconditionViolation[];
  /** ResourceInfo: type and name of what was not found / already exists. */
  resource?: { type: string; name: string; description: string };
  quotaViolations: { subject: string; description: string }[];
  /** True for errors worth retrying as they are (UNAVAILABLE, DEADLINE_EXCEEDED, network failures). */
  retryable: boolean;
}

const CODE_NAMES: Record<number, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

const TYPE_PREFIX = "google.rpc.";

// Reads a message of string fields and repeated sub-messages: field number → strings / nested byte arrays.
function fields(bytes: Uint8Array): Map<number, Uint8Array[]> {
  const out = new Map<number, Uint8Array[]>();
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited) {
      const list = out.get(no) ?? [];
      list.push(reader.bytes());
      out.set(no, list);
    } else {
      reader.skip(wireType);
    }
  }
  return out;
}

const text = (f: Map<number, Uint8Array[]>, no: number): string => {
  const value = f.get(no)?.[0];
  return value ? new TextDecoder().decode(value) : "";
};

/** Decodes any error (ConnectError or not) into what a UI shows. */
export function describeRpcError(error: unknown): RpcErrorView {
  const e = ConnectError.from(error);
  const view: RpcErrorView = {
    code: e.code,
    codeName: CODE_NAMES[e.code] ?? String(e.code),
    message: e.rawMessage,
    reason: "",
    domain: "",
    fieldViolations: [],
    preconditionViolations: [],
    quotaViolations: [],
    retryable: e.code === Code.Unavailable || e.code === Code.DeadlineExceeded || e.code === Code.Unknown,
  };
  for (const detail of e.details) {
    if (!("type" in detail) || !(detail.value instanceof Uint8Array)) {
      continue; // an outgoing detail (built locally), not one the server sent
    }
    const type = detail.type;
    const f = fields(detail.value);
    switch (type.startsWith(TYPE_PREFIX) ? type.slice(TYPE_PREFIX.length) : type) {
      case "ErrorInfo":
        view.reason = text(f, 1);
        view.domain = text(f, 2);
        break;
      case "BadRequest":
        for (const v of f.get(1) ?? []) {
          const vf = fields(v);
          view.fieldViolations.push({ field: text(vf, 1), description: text(vf, 2) });
        }
        break;
      case "PreconditionFailure":
        for (const v of f.get(1) ?? []) {
          const vf = fields(v);
          view.preconditionViolations.push({ type: text(vf, 1), subject: text(vf, 2), description: text(vf, 3) });
        }
        break;
      case "ResourceInfo":
        view.resource = { type: text(f, 1), name: text(f, 2), description: text(f, 4) };
        break;
      case "QuotaFailure":
        for (const v of f.get(1) ?? []) {
          const vf = fields(v);
          view.quotaViolations.push({ subject: text(vf, 1), description: text(vf, 2) });
        }
        break;
    }
  }
  return view;
}

/** One sentence for a person: the server's message (the codes and reason are for logs and tests). */
export function userMessage(error: unknown): string {
  const view = describeRpcError(error);
  if (view.code === Code.Unavailable || (view.code === Code.Unknown && /fetch|network/i.test(view.message))) {
    return "The server cannot be reached. Check that it is running; this page reconnects by itself.";
  }
  if (view.code === Code.Unauthenticated && !view.message) {
    return "Please sign in again.";
  }
  return view.message || view.codeName;
}

// Helpers shared by the tests (kept out of dist/test so the test runner does not treat them as tests).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the first directory above this file that holds MeshAI.sln. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "MeshAI.sln"))) {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(`No MeshAI.sln above ${fileURLToPath(import.meta.url)}`);
    }
    dir = parent;
  }
}

export const vectorsDir = (): string => join(repoRoot(), "tests", "vectors");

export function readVector(file: string): Uint8Array {
  return new Uint8Array(readFileSync(join(vectorsDir(), file)));
}

/** One gRPC-Web frame: flags byte, 4-byte big-endian length, payload. */
export function grpcWebFrame(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length, false);
  out.set(payload, 5);
  return out;
}

/** A complete gRPC-Web response body: one data frame per message, then the trailer frame. */
export function grpcWebBody(messages: Uint8Array[], status = 0, message = ""): Uint8Array {
  let trailer = `grpc-status: ${status}\r\n`;
  if (message !== "") {
    trailer += `grpc-message: ${encodeURIComponent(message)}\r\n`;
  }
  const frames = [...messages.map((m) => grpcWebFrame(0x00, m)), grpcWebFrame(0x80, new TextEncoder().encode(trailer))];
  const out = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}

/** The data-frame payloads of a gRPC-Web request body. */
export function grpcWebMessages(body: Uint8Array): Uint8Array[] {
  const messages: Uint8Array[] = [];
  let at = 0;
  while (at < body.length) {
    const flags = body[at] ?? 0;
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0, false);
    if ((flags & 0x80) === 0) {
      messages.push(body.slice(at + 5, at + 5 + length));
    }
    at += 5 + length;
  }
  return messages;
}

export interface CapturedRequest {
  url: string;
  method: string;
  headers: Headers;
  body: Uint8Array;
}

/**
 * A fetch stand-in: records every request and answers with respond(request) as a gRPC-Web response.
 * `respond` returns the response messages (status 0) or a non-zero status.
 */
export function fakeFetch(
  respond: (req: CapturedRequest) => { messages?: Uint8Array[]; status?: number; message?: string },
): { fetch: typeof globalThis.fetch; requests: CapturedRequest[] } {
  const requests: CapturedRequest[] = [];
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const body = init?.body instanceof Uint8Array ? init.body : new Uint8Array(await new Response(init?.body ?? null).arrayBuffer());
    const req: CapturedRequest = { url, method: init?.method ?? "GET", headers: new Headers(init?.headers), body };
    requests.push(req);
    const answer = respond(req);
    const responseBody = grpcWebBody(answer.messages ?? [], answer.status ?? 0, answer.message ?? "") as Uint8Array<ArrayBuffer>;
    return new Response(responseBody, {
      status: 200,
      headers: { "content-type": "application/grpc-web+proto" },
    });
  };
  return { fetch: fetch as typeof globalThis.fetch, requests };
}

// The embedding model a browser device runs: the network's SIGNED manifest (ModelService, read as the device: certificate
// + a fresh proof in the call metadata), its control-key signature checked here against the keys from registration, then
// every file fetched from this server (the same files the native agent runs, served at /models/…) and its SHA-256 and
// size checked against the manifest before anything reaches ONNX Runtime. Verified files are kept in IndexedDB by hash and
// hashed again on every load: a changed byte is never loaded.
import { encodeBinaryHeader } from "@connectrpc/connect";
import { WorkloadClass, modelFetchProofMessage, verifyModelManifest, MODEL_FETCH_HEADERS } from "@meshai/client";
import type { MeshClient, ModelManifestDetails } from "@meshai/client";

import type { DeviceKeys, Enrollment } from "./identity";
import { controlKeys } from "./identity";

/** The model a browser device runs when the network publishes it (the native agent's default too). */
export const DEFAULT_MODEL = "all-minilm-l6-v2";

export interface VerifiedModel {
  details: ModelManifestDetails;
  model: ArrayBuffer;
  vocab: string;
  /** Lower-case hex SHA-256 of the weights file. */
  weightsSha256: string;
  /** Where the bytes came from this time. */
  source: "cache" | "network";
}

export type ModelProgress = (stage: "manifest" | "downloading" | "verifying", fraction: number, detail: string) => void;

async function deviceHeaders(enrollment: Enrollment, keys: DeviceKeys): Promise<Record<string, string>> {
  const now = BigInt(Date.now());
  const proof = await keys.sign(modelFetchProofMessage(enrollment.serial, enrollment.networkId, now));
  return {
    [MODEL_FETCH_HEADERS.certificate]: encodeBinaryHeader(enrollment.certificate),
    [MODEL_FETCH_HEADERS.timestamp]: now.toString(),
    [MODEL_FETCH_HEADERS.proof]: encodeBinaryHeader(proof),
  };
}

/** The newest verified embeddings manifest of the network: the default model when published, else the first one. */
export async function embeddingsManifest(client: MeshClient, enrollment: Enrollment, keys: DeviceKeys): Promise<ModelManifestDetails | undefined> {
  const listed = await client.model.listModelManifests({ networkId: enrollment.networkId }, { headers: await deviceHeaders(enrollment, keys) });
  const trusted = controlKeys(enrollment);
  const verified: ModelManifestDetails[] = [];
  for (const manifest of listed.manifests) {
    const check = verifyModelManifest(manifest, trusted, enrollment.networkId);
    if (check.details?.workloadClass === WorkloadClass.EMBEDDINGS) verified.push(check.details);
  }
  return verified.find((d) => d.name === DEFAULT_MODEL) ?? verified[0];
}

const toHex = (bytes: ArrayBuffer) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");

/** Fetches (or reads from the cache) every file of the manifest and checks each against it; throws on any mismatch. */
export async function loadVerifiedModel(details: ModelManifestDetails, progress: ModelProgress): Promise<VerifiedModel> {
  const modelFile = details.parameters["model_file"] || details.files[0]?.path || "model.onnx";
  const vocabFile = details.parameters["vocab_file"] || "vocab.txt";
  const total = details.files.reduce((n, f) => n + Number(f.sizeBytes), 0);
  let done = 0;
  let fromNetwork = false;
  const contents = new Map<string, ArrayBuffer>();
  for (const file of details.files) {
    const source = new URL(file.source, window.location.href);
    if (source.origin !== window.location.origin) {
      throw new Error(`${file.path} comes from ${source.origin}; this page only fetches model files from its own server (${window.location.origin})`);
    }
    let bytes = await cached(file.sha256, Number(file.sizeBytes));
    if (bytes) {
      progress("verifying", done / total, `Checking ${file.path} against the signed manifest`);
    } else {
      fromNetwork = true;
      bytes = await download(source, Number(file.sizeBytes), (n) => progress("downloading", (done + n) / total, `Downloading ${file.path}: ${Math.round(n / 1048576)} of ${Math.round(Number(file.sizeBytes) / 1048576)} MB`));
      progress("verifying", (done + bytes.byteLength) / total, `Checking ${file.path} against the signed manifest`);
    }
    const actual = toHex(await crypto.subtle.digest("SHA-256", bytes));
    if (bytes.byteLength !== Number(file.sizeBytes) || actual !== file.sha256.toLowerCase()) {
      await forget(file.sha256);
      throw new Error(`${file.path} does not match the signed manifest (SHA-256 ${actual}, ${bytes.byteLength} bytes; the manifest pins ${file.sha256}, ${file.sizeBytes} bytes): not loaded`);
    }
    if (fromNetwork) await remember(file.sha256, bytes);
    contents.set(file.path, bytes);
    done += bytes.byteLength;
  }
  const model = contents.get(modelFile);
  const vocab = contents.get(vocabFile);
  if (!model || !vocab) throw new Error(`the manifest of ${details.name} does not pin ${!model ? modelFile : vocabFile}`);
  const weights = details.files.find((f) => f.path === modelFile)!;
  return { details, model, vocab: new TextDecoder().decode(vocab), weightsSha256: weights.sha256.toLowerCase(), source: fromNetwork ? "network" : "cache" };
}

async function download(url: URL, size: number, onBytes: (n: number) => void): Promise<ArrayBuffer> {
  const response = await fetch(url, { cache: "no-cache", credentials: "omit" });
  if (!response.ok || !response.body) throw new Error(`${url.pathname}: HTTP ${response.status}`);
  const buffer = new Uint8Array(size);
  const reader = response.body.getReader();
  let at = 0;
  let lastReport = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.length > size) {
      await reader.cancel();
      throw new Error(`${url.pathname} is larger than the ${size} bytes the signed manifest pins`);
    }
    buffer.set(value, at);
    at += value.length;
    if (at - lastReport > 1 << 20) {
      lastReport = at;
      onBytes(at);
    }
  }
  return at === size ? buffer.buffer : buffer.slice(0, at).buffer;
}

// ---- the cache: IndexedDB database "meshai-models", object store "files", key = SHA-256, value = Blob ----

function openCache(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open("meshai-models", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("files");
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB unavailable"));
  });
}

async function withStore<T>(mode: IDBTransactionMode, run: (store: IDBObjectStore) => IDBRequest<T>): Promise<T | undefined> {
  try {
    const db = await openCache();
    try {
      return await new Promise<T>((resolve, reject) => {
        const request = run(db.transaction("files", mode).objectStore("files"));
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
      });
    } finally {
      db.close();
    }
  } catch {
    return undefined; // no cache (private mode, quota): download every time
  }
}

async function cached(sha256: string, size: number): Promise<ArrayBuffer | undefined> {
  const blob = await withStore<unknown>("readonly", (s) => s.get(sha256.toLowerCase()));
  return blob instanceof Blob && blob.size === size ? blob.arrayBuffer() : undefined;
}

async function remember(sha256: string, bytes: ArrayBuffer): Promise<void> {
  await withStore("readwrite", (s) => s.put(new Blob([bytes]), sha256.toLowerCase()));
}

async function forget(sha256: string): Promise<void> {
  await withStore("readwrite", (s) => s.delete(sha256.toLowerCase()));
}

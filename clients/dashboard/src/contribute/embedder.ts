// The page's side of the embeddings worker (embed-worker.ts): loads the verified model into ONNX Runtime Web, runs one
// job's texts batch by batch with progress, and stops between batches when the job is handed back or cancelled.

/** Messages to the worker. */
export type EmbedRequest =
  | { type: "init"; model: ArrayBuffer; vocab: string; maxTokens: number; pooling: string; batchSize: number; threads: number }
  | { type: "embed"; id: number; texts: string[] }
  | { type: "cancel"; id: number };

/** Messages from the worker. */
export type EmbedResponse =
  | { type: "ready"; threads: number; loadMs: number }
  | { type: "progress"; id: number; done: number; total: number }
  | { type: "result"; id: number; vectors: Float32Array; dimension: number; tokenCounts: number[] }
  | { type: "cancelled"; id: number }
  | { type: "error"; id: number; message: string };

/** Texts per inference call: the agent's EmbeddingModel batch size, so padding (and thus the floats) match. */
export const BATCH_SIZE = 16;

export interface Embeddings {
  vectors: Float32Array[];
  dimension: number;
  tokenCounts: number[];
}

/** Thrown when a job's run was stopped on purpose (hand back, cancel). */
export class EmbeddingCancelled extends Error {
  override name = "EmbeddingCancelled";
}

export class Embedder {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (e: Embeddings) => void; reject: (e: Error) => void; progress: (done: number, total: number) => void }>();

  private constructor(
    private readonly worker: Worker,
    /** WebAssembly threads ONNX Runtime runs on (more than 1 only when the page is cross-origin isolated). */
    readonly threads: number,
    /** Milliseconds it took to create the inference session. */
    readonly loadMs: number,
  ) {
    worker.onmessage = (event: MessageEvent<EmbedResponse>) => this.receive(event.data);
  }

  /** Starts a worker and loads the model into it (the bytes move to the worker). */
  static load(model: ArrayBuffer, vocab: string, maxTokens: number, pooling: string): Promise<Embedder> {
    const worker = new Worker(new URL("./embed-worker.ts", import.meta.url), { type: "module", name: "meshai-embeddings" });
    const threads = self.crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
    return new Promise((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<EmbedResponse>) => {
        const message = event.data;
        if (message.type === "ready") resolve(new Embedder(worker, message.threads, message.loadMs));
        else if (message.type === "error") {
          worker.terminate();
          reject(new Error(`the model could not be loaded: ${message.message}`));
        }
      };
      worker.onerror = (e) => {
        worker.terminate();
        reject(new Error(`the embeddings worker failed: ${e.message}`));
      };
      const init: EmbedRequest = { type: "init", model, vocab, maxTokens, pooling, batchSize: BATCH_SIZE, threads };
      worker.postMessage(init, [model]);
    });
  }

  /** Embeds the texts; rejects with EmbeddingCancelled when `signal` aborts (checked between batches). */
  embed(texts: string[], progress: (done: number, total: number) => void, signal: AbortSignal): Promise<Embeddings> {
    const id = this.nextId++;
    return new Promise<Embeddings>((resolve, reject) => {
      if (signal.aborted) {
        reject(new EmbeddingCancelled(String(signal.reason ?? "cancelled")));
        return;
      }
      this.pending.set(id, { resolve, reject, progress });
      signal.addEventListener("abort", () => this.post({ type: "cancel", id }), { once: true });
      this.post({ type: "embed", id, texts });
    });
  }

  dispose(): void {
    this.worker.terminate();
    for (const p of this.pending.values()) p.reject(new EmbeddingCancelled("the model was unloaded"));
    this.pending.clear();
  }

  private post(message: EmbedRequest): void {
    this.worker.postMessage(message);
  }

  private receive(message: EmbedResponse): void {
    if (message.type === "ready") return;
    const job = this.pending.get(message.id);
    if (!job) return;
    switch (message.type) {
      case "progress":
        job.progress(message.done, message.total);
        break;
      case "result": {
        this.pending.delete(message.id);
        const vectors = Array.from({ length: message.tokenCounts.length }, (_, i) => message.vectors.subarray(i * message.dimension, (i + 1) * message.dimension));
        job.resolve({ vectors, dimension: message.dimension, tokenCounts: message.tokenCounts });
        break;
      }
      case "cancelled":
        this.pending.delete(message.id);
        job.reject(new EmbeddingCancelled("stopped"));
        break;
      case "error":
        this.pending.delete(message.id);
        job.reject(new Error(message.message));
        break;
    }
  }
}

/// <reference lib="webworker" />
// The page's embeddings runtime, in a Web Worker so the page stays responsive and a job can be stopped between batches:
// ONNX Runtime Web (WebAssembly; several threads when the page is cross-origin isolated) over the verified model bytes,
// the agent's tokenizer (WordPieceTokenizer from @meshai/client) and pooling (mean or [CLS], then L2) — the same
// pipeline as agent/MeshAI.Agent/Embeddings/EmbeddingModel.cs, in batches of the same size.
import * as ort from "onnxruntime-web/wasm";
import { WordPieceTokenizer, firstTokenNormalized, meanPoolAndNormalize } from "@meshai/client";

import type { EmbedRequest, EmbedResponse } from "./embedder";

declare const __ORT_BASE__: string;
const scope = self as unknown as DedicatedWorkerGlobalScope;

let session: ort.InferenceSession | undefined;
let tokenizer: WordPieceTokenizer | undefined;
let settings: { maxTokens: number; pooling: string; batchSize: number } = { maxTokens: 128, pooling: "mean", batchSize: 16 };
let wantsTokenTypes = false;
let outputName = "last_hidden_state";
const cancelled = new Set<number>();

const post = (message: EmbedResponse, transfer: Transferable[] = []) => scope.postMessage(message, transfer);

scope.onmessage = async (event: MessageEvent<EmbedRequest>) => {
  const message = event.data;
  try {
    switch (message.type) {
      case "init": {
        ort.env.wasm.wasmPaths = __ORT_BASE__;
        ort.env.wasm.numThreads = message.threads;
        ort.env.wasm.proxy = false;
        const started = performance.now();
        session = await ort.InferenceSession.create(new Uint8Array(message.model), { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
        tokenizer = WordPieceTokenizer.fromVocab(message.vocab);
        settings = { maxTokens: message.maxTokens, pooling: message.pooling, batchSize: message.batchSize };
        wantsTokenTypes = session.inputNames.includes("token_type_ids");
        outputName = session.outputNames.includes("last_hidden_state") ? "last_hidden_state" : session.outputNames[0]!;
        post({ type: "ready", threads: ort.env.wasm.numThreads ?? 1, loadMs: performance.now() - started });
        break;
      }
      case "embed":
        await embed(message.id, message.texts);
        break;
      case "cancel":
        cancelled.add(message.id);
        break;
    }
  } catch (e) {
    post({ type: "error", id: "id" in message ? message.id : -1, message: e instanceof Error ? e.message : String(e) });
  }
};

async function embed(id: number, texts: string[]): Promise<void> {
  if (!session || !tokenizer) throw new Error("the model is not loaded");
  const dim = { value: 0 };
  const vectors: Float32Array[] = [];
  const counts: number[] = [];
  for (let start = 0; start < texts.length; start += settings.batchSize) {
    if (cancelled.delete(id)) {
      post({ type: "cancelled", id });
      return;
    }
    const batch = texts.slice(start, start + settings.batchSize).map((t) => tokenizer!.encode(t ?? "", settings.maxTokens));
    const seq = Math.max(1, ...batch.map((t) => t.length));
    const ids = new BigInt64Array(batch.length * seq);
    const mask = new BigInt64Array(batch.length * seq);
    batch.forEach((tokens, b) => {
      counts.push(tokens.length);
      for (let t = 0; t < seq; t++) {
        ids[b * seq + t] = BigInt(t < tokens.length ? tokens[t]! : tokenizer!.padId);
        mask[b * seq + t] = t < tokens.length ? 1n : 0n;
      }
    });
    const shape = [batch.length, seq];
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", ids, shape),
      attention_mask: new ort.Tensor("int64", mask, shape),
    };
    if (wantsTokenTypes) feeds["token_type_ids"] = new ort.Tensor("int64", new BigInt64Array(batch.length * seq), shape);
    const outputs = await session.run(feeds, [outputName]);
    const hidden = outputs[outputName]!;
    dim.value = hidden.dims[hidden.dims.length - 1]!;
    const data = hidden.data as Float32Array;
    const pooled = settings.pooling === "cls" ? firstTokenNormalized(data, batch.length, seq, dim.value) : meanPoolAndNormalize(data, mask, batch.length, seq, dim.value);
    vectors.push(...pooled);
    hidden.dispose();
    post({ type: "progress", id, done: Math.min(texts.length, start + batch.length), total: texts.length });
    // Let a "cancel" message in before the next batch.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const flat = new Float32Array(vectors.length * dim.value);
  vectors.forEach((v, i) => flat.set(v, i * dim.value));
  post({ type: "result", id, vectors: flat, dimension: dim.value, tokenCounts: counts }, [flat.buffer]);
}

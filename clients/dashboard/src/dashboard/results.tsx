// How each workload's result reads (spec run_ai_workload "view result"): embeddings as numbers plus a similarity view,
// OCR text with the word boxes drawn on the image, a transcript with its segments, chat as a conversation; and the
// "why did it route there" explain view (eligibility per device, top scores per feature, selection, retries).
import type { Device, JobDebugView, JobLogFrame, WorkloadOutput } from "@meshai/client";
import { LogLevel } from "@meshai/client";
import { useState } from "preact/hooks";

import { causeLabel, dateTime, filterLabel, ms } from "../shared/format";
import { Badge, DataTable, TableWrap } from "../shared/ui";

export function ResultView({ output, texts, imageUrl, logs }: { output: WorkloadOutput; texts?: string[]; imageUrl?: string; logs?: JobLogFrame[] }) {
  const o = output.output;
  switch (o.case) {
    case "embeddings":
      return <EmbeddingsResult output={o.value} texts={texts ?? []} />;
    case "ocr":
      return <OcrResult output={o.value} {...(imageUrl ? { imageUrl } : {})} logs={logs ?? []} />;
    case "transcribe":
      return (
        <div class="stack result" data-testid="result-transcript">
          <p class="transcript">{o.value.text || <span class="muted">(no speech recognised)</span>}</p>
          <ol class="segments">
            {o.value.segments.map((s) => (
              <li key={`${s.chunkIndex}-${s.startMs}`}>
                <span class="seg-time">
                  {fmtTime(s.startMs)}–{fmtTime(s.endMs)}
                </span>
                <span>{s.text || <span class="muted">(silence)</span>}</span>
              </li>
            ))}
          </ol>
        </div>
      );
    case "chat":
      return (
        <div class="stack result" data-testid="result-chat">
          <div class="bubble bubble-assistant">{o.value.text}</div>
          <p class="muted small">
            {o.value.completionTokens} tokens · stopped by {o.value.finishReason || "end"} · prompt {o.value.promptTokens} tokens
          </p>
        </div>
      );
    case "echo":
      return (
        <pre class="code" data-testid="result-echo">
          {new TextDecoder().decode(o.value.data)}
        </pre>
      );
    case "batch":
      return (
        <ol data-testid="result-batch">
          {o.value.results.map((r, i) => (
            <li key={i}>{r}</li>
          ))}
        </ol>
      );
    default:
      return <p class="muted">The job returned no output.</p>;
  }
}

/** Tesseract confidences arrive as 0..1 from some builds and 0..100 from others. */
const pct = (c: number) => (c <= 1 ? c * 100 : c).toFixed(0);

const fmtTime = (value: bigint) => {
  const s = Number(value) / 1000;
  return `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
};

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

function EmbeddingsResult({ output, texts }: { output: NonNullable<Extract<WorkloadOutput["output"], { case: "embeddings" }>["value"]>; texts: string[] }) {
  const vectors = output.embeddings.map((e) => e.values);
  const label = (i: number) => texts[i] ?? `Text ${i + 1}`;
  return (
    <div class="stack result" data-testid="result-embeddings">
      <p class="muted small">
        {vectors.length} vectors of {output.dimension} dimensions{output.model ? ` · model ${output.model}` : ""} · tokens per text {output.tokenCounts.join(", ")}
      </p>
      <DataTable
        label="Embedding vectors"
        rows={vectors.map((v, i) => ({ v, i }))}
        rowKey={(r) => r.i}
        columns={[
          { label: "Text", cell: (r) => label(r.i) },
          { label: "First values", cellClass: "mono small", cell: ({ v }) => `[${v.slice(0, 6).map((x) => x.toFixed(4)).join(", ")}${v.length > 6 ? ", …" : ""}]` },
          { label: "Norm", num: true, cell: ({ v }) => Math.sqrt(v.reduce((s, x) => s + x * x, 0)).toFixed(3) },
        ]}
      />
      {vectors.length > 1 && (
        <div>
          <h3>Cosine similarity</h3>
          <TableWrap label="Cosine similarity between the texts">
            <table class="heatmap" aria-label="Cosine similarity between the texts">
              <thead>
                <tr>
                  <th />
                  {vectors.map((_, j) => (
                    <th key={j} class="num" scope="col">
                      {j + 1}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {vectors.map((a, i) => (
                  <tr key={i}>
                    <th scope="row" class="heat-label">
                      {i + 1}. {label(i)}
                    </th>
                    {vectors.map((b, j) => {
                      const s = cosine(a, b);
                      return (
                        <td key={j} class="num heat" style={{ "--heat": Math.max(0, s).toFixed(3) }} data-similarity={s.toFixed(4)}>
                          {s.toFixed(2)}
                        </td>
                      );
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        </div>
      )}
    </div>
  );
}

function OcrResult({ output, imageUrl, logs }: { output: NonNullable<Extract<WorkloadOutput["output"], { case: "ocr" }>["value"]>; imageUrl?: string; logs: JobLogFrame[] }) {
  const [size, setSize] = useState<{ w: number; h: number }>();
  // Boxes are in the coordinates of the preprocessed image the device read ("preprocessed to WxH" in its log).
  const pre = logs.map((l) => /preprocessed to (\d+)x(\d+)/.exec(l.message)).find(Boolean);
  const box = pre ? { w: Number(pre[1]), h: Number(pre[2]) } : size;
  return (
    <div class="stack result" data-testid="result-ocr">
      <p class="ocr-text">{output.text || <span class="muted">(no text found)</span>}</p>
      <p class="muted small">
        {output.words.length} words · mean confidence {pct(output.meanConfidence)}%
      </p>
      {imageUrl && (
        <figure class="ocr-figure">
          <img src={imageUrl} alt="The image that was read" class="visually-hidden" onLoad={(e) => setSize({ w: e.currentTarget.naturalWidth, h: e.currentTarget.naturalHeight })} />
          {box && size && (
            <svg viewBox={`0 0 ${box.w} ${box.h}`} class="ocr-svg" role="img" aria-label={`The image with ${output.words.length} recognised words outlined`}>
              <image href={imageUrl} x="0" y="0" width={box.w} height={box.h} preserveAspectRatio="none" />
              {output.words.map((w, i) => (
                <rect key={i} x={w.left} y={w.top} width={w.width} height={w.height} class="ocr-box" data-word={w.text}>
                  <title>
                    {w.text} ({pct(w.confidence)}%)
                  </title>
                </rect>
              ))}
            </svg>
          )}
          <figcaption class="muted small">Recognised words outlined on the image.</figcaption>
        </figure>
      )}
    </div>
  );
}

export function ExplainView({ view, devices }: { view: JobDebugView; devices: Map<string, Device> }) {
  const name = (id: string) => devices.get(id)?.name ?? id;
  return (
    <div class="stack explain" data-testid="explain">
      <div class="alert alert-info">
        <div>
          {view.selectedDeviceId ? (
            <>
              Ran on <strong>{name(view.selectedDeviceId)}</strong>: {view.selectionReason}
            </>
          ) : (
            <>Not placed: {view.selectionReason}</>
          )}
        </div>
      </div>
      <h3>Eligibility per device</h3>
      <DataTable
        label="Eligibility per device"
        rows={view.eligibility}
        rowKey={(e) => e.deviceId}
        columns={[
          { label: "Device", cell: (e) => name(e.deviceId) },
          { label: "Result", cell: (e) => (e.eligible ? <Badge tone="good">Eligible</Badge> : <Badge tone="bad">Filtered</Badge>) },
          { label: "Filter", cell: (e) => (e.eligible ? "—" : filterLabel[e.failingFilter]) },
          { label: "Why", cell: (e) => e.reason || "—" },
        ]}
      />
      {view.topCandidates.length > 0 && (
        <>
          <h3>Top candidates</h3>
          {view.topCandidates.map((c) => (
            <div key={c.deviceId} class="candidate">
              <div class="row">
                <strong>{name(c.deviceId)}</strong>
                <Badge tone={c.deviceId === view.selectedDeviceId ? "good" : "neutral"}>score {c.total.toFixed(3)}</Badge>
                {c.sameLan && <Badge tone="info">same LAN</Badge>}
              </div>
              <ul class="features">
                {c.features.map((f) => (
                  <li key={f.name}>
                    <span class="feature-name">{f.name}</span>
                    <span class="bar" role="img" aria-label={`${f.name}: normalised ${f.normalizedValue.toFixed(2)}, weight ${f.weight}`}>
                      <span class="bar-fill" style={{ width: `${Math.round(Math.max(0, Math.min(1, f.normalizedValue)) * 100)}%` }} />
                    </span>
                    <span class="mono small">
                      {f.rawValue.toFixed(2)} → {f.normalizedValue.toFixed(2)} × {f.weight} = {f.contribution.toFixed(3)}
                    </span>
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </>
      )}
      <h3>Attempts</h3>
      {view.retries.length === 0 ? (
        <p class="muted">No attempt yet.</p>
      ) : (
        <ol class="attempts">
          {view.retries.map((a) => (
            <li key={`${a.attempt}-${a.chunkId}`}>
              Attempt {a.attempt}
              {a.chunkId ? ` (chunk ${a.chunkId})` : ""} on <strong>{name(a.deviceId)}</strong>: {causeLabel[a.cause]}
              {a.detail ? ` — ${a.detail}` : ""} <span class="muted small">{dateTime(a.startTime)}</span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

export function Logs({ logs }: { logs: JobLogFrame[] }) {
  if (logs.length === 0) return <p class="muted small">No log lines.</p>;
  const tone = (l: LogLevel) => (l === LogLevel.ERROR ? "bad" : l === LogLevel.WARN ? "warn" : "neutral");
  return (
    <ol class="logs" aria-label="Job log">
      {logs.map((l, i) => (
        <li key={i}>
          <Badge tone={tone(l.level)}>{LogLevel[l.level]?.toLowerCase() ?? "info"}</Badge> <span>{l.message}</span>
        </li>
      ))}
    </ol>
  );
}

export const runtime = ms;

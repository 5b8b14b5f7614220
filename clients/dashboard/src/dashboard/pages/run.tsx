// Run a workload (spec run_ai_workload): choose the workload and the routing mode, see the estimated credit cost, run,
// watch progress and streamed tokens, see the result and why it ran where it did. Chat is a conversation.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ChatRole, DataSensitivityTag, JobState, OnlineStatus, RoutingMode, Tier, WorkloadClass, sha256Hex } from "@meshai/client";
import type { BlobSchema, EstimateJobResponse, WorkloadInputSchema } from "@meshai/client";
import { useEffect, useRef, useState } from "preact/hooks";

import { api } from "../../shared/api";
import { credits, jobStateLabel, ms, routingLabel, runnableWorkloads, sensitivityLabel, tierLabel, toMicro, workloadLabel } from "../../shared/format";
import { Link } from "../../shared/router";
import { Badge, Button, Card, ErrorBanner, Field, Notice, Skeleton, useAsync } from "../../shared/ui";
import { estimate, runJob } from "../jobs";
import type { RunState, Routing } from "../jobs";
import { ExplainView, Logs, ResultView } from "../results";
import type { TabProps } from "./network";
import { stateTone } from "./workloads";

const MAX_FILE_BYTES = 8 * 1024 * 1024;
const SAMPLE_TEXTS = "The cat sat on the mat.\nA kitten rested on the rug.\nQuarterly revenue grew by eight percent.";

interface ChatTurn {
  role: ChatRole;
  content: string;
}

export function RunWorkload({ networkId, view }: TabProps) {
  const [workload, setWorkload] = useState<WorkloadClass>(WorkloadClass.EMBEDDINGS);
  const [mode, setMode] = useState<RoutingMode>(RoutingMode.AUTO);
  const [deviceId, setDeviceId] = useState("");
  const [tier, setTier] = useState<number>(Tier.TIER_2);
  const [sensitivity, setSensitivity] = useState<DataSensitivityTag>(DataSensitivityTag.PRIVATE);
  const [maxCost, setMaxCost] = useState("");
  const [texts, setTexts] = useState(SAMPLE_TEXTS);
  const [file, setFile] = useState<File>();
  const [language, setLanguage] = useState("eng");
  const [message, setMessage] = useState("Say hello in five words.");
  const [maxTokens, setMaxTokens] = useState(32);
  const [conversation, setConversation] = useState<ChatTurn[]>([]);
  const [echo, setEcho] = useState("ping");
  const [run, setRun] = useState<RunState>();
  const [imageUrl, setImageUrl] = useState<string>();
  const [formError, setFormError] = useState<string>();
  const [explaining, setExplaining] = useState(false);

  const online = [...view.devices.values()].filter((d) => d.onlineStatus === OnlineStatus.ONLINE);
  const textList = texts.split("\n").map((t) => t.trim()).filter(Boolean);
  const routing: Routing = {
    mode,
    ...(mode === RoutingMode.PINNED_DEVICE && deviceId ? { deviceId } : {}),
    ...(mode === RoutingMode.PINNED_TIER ? { tier } : {}),
    sensitivity,
    ...(maxCost.trim() ? { maxCostMicro: safeMicro(maxCost) } : {}),
  };

  const chatMessages = (): ChatTurn[] => [...conversation, { role: ChatRole.USER, content: message }];
  const input = (): MessageInitShape<typeof WorkloadInputSchema> => {
    switch (workload) {
      case WorkloadClass.EMBEDDINGS:
        return { input: { case: "embeddings", value: { texts: textList } } };
      case WorkloadClass.OCR_PREPROCESS:
        return { input: { case: "ocr", value: { imageBlob: "image", language } } };
      case WorkloadClass.SMALL_CHAT:
        return { input: { case: "chat", value: { messages: chatMessages(), maxTokens } } };
      case WorkloadClass.AUDIO_TRANSCRIBE_CHUNKED:
        return { input: { case: "transcribe", value: { audioBlob: "audio", language: language === "eng" ? "" : language } } };
      default:
        return { input: { case: "echo", value: { data: new TextEncoder().encode(echo) } } };
    }
  };

  // The estimate follows the form (debounced; shape only, never the content).
  const [est, setEst] = useState<{ value?: EstimateJobResponse; error?: unknown; loading: boolean }>({ loading: true });
  const estimateKey = JSON.stringify([workload, mode, deviceId, tier, sensitivity, maxCost, textList.length, maxTokens, conversation.length]);
  useEffect(() => {
    const controller = new AbortController();
    setEst((e) => ({ ...e, loading: true }));
    const t = setTimeout(() => {
      estimate(networkId, workload, input(), routing, controller.signal).then(
        (value) => setEst({ value, loading: false }),
        (error) => !controller.signal.aborted && setEst({ error, loading: false }),
      );
    }, 300);
    return () => (clearTimeout(t), controller.abort());
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [networkId, estimateKey]);

  const needsFile = workload === WorkloadClass.OCR_PREPROCESS || workload === WorkloadClass.AUDIO_TRANSCRIBE_CHUNKED;
  const running = run !== undefined && !run.done;

  const submit = async (e: Event) => {
    e.preventDefault();
    setFormError(undefined);
    setExplaining(false);
    if (mode === RoutingMode.PINNED_DEVICE && !deviceId) return setFormError("Choose the device to pin the job to.");
    if (workload === WorkloadClass.EMBEDDINGS && textList.length === 0) return setFormError("Enter at least one text.");
    if (needsFile && !file) return setFormError(workload === WorkloadClass.OCR_PREPROCESS ? "Choose an image to read." : "Choose a WAV recording.");
    if (file && file.size > MAX_FILE_BYTES) return setFormError(`The file is ${(file.size / 1048576).toFixed(1)} MiB; the limit is ${MAX_FILE_BYTES / 1048576} MiB.`);
    let blobs: MessageInitShape<typeof BlobSchema>[] = [];
    let url: string | undefined;
    if (needsFile && file) {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const name = workload === WorkloadClass.OCR_PREPROCESS ? "image" : "audio";
      blobs = [{ name, contentType: file.type || (name === "audio" ? "audio/wav" : "application/octet-stream"), source: { case: "inlineData", value: bytes }, sha256: await sha256Hex(bytes), sizeBytes: BigInt(bytes.length) }];
      if (workload === WorkloadClass.OCR_PREPROCESS) {
        url = URL.createObjectURL(file);
        setImageUrl(url);
      }
    }
    const sent = workload === WorkloadClass.SMALL_CHAT ? chatMessages() : undefined;
    if (sent) {
      setConversation(sent);
      setMessage("");
    }
    setRun({ tokens: "", tokenFrames: 0, logs: [], done: false });
    const final = await runJob(networkId, workload, input(), blobs, routing, setRun, url ? { imageUrl: url } : {});
    if (sent && final.output?.output.case === "chat") {
      setConversation([...sent, { role: ChatRole.ASSISTANT, content: final.output.output.value.text }]);
    }
  };

  const e = est.value;
  return (
    <div class="run-layout">
      <nav class="crumbs" aria-label="Workloads">
        <Link href={`/networks/${networkId}/workloads`}>Recent runs</Link>
        <span aria-hidden="true">/</span>
        <span aria-current="page">Run a workload</span>
      </nav>
      <form class="stack run-form" onSubmit={submit} aria-label="Run a workload">
        <Card title="Run a workload">
          <div class="stack">
            <div class="segmented" role="radiogroup" aria-label="Workload">
              {runnableWorkloads.map((w) => (
                <button
                  key={w}
                  type="button"
                  role="radio"
                  aria-checked={workload === w}
                  class={workload === w ? "seg seg-on" : "seg"}
                  onClick={() => {
                    setWorkload(w);
                    setRun(undefined);
                    setFile(undefined);
                    setLanguage(w === WorkloadClass.OCR_PREPROCESS ? "eng" : "");
                  }}
                >
                  {workloadLabel[w]}
                </button>
              ))}
            </div>
            {workload === WorkloadClass.EMBEDDINGS && (
              <Field label="Texts, one per line" hint={`${textList.length} texts (at most 256). Each becomes one vector.`}>
                {(id, hint) => <textarea id={id} aria-describedby={hint} value={texts} rows={5} onInput={(ev) => setTexts(ev.currentTarget.value)} />}
              </Field>
            )}
            {needsFile && (
              <div class="grid-2">
                <Field label={workload === WorkloadClass.OCR_PREPROCESS ? "Image" : "Audio (WAV)"} hint="Sent inline with the job (at most 8 MiB).">
                  {(id, hint) => (
                    <input
                      id={id}
                      aria-describedby={hint}
                      type="file"
                      accept={workload === WorkloadClass.OCR_PREPROCESS ? "image/*" : "audio/wav,audio/x-wav,.wav"}
                      onChange={(ev) => setFile(ev.currentTarget.files?.[0])}
                    />
                  )}
                </Field>
                <Field label="Language" hint={workload === WorkloadClass.OCR_PREPROCESS ? "Tesseract code, e.g. eng" : "Empty: the device's default"}>
                  {(id, hint) => <input id={id} aria-describedby={hint} value={language} onInput={(ev) => setLanguage(ev.currentTarget.value)} />}
                </Field>
              </div>
            )}
            {workload === WorkloadClass.SMALL_CHAT && (
              <div class="chat">
                {conversation.length > 0 && (
                  <ol class="conversation" aria-label="Conversation">
                    {conversation.map((t, i) => (
                      <li key={i} class={t.role === ChatRole.USER ? "bubble bubble-user" : "bubble bubble-assistant"}>
                        {t.content}
                      </li>
                    ))}
                    {running && <li class="bubble bubble-assistant bubble-live" aria-live="polite">{run?.tokens || "…"}</li>}
                  </ol>
                )}
                <div class="grid-chat">
                  <Field label="Message">
                    {(id) => <textarea id={id} rows={2} value={message} onInput={(ev) => setMessage(ev.currentTarget.value)} required />}
                  </Field>
                  <Field label="Max tokens">
                    {(id) => <input id={id} type="number" min={1} max={2048} value={maxTokens} onInput={(ev) => setMaxTokens(Number(ev.currentTarget.value) || 1)} />}
                  </Field>
                </div>
                {conversation.length > 0 && (
                  <Button variant="ghost" onClick={() => setConversation([])}>
                    New conversation
                  </Button>
                )}
              </div>
            )}
            {workload === WorkloadClass.DIAGNOSTIC_ECHO && (
              <Field label="Data" hint="Returned unchanged: a round trip through the relay and a device.">
                {(id, hint) => <input id={id} aria-describedby={hint} value={echo} onInput={(ev) => setEcho(ev.currentTarget.value)} />}
              </Field>
            )}
          </div>
        </Card>
        <Card title="Routing and cost">
          <div class="stack">
            <div class="grid-3">
              <Field label="Routing mode">
                {(id) => (
                  <select id={id} value={mode} onChange={(ev) => setMode(Number(ev.currentTarget.value) as RoutingMode)}>
                    {[RoutingMode.AUTO, RoutingMode.PINNED_DEVICE, RoutingMode.PINNED_TIER, RoutingMode.LOCAL_PREFER].map((m) => (
                      <option key={m} value={m}>
                        {routingLabel[m]}
                      </option>
                    ))}
                  </select>
                )}
              </Field>
              {mode === RoutingMode.PINNED_DEVICE && (
                <Field label="Device">
                  {(id) => (
                    <select id={id} value={deviceId} onChange={(ev) => setDeviceId(ev.currentTarget.value)} required>
                      <option value="">Choose a device…</option>
                      {[...view.devices.values()].filter((d) => d.onlineStatus !== OnlineStatus.REVOKED).map((d) => (
                        <option key={d.deviceId} value={d.deviceId}>
                          {d.name} ({d.onlineStatus === OnlineStatus.ONLINE ? "online" : "offline"})
                        </option>
                      ))}
                    </select>
                  )}
                </Field>
              )}
              {mode === RoutingMode.PINNED_TIER && (
                <Field label="Tier">
                  {(id) => (
                    <select id={id} value={tier} onChange={(ev) => setTier(Number(ev.currentTarget.value))}>
                      {[Tier.TIER_0, Tier.TIER_1, Tier.TIER_2, Tier.TIER_3, Tier.TIER_4].map((t) => (
                        <option key={t} value={t}>
                          {tierLabel[t]}
                        </option>
                      ))}
                    </select>
                  )}
                </Field>
              )}
              <Field label="Data sensitivity">
                {(id) => (
                  <select id={id} value={sensitivity} onChange={(ev) => setSensitivity(Number(ev.currentTarget.value) as DataSensitivityTag)}>
                    {[DataSensitivityTag.PUBLIC, DataSensitivityTag.PRIVATE, DataSensitivityTag.SENSITIVE].map((s) => (
                      <option key={s} value={s}>
                        {sensitivityLabel[s]}
                      </option>
                    ))}
                  </select>
                )}
              </Field>
              <Field label="Cost cap (credits)" hint="Empty: no cap.">
                {(id, hint) => <input id={id} aria-describedby={hint} inputMode="decimal" value={maxCost} onInput={(ev) => setMaxCost(ev.currentTarget.value)} placeholder="none" />}
              </Field>
            </div>
            <div class="estimate" role="status" aria-live="polite" aria-label="Estimate">
              {est.loading && !e ? (
                <span class="muted">Estimating…</span>
              ) : est.error ? (
                <ErrorBanner error={est.error} />
              ) : e ? (
                <>
                  <div class="estimate-main">
                    <span class="estimate-cost" data-testid="estimate-cost">
                      ≈ {credits(e.estimatedCostMicro)} credits
                    </span>
                    <span class="muted">
                      about {ms(e.estimatedRuntimeMs)} at {tierLabel[e.expectedTier]} rates · {online.length} device{online.length === 1 ? "" : "s"} online
                    </span>
                    {!e.withinMaxCost && <Badge tone="bad">over your cap</Badge>}
                  </div>
                  <div class="muted small">{e.explanation}</div>
                </>
              ) : null}
            </div>
            <p class="muted small lock">
              <svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" class="icon">
                <path d="M4 7V5a4 4 0 1 1 8 0v2h1v8H3V7h1Zm2 0h4V5a2 2 0 1 0-4 0v2Z" />
              </svg>{" "}
              The request and its result are end-to-end encrypted in this browser for the devices that may run it; attached files travel over TLS.
            </p>
            {formError && <Notice tone="bad">{formError}</Notice>}
            <div class="row-end">
              <Button type="submit" variant="primary" busy={running}>
                {workload === WorkloadClass.SMALL_CHAT ? "Send" : "Run"}
              </Button>
            </div>
          </div>
        </Card>
      </form>
      {run && <RunPanel run={run} networkId={networkId} view={view} texts={workload === WorkloadClass.EMBEDDINGS ? textList : []} imageUrl={imageUrl} explaining={explaining} setExplaining={setExplaining} chat={workload === WorkloadClass.SMALL_CHAT} />}
    </div>
  );
}

function safeMicro(text: string): bigint {
  try {
    return toMicro(text);
  } catch {
    return 0n;
  }
}

function RunPanel({ run, networkId, view, texts, imageUrl, explaining, setExplaining, chat }: { run: RunState; networkId: string; view: TabProps["view"]; texts: string[]; imageUrl: string | undefined; explaining: boolean; setExplaining: (v: boolean) => void; chat: boolean }) {
  const job = run.job;
  const explain = useAsync(() => (explaining && job ? api().job.explainJob({ networkId, jobId: job.jobId }).then((r) => r.debugView) : Promise.resolve(undefined)), [explaining, job?.jobId]);
  const progress = run.progress;
  const pct = Math.round((progress?.fraction ?? (run.done ? 1 : 0)) * 100);
  const node = job?.deviceId ? (view.devices.get(job.deviceId)?.name ?? job.deviceId) : undefined;
  const tokensRef = useRef<HTMLDivElement>(null);
  useEffect(() => tokensRef.current?.scrollTo?.(0, tokensRef.current.scrollHeight), [run.tokens]);
  return (
    <Card
      title={
        <>
          {job ? "Job " : "Submitting…"}
          {job && <Link href={`/networks/${networkId}/workloads/${job.jobId}`}>{job.jobId}</Link>}
        </>
      }
      actions={job && <Badge tone={stateTone(job.state)}>{jobStateLabel[job.state]}</Badge>}
      class="run-panel"
    >
      <div class="stack" data-testid="run-panel" data-state={job ? JobState[job.state] : "SUBMITTING"} data-tokens={run.tokenFrames}>
        <div class="progress" role="progressbar" aria-label="Progress" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
          <div class="progress-fill" style={{ width: `${pct}%` }} />
        </div>
        <p class="muted small">
          {progress?.message || (job ? jobStateLabel[job.state] : "Encrypting and submitting")}
          {progress && progress.chunkCount > 0 ? ` · ${progress.chunksCompleted}/${progress.chunkCount} chunks` : ""}
          {node ? ` · on ${node}` : ""}
          {job?.latencyMs ? ` · ${ms(job.latencyMs)}` : ""}
          {job?.costMicro ? ` · ${credits(job.costMicro)} credits` : ""}
        </p>
        {!chat && run.tokens && (
          <div class="tokens" ref={tokensRef} aria-live="polite" data-testid="tokens">
            {run.tokens}
          </div>
        )}
        <ErrorBanner error={run.error} />
        {run.output && (chat && run.output.output.case === "chat" ? (
          <p class="muted small" data-testid="result-chat">
            {run.output.output.value.completionTokens} tokens · stopped by {run.output.output.value.finishReason || "end"} · {run.tokenFrames} streamed · the answer is in the conversation above
          </p>
        ) : (
          <ResultView output={run.output} texts={texts} {...(imageUrl ? { imageUrl } : {})} logs={run.logs} />
        ))}
        {run.logs.length > 0 && (
          <details>
            <summary>Log ({run.logs.length})</summary>
            <Logs logs={run.logs} />
          </details>
        )}
        {job && run.done && (
          <div>
            {!explaining ? (
              <Button onClick={() => setExplaining(true)}>Why did it route there?</Button>
            ) : explain.data ? (
              <ExplainView view={explain.data} devices={view.devices} />
            ) : explain.error ? (
              <ErrorBanner error={explain.error} />
            ) : (
              <Skeleton rows={2} />
            )}
          </div>
        )}
      </div>
    </Card>
  );
}

// Workloads tab (spec workloads_tab: recent runs, status, latency, cost, node used, logs), live from WatchNetwork; a job's
// page (status, attempts, logs, the result when this browser holds the key it was sealed to, "why did it route there");
// and the run-a-workload page (run.tsx).
import { JobState } from "@meshai/client";
import type { Job } from "@meshai/client";
import { useState } from "preact/hooks";

import { api } from "../../shared/api";
import { ago, credits, dateTime, jobStateLabel, ms, routingLabel, sensitivityLabel, tierLabel, workloadLabel } from "../../shared/format";
import { Link, navigate } from "../../shared/router";
import { Badge, Button, Card, Empty, ErrorBanner, Notice, Skeleton, useAsync, useTick, DataTable } from "../../shared/ui";
import { loadResult, localJobs } from "../jobs";
import { ExplainView, Logs, ResultView } from "../results";
import type { TabProps } from "./network";
import { RunWorkload } from "./run";

export const stateTone = (s: JobState) =>
  s === JobState.COMPLETED ? "good" : s === JobState.FAILED ? "bad" : s === JobState.CANCELLED ? "warn" : s === JobState.RUNNING || s === JobState.PLACED ? "info" : "neutral";

export function WorkloadsTab(props: TabProps) {
  if (props.item === "run") return <RunWorkload {...props} />;
  if (props.item?.startsWith("job_")) return <JobPage {...props} jobId={props.item} />;
  return <RecentRuns {...props} />;
}

function RecentRuns({ networkId, view }: TabProps) {
  const now = useTick(10_000);
  const jobs = [...view.jobs.values()];
  const deviceName = (id: string) => (id ? (view.devices.get(id)?.name ?? id) : "—");
  const who = (id: string) => view.members.get(id)?.email ?? id;
  const runHref = `/networks/${networkId}/workloads/run`;
  return (
    <>
      <div class="section-head">
        <h2>Recent runs</h2>
        <Link href={runHref} class="btn btn-primary">
          Run a workload
        </Link>
      </div>
      {jobs.length === 0 ? (
        <Empty title="No workloads have run here yet" action={<Link href={runHref} class="btn btn-primary">Run your first workload</Link>}>
          Embeddings, OCR, chat and transcription run on the best device of this network, encrypted end to end from this browser.
        </Empty>
      ) : (
        <div class="card table-card">
          <DataTable
            label="Recent runs"
            rows={jobs}
            rowKey={(j) => j.jobId}
            rowProps={(j) => ({ class: "clickable", "data-job-id": j.jobId, onClick: () => navigate(`/networks/${networkId}/workloads/${j.jobId}`) })}
            columns={[
              {
                label: "Workload",
                cell: (j) => (
                  <>
                    <Link href={`/networks/${networkId}/workloads/${j.jobId}`}>{workloadLabel[j.workloadId]}</Link>
                    {j.chunkCount > 0 && <span class="muted small"> · {j.chunksCompleted}/{j.chunkCount} chunks</span>}
                  </>
                ),
              },
              { label: "Status", cell: (j) => <Badge tone={stateTone(j.state)}>{jobStateLabel[j.state]}</Badge> },
              { label: "Node", cell: (j) => deviceName(j.deviceId) },
              { label: "Latency", num: true, cell: (j) => (j.latencyMs ? ms(j.latencyMs) : "—") },
              { label: "Cost", num: true, cell: (j) => credits(j.costMicro) },
              {
                label: "Submitted",
                cell: (j) => (
                  <>
                    {ago(j.createTime, now)} <span class="muted small">by {who(j.submittedByUserId)}</span>
                  </>
                ),
              },
            ]}
          />
        </div>
      )}
    </>
  );
}

function JobPage({ networkId, view, jobId }: TabProps & { jobId: string }) {
  const live = view.jobs.get(jobId);
  const result = useAsync(() => loadResult(networkId, jobId), [networkId, jobId, live?.state === JobState.COMPLETED]);
  const [explaining, setExplaining] = useState(false);
  const explain = useAsync(() => (explaining ? api().job.explainJob({ networkId, jobId }).then((r) => r.debugView) : Promise.resolve(undefined)), [explaining, live?.state]);
  const [cancelling, setCancelling] = useState(false);
  const [cancelError, setCancelError] = useState<unknown>();
  const job: Job | undefined = live ?? result.data?.job;
  const local = localJobs.get(jobId);

  if (!job) return result.error ? <ErrorBanner error={result.error} onRetry={result.reload} /> : <Skeleton rows={3} />;
  const running = job.state === JobState.QUEUED || job.state === JobState.PLACED || job.state === JobState.RUNNING;
  const deviceName = (id: string) => (id ? (view.devices.get(id)?.name ?? id) : "—");
  return (
    <div class="stack">
      <nav class="crumbs" aria-label="Workloads">
        <Link href={`/networks/${networkId}/workloads`}>Recent runs</Link>
        <span aria-hidden="true">/</span>
        <span aria-current="page">{job.jobId}</span>
      </nav>
      <div class="section-head">
        <h2>
          {workloadLabel[job.workloadId]} <Badge tone={stateTone(job.state)}>{jobStateLabel[job.state]}</Badge>
        </h2>
        {running && (
          <Button
            variant="danger"
            busy={cancelling}
            onClick={async () => {
              setCancelling(true);
              try {
                await api().job.cancelJob({ networkId, jobId });
              } catch (e) {
                setCancelError(e);
              } finally {
                setCancelling(false);
              }
            }}
          >
            Cancel job
          </Button>
        )}
      </div>
      <ErrorBanner error={cancelError} />
      <div class="stats">
        <div class="stat">
          <div class="stat-label">Node</div>
          <div class="stat-value small-value">{deviceName(job.deviceId)}</div>
          <div class="stat-sub">{tierLabel[job.tier]}</div>
        </div>
        <div class="stat">
          <div class="stat-label">Latency</div>
          <div class="stat-value">{job.latencyMs ? ms(job.latencyMs) : "—"}</div>
          <div class="stat-sub">runtime {ms(job.runtimeMs)}, billed {ms(job.billedRuntimeMs)}</div>
        </div>
        <div class="stat">
          <div class="stat-label">Cost</div>
          <div class="stat-value">{credits(job.costMicro)}</div>
          <div class="stat-sub">{job.maxCostMicro ? `cap ${credits(job.maxCostMicro)}` : "no cap"}</div>
        </div>
        <div class="stat">
          <div class="stat-label">Routing</div>
          <div class="stat-value small-value">{routingLabel[job.routingMode]}</div>
          <div class="stat-sub">{sensitivityLabel[job.dataSensitivityTag]} data · {job.relayBytes ? `${job.relayBytes} relay bytes` : "no relay bytes yet"}</div>
        </div>
      </div>
      {job.errorMessage && <Notice tone="bad">{job.errorMessage}</Notice>}
      <Card title="Result">
        {result.data?.output ? (
          <ResultView output={result.data.output} {...(local?.imageUrl ? { imageUrl: local.imageUrl } : {})} logs={local?.logs ?? []} />
        ) : result.data?.sealedElsewhere ? (
          <p class="muted">The result is end-to-end encrypted to the browser or client that submitted it; only that one can open it.</p>
        ) : running ? (
          <p class="muted">{local?.tokens ? local.tokens : "Waiting for the result…"}</p>
        ) : (
          <p class="muted">No result.</p>
        )}
      </Card>
      <Card title="Logs">
        {local ? <Logs logs={local.logs} /> : <p class="muted small">Logs stream while a job runs; they were shown to the browser that watched it.</p>}
        <p class="muted small">
          Submitted {dateTime(job.createTime)}
          {job.endTime ? `, finished ${dateTime(job.endTime)}` : ""} · trace {job.traceId || "—"}
        </p>
      </Card>
      <Card
        title="Why did it route there?"
        actions={
          !explaining && (
            <Button onClick={() => setExplaining(true)} aria-expanded={explaining}>
              Explain routing
            </Button>
          )
        }
      >
        {!explaining ? (
          <p class="muted">Every device's eligibility with the filter that ruled it out, the top candidates' scores per feature, and each attempt with its cause.</p>
        ) : explain.data ? (
          <ExplainView view={explain.data} devices={view.devices} />
        ) : explain.error ? (
          <ErrorBanner error={explain.error} onRetry={explain.reload} />
        ) : (
          <Skeleton rows={2} />
        )}
      </Card>
    </div>
  );
}

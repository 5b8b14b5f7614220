// Ledger tab (spec ledger_tab): credits minted and burned, per-member and per-device breakdowns (live balances from
// WatchNetwork), a chart over time (uPlot, loaded on demand), the recent events, export as JSONL/CSV and reconcile.
import { ExportFormat, LedgerEventType } from "@meshai/client";
import type { LedgerEvent, ReconcileLedgerResponse } from "@meshai/client";
import { useEffect, useRef, useState } from "preact/hooks";

import { api } from "../../shared/api";
import { credits, date, dateTime, ms, tierShort } from "../../shared/format";
import { Badge, Button, Card, ErrorBanner, Notice, Skeleton, Stat, download, useAsync, DataTable } from "../../shared/ui";
import type { TabProps } from "./network";

const MAX_EVENTS = 5000;
const eventLabel: Record<LedgerEventType, string> = {
  [LedgerEventType.UNSPECIFIED]: "Event",
  [LedgerEventType.CREDITS_MINTED]: "Minted",
  [LedgerEventType.CREDITS_BURNED]: "Burned",
  [LedgerEventType.JOB_STARTED]: "Job started",
  [LedgerEventType.JOB_COMPLETED]: "Job completed",
  [LedgerEventType.JOB_FAILED]: "Job failed",
  [LedgerEventType.CREDITS_GRANTED]: "Granted",
};

async function allEvents(networkId: string): Promise<LedgerEvent[]> {
  const events: LedgerEvent[] = [];
  let pageToken = "";
  do {
    const page = await api().ledger.listLedgerEvents({ networkId, pageSize: 500, pageToken });
    events.push(...page.events);
    pageToken = page.nextPageToken;
  } while (pageToken && events.length < MAX_EVENTS);
  return events;
}

export function LedgerTab({ networkId, view, isAdmin }: TabProps) {
  const b = view.balances;
  const events = useAsync(() => allEvents(networkId), [networkId, b?.mintedTotalMicro, b?.burnedTotalMicro, b?.grantedTotalMicro]);
  const [reconcile, setReconcile] = useState<ReconcileLedgerResponse>();
  const [busy, setBusy] = useState<string>();
  const [error, setError] = useState<unknown>();
  const memberName = (id: string) => view.members.get(id)?.email ?? b?.members.find((m) => m.userId === id)?.email ?? id;
  const deviceName = (id: string) => view.devices.get(id)?.name ?? id;

  const exportAs = async (format: ExportFormat) => {
    setBusy(format === ExportFormat.CSV ? "csv" : "jsonl");
    setError(undefined);
    try {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      for await (const chunk of api().ledger.exportLedger({ networkId, format })) parts.push(new Uint8Array(chunk.data));
      const ext = format === ExportFormat.CSV ? "csv" : "jsonl";
      download(parts, `ledger-${networkId}.${ext}`, format === ExportFormat.CSV ? "text/csv" : "application/x-ndjson");
    } catch (e) {
      setError(e);
    } finally {
      setBusy(undefined);
    }
  };

  const runReconcile = async () => {
    setBusy("reconcile");
    setError(undefined);
    try {
      setReconcile(await api().ledger.reconcileLedger({ networkId }));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(undefined);
    }
  };

  if (!b) return <Skeleton rows={3} />;
  return (
    <div class="stack">
      <div class="stats">
        <Stat label={b.sharedPoolEnabled ? "Shared pool" : "Balances"} value={credits(b.sharedPoolEnabled ? b.poolBalanceMicro : b.members.reduce((s, m) => s + m.balanceMicro, 0n))} sub="credits available" />
        <Stat label="Minted" value={credits(b.mintedTotalMicro)} sub="earned by devices" />
        <Stat label="Burned" value={credits(b.burnedTotalMicro)} sub="spent by jobs" />
        <Stat label="Granted" value={credits(b.grantedTotalMicro)} sub="starting grant and adjustments" />
      </div>
      <Card
        title="Credits over time"
        actions={
          isAdmin && (
            <>
              <Button busy={busy === "jsonl"} onClick={() => exportAs(ExportFormat.JSONL)}>
                Export JSONL
              </Button>
              <Button busy={busy === "csv"} onClick={() => exportAs(ExportFormat.CSV)}>
                Export CSV
              </Button>
              <Button busy={busy === "reconcile"} onClick={runReconcile}>
                Reconcile
              </Button>
            </>
          )
        }
      >
        <ErrorBanner error={error ?? events.error} />
        {reconcile && (
          <Notice tone={reconcile.balanced ? "good" : "bad"}>
            <span data-testid="reconcile-status">
              {reconcile.balanced ? "Balanced" : "Not balanced"}: {reconcile.jobsChecked.toString()} jobs and {reconcile.eventsChecked.toString()} events checked against execution records.
            </span>
            {reconcile.mismatches.length > 0 && (
              <ul>
                {reconcile.mismatches.map((m) => (
                  <li key={m.subject}>
                    {m.subject}: ledger {credits(m.ledgerMicro)} vs recomputed {credits(m.recomputedMicro)} — {m.detail}
                  </li>
                ))}
              </ul>
            )}
          </Notice>
        )}
        {events.data ? <CreditsChart events={events.data} /> : <Skeleton rows={1} />}
      </Card>
      <div class="grid-2 align-start">
        <Card title="Per member">
          <DataTable
            label="Credits per member"
            rows={b.members}
            rowKey={(m) => m.userId}
            columns={[
              { label: "Member", cell: (m) => m.email || memberName(m.userId) },
              { label: "Balance", num: true, cell: (m) => credits(m.balanceMicro) },
              { label: "Minted", num: true, cell: (m) => credits(m.mintedMicro) },
              { label: "Burned", num: true, cell: (m) => credits(m.burnedMicro) },
            ]}
          />
        </Card>
        <Card title="Per device">
          {b.devices.length === 0 ? (
            <p class="muted">No device has earned credits yet.</p>
          ) : (
            <DataTable
              label="Credits per device"
              rows={b.devices}
              rowKey={(d) => d.deviceId}
              columns={[
                { label: "Device", cell: (d) => d.deviceName || deviceName(d.deviceId) },
                { label: "Minted", num: true, cell: (d) => credits(d.mintedMicro) },
                { label: "Runtime", num: true, cell: (d) => ms(d.runtimeMs) },
                { label: "Jobs", num: true, cell: (d) => d.jobs },
              ]}
            />
          )}
        </Card>
      </div>
      <Card title="Recent events">
        {!events.data ? (
          <Skeleton rows={2} />
        ) : (
          <DataTable
            label="Ledger events"
            rows={[...events.data].reverse().slice(0, 50)}
            rowKey={(e) => e.eventId}
            columns={[
              { label: "When", cell: (e) => dateTime(e.createTime) },
              {
                label: "Event",
                cell: (e) => (
                  <>
                    <Badge tone={e.amountMicro > 0n ? "good" : e.amountMicro < 0n ? "warn" : "neutral"}>{eventLabel[e.eventType]}</Badge>
                    {e.tier ? <span class="muted small"> {tierShort(e.tier)}</span> : null}
                  </>
                ),
              },
              { label: "Who", cell: (e) => (e.deviceId ? deviceName(e.deviceId) : e.userId ? memberName(e.userId) : "pool") },
              { label: "Amount", num: true, cell: (e) => (e.amountMicro === 0n ? "—" : credits(e.amountMicro)) },
              { label: "Job", cellClass: "mono small", cell: (e) => `${e.jobId || "—"}${e.chunkId ? `/${e.chunkId}` : ""}` },
            ]}
          />
        )}
      </Card>
    </div>
  );
}

const MIN_CHART_SPAN_S = 600;

/** Cumulative minted and burned credits over time. */
function CreditsChart({ events }: { events: LedgerEvent[] }) {
  const host = useRef<HTMLDivElement>(null);
  const [failed, setFailed] = useState<unknown>();
  const moving = events.filter((e) => e.amountMicro !== 0n && e.eventType !== LedgerEventType.CREDITS_GRANTED);
  useEffect(() => {
    const el = host.current;
    if (!el || moving.length === 0) return;
    let plot: { destroy(): void; setSize(s: { width: number; height: number }): void } | undefined;
    let observer: ResizeObserver | undefined;
    let cancelled = false;
    Promise.all([import("uplot"), import("uplot/dist/uPlot.min.css")]).then(([{ default: UPlot }]) => {
      if (cancelled) return;
      const xs: number[] = [];
      const minted: number[] = [];
      const burned: number[] = [];
      let m = 0;
      let b = 0;
      // Cumulative totals start from zero just before the first movement, so one burst of events still draws a rise.
      const first = (date(moving[0]!.createTime)?.getTime() ?? 0) / 1000;
      xs.push(first - 60);
      minted.push(0);
      burned.push(0);
      for (const e of moving) {
        if (e.amountMicro > 0n) m += Number(e.amountMicro) / 1e6;
        else b += Number(-e.amountMicro) / 1e6;
        const t = (date(e.createTime)?.getTime() ?? 0) / 1000;
        if (xs.length && xs[xs.length - 1] === t) {
          minted[minted.length - 1] = m;
          burned[burned.length - 1] = b;
        } else {
          xs.push(t);
          minted.push(m);
          burned.push(b);
        }
      }
      const styles = getComputedStyle(el);
      const axis = { stroke: styles.color, grid: { stroke: styles.getPropertyValue("--border").trim() || "#e5e7eb" }, ticks: { show: false } };
      plot = new UPlot(
        {
          width: el.clientWidth,
          height: 220,
          // At least a 10-minute window (uPlot pads a near-empty time range to years), the y axis from zero.
          scales: {
            x: { time: true, range: (_u: unknown, min: number, max: number): [number, number] => [Math.min(min, max - MIN_CHART_SPAN_S), max + 30] },
            y: { range: (_u: unknown, _min: number, max: number): [number, number] => [0, max > 0 ? max * 1.1 : 1] },
          },
          axes: [axis, { ...axis, size: 56 }],
          series: [
            {},
            { label: "Minted", stroke: "#10b981", width: 2, fill: "rgba(16,185,129,0.08)" },
            { label: "Burned", stroke: "#6366f1", width: 2, fill: "rgba(99,102,241,0.08)" },
          ],
        },
        [xs, minted, burned],
        el,
      );
      observer = new ResizeObserver(() => plot?.setSize({ width: el.clientWidth, height: 220 }));
      observer.observe(el);
    }, setFailed);
    return () => {
      cancelled = true;
      observer?.disconnect();
      plot?.destroy();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [events]);
  if (failed) return <ErrorBanner error={failed} />;
  if (moving.length === 0) return <p class="muted">Credits start moving when the first job runs: burns for the submitter, mints for the device that did the work.</p>;
  return <div ref={host} class="chart" role="img" aria-label={`Cumulative credits minted and burned over ${moving.length} ledger events`} />;
}

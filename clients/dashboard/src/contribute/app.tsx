// The contributor page a person sees on their phone: what the phone is doing and why, the big on/off switch, today's work
// and credits, battery and network, every rule the phone checks (and which it cannot), the model, and recent activity.
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { ContributionRule } from "@meshai/client";

import { credits } from "../shared/format";
import type { ActivityEvent, Contributor, Phase, Snapshot } from "./engine";

const headlines: Record<Phase, string> = {
  starting: "Starting",
  "needs-link": "Open a join link",
  join: "Contribute this phone",
  joining: "Joining",
  connecting: "Connecting",
  reconnecting: "Reconnecting",
  preparing: "Getting ready",
  contributing: "Contributing",
  working: "Working on a job",
  paused: "Paused",
  off: "Switched off",
  revoked: "Removed from the network",
};

const tones: Record<Phase, "good" | "info" | "warn" | "neutral" | "bad"> = {
  starting: "neutral",
  "needs-link": "neutral",
  join: "info",
  joining: "info",
  connecting: "neutral",
  reconnecting: "warn",
  preparing: "info",
  contributing: "good",
  working: "info",
  paused: "warn",
  off: "neutral",
  revoked: "bad",
};

function useSnapshot(contributor: Contributor): Snapshot {
  const [snapshot, setSnapshot] = useState(contributor.snapshot());
  useEffect(() => contributor.subscribe(() => setSnapshot(contributor.snapshot())), [contributor]);
  return snapshot;
}

export function ContributeApp({ contributor }: { contributor: Contributor }) {
  const s = useSnapshot(contributor);
  return (
    <div class="contrib" data-phase={s.phase} data-device-id={s.device?.id ?? ""}>
      <header class="contrib-top">
        <img src="/favicon.svg" alt="" width="28" height="28" />
        <div class="contrib-top-text">
          <strong>{s.device?.networkName || "MeshAI"}</strong>
          <span class="muted small">{s.device ? `${s.device.name} · this phone contributes as a device` : "Pooled AI compute on your own devices"}</span>
        </div>
      </header>
      <main class="contrib-main">
        {s.phase === "join" || s.phase === "joining" ? (
          <JoinCard snapshot={s} onJoin={(name) => void contributor.join(name)} />
        ) : s.phase === "needs-link" ? (
          <NeedsLink />
        ) : s.phase === "revoked" ? (
          <Revoked reason={s.reason} />
        ) : (
          <Contributing snapshot={s} onSwitch={(on) => contributor.setSwitch(on)} />
        )}
      </main>
    </div>
  );
}

function Contributing({ snapshot: s, onSwitch }: { snapshot: Snapshot; onSwitch: (on: boolean) => void }) {
  const tone = tones[s.phase];
  const onBattery = s.mobile && s.signals.battery && !s.signals.battery.charging;
  return (
    <>
      <section class={`contrib-status contrib-${tone}`} aria-live="polite">
        <div class="contrib-status-row">
          <StatusIcon phase={s.phase} />
          <div>
            <h1 data-testid="state">{headlines[s.phase]}</h1>
            <p class="contrib-reason" data-testid="reason">
              {reasonText(s)}
            </p>
          </div>
        </div>
        {!s.job && s.phase === "preparing" && (
          <div class="contrib-job">
            <progress max={1} value={s.model.progress} aria-label="Preparing the model" />
          </div>
        )}
        {s.job && (
          <div class="contrib-job" data-testid="job" data-job-id={s.job.id}>
            <div class="contrib-job-line">
              <span class="mono">{s.job.id}</span>
              <span>{Math.round(s.job.progress * 100)}%</span>
            </div>
            <progress max={1} value={s.job.progress} aria-label={`Job ${s.job.id}: ${s.job.message}`} />
            <span class="small muted">
              {s.job.workload} · {s.job.message}
            </span>
          </div>
        )}
        <button
          type="button"
          role="switch"
          aria-checked={s.switchedOn}
          class={`contrib-switch ${s.switchedOn ? "is-on" : ""}`}
          onClick={() => onSwitch(!s.switchedOn)}
          disabled={s.phase === "starting"}
        >
          <span class="contrib-switch-track" aria-hidden="true">
            <span class="contrib-switch-thumb" />
          </span>
          <span class="contrib-switch-label">Contribute</span>
          <span class="contrib-switch-state">{s.switchedOn ? "On" : "Off"}</span>
        </button>
        {lastEvent(s) && (
          <p class="small contrib-last" data-testid="last-event">
            {lastEvent(s)}
          </p>
        )}
        {onBattery && s.batteryCapBps < 10_000 && s.decision.allowed && (
          <p class="small contrib-note">On battery this phone earns {s.batteryCapBps / 100}% of the rate (network rule).</p>
        )}
      </section>

      <section class="contrib-stats" aria-label="Today">
        <Tile label="Jobs today" value={String(s.today.jobs)} sub="since 00:00 UTC" testid="jobs-today" />
        <Tile label="Credits today" value={credits(s.today.mintedMicro)} sub="earned by this phone" testid="credits-today" />
        <Tile label="Battery" value={batteryText(s)} sub={s.signals.battery?.charging ? "charging" : s.signals.battery ? "on battery" : ""} testid="battery" />
        <Tile label="Network" value={networkText(s)} sub={s.rttMs ? `${s.rttMs} ms to the server` : ""} testid="network" />
      </section>

      <section class="contrib-card" aria-labelledby="rules-title">
        <h2 id="rules-title">What this phone checks</h2>
        <ul class="contrib-rules">
          {s.decision.rules.map((rule) => (
            <Rule key={rule.id} rule={rule} />
          ))}
        </ul>
        {s.decision.rules.some((r) => r.state === "unknown") && (
          <p class="small muted">A rule this browser cannot check counts as not met: the phone waits rather than guess.</p>
        )}
      </section>

      <section class="contrib-card" aria-labelledby="model-title">
        <h2 id="model-title">Model</h2>
        <ModelLine snapshot={s} />
      </section>

      <section class="contrib-card" aria-labelledby="activity-title">
        <h2 id="activity-title">Recent activity</h2>
        {s.events.length === 0 ? (
          <p class="muted small">Nothing yet. Jobs show up here as they run.</p>
        ) : (
          <ol class="contrib-events" data-testid="events">
            {s.events.slice(0, 8).map((e) => (
              <EventItem key={`${e.at}-${e.text}`} event={e} />
            ))}
          </ol>
        )}
      </section>

      <footer class="contrib-foot small muted">
        <span>
          Device <span class="mono">{s.device?.id}</span> · keys {s.device?.keys} · kept in this browser only
        </span>
      </footer>
    </>
  );
}

function reasonText(s: Snapshot): string {
  switch (s.phase) {
    case "contributing":
      return "Waiting for work from the network.";
    case "working":
      return "Running a job for the network.";
    case "paused":
      return pausedText(s);
    case "off":
      return "This phone takes no jobs until you switch it back on.";
    case "preparing":
      return s.model.detail ? `${s.model.detail}.` : "Preparing the model.";
    case "connecting":
      return "Connecting to the network's relay.";
    case "reconnecting":
      return s.reason;
    default:
      return "";
  }
}

const capitalize = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/** What stops the phone, said as what the person can do about it. */
function pausedText(s: Snapshot): string {
  const rule = s.decision.rules.find((r) => r.state !== "ok");
  if (!rule) return capitalize(s.reason);
  if (rule.state === "unknown") return `${capitalize(rule.detail)}, so the phone waits (the safe choice).`;
  switch (rule.id) {
    case "charging":
      return "Plug the phone in to contribute.";
    case "wifi":
      return rule.detail === "on cellular data" ? "On cellular data: the phone contributes on Wi-Fi only." : `Connect to Wi-Fi to contribute (${rule.detail}).`;
    case "visible":
      return "Keep this page on screen to contribute.";
    case "battery":
      return `Charge the phone first: ${rule.detail}.`;
    case "thermal":
      return `Cooling down: ${rule.detail}.`;
    case "admin":
      return "An admin paused contribution for this phone.";
    default:
      return capitalize(rule.detail) + ".";
  }
}

/** The newest job event (done, declined, refused, handed back, failed), as one line for the status card. */
function lastEvent(s: Snapshot): string {
  const event = s.events.find((e) => e.kind !== "info");
  return event ? `${new Date(event.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })} · ${event.text}` : "";
}

function batteryText(s: Snapshot): string {
  if (!s.apis.battery || !s.signals.battery) return "unknown";
  return `${s.signals.battery.percent}%`;
}

function networkText(s: Snapshot): string {
  switch (s.signals.network) {
    case "wifi":
      return "Wi-Fi";
    case "cellular":
      return "Cellular";
    case "ethernet":
      return "Ethernet";
    case "other":
      return "Other";
    default:
      return "unknown";
  }
}

function Tile({ label, value, sub, testid }: { label: string; value: string; sub?: string; testid: string }) {
  return (
    <div class="contrib-tile" data-testid={testid}>
      <span class="contrib-tile-label">{label}</span>
      <span class="contrib-tile-value">{value}</span>
      {sub ? <span class="contrib-tile-sub">{sub}</span> : <span class="contrib-tile-sub">&nbsp;</span>}
    </div>
  );
}

function Rule({ rule }: { rule: ContributionRule }) {
  const mark = rule.state === "ok" ? "✓" : rule.state === "blocked" ? "✕" : "?";
  return (
    <li class={`contrib-rule rule-${rule.state}`} data-rule={rule.id} data-state={rule.state}>
      <span class="contrib-rule-mark" aria-hidden="true">
        {mark}
      </span>
      <span class="contrib-rule-text">
        <strong>{rule.label}</strong>
        <span class="contrib-rule-detail">{rule.detail}</span>
      </span>
      <span class="visually-hidden">{rule.state === "ok" ? "met" : rule.state === "blocked" ? "not met" : "cannot be checked"}</span>
    </li>
  );
}

function ModelLine({ snapshot: s }: { snapshot: Snapshot }) {
  const m = s.model;
  if (m.state === "ready") {
    return (
      <p class="contrib-model" data-testid="model" data-state="ready">
        <strong>{m.name}</strong> · verified against the network's signed manifest
        <br />
        <span class="small muted">
          SHA-256 <span class="mono">{m.sha256.slice(0, 16)}…</span> · ONNX Runtime Web, {m.threads} thread{m.threads === 1 ? "" : "s"}
        </span>
      </p>
    );
  }
  if (m.state === "downloading" || m.state === "verifying" || m.state === "loading" || m.state === "waiting") {
    return (
      <div class="contrib-model" data-testid="model" data-state={m.state}>
        <p class="small">{m.detail || m.state}</p>
        <progress max={1} value={m.progress} aria-label="Model download" />
      </div>
    );
  }
  if (m.state === "failed") {
    return (
      <p class="contrib-model contrib-model-bad small" data-testid="model" data-state="failed">
        {m.detail}
      </p>
    );
  }
  return (
    <p class="contrib-model small muted" data-testid="model" data-state={m.state}>
      {m.detail || (s.decision.allowed ? "Loads when the phone may contribute." : "Downloads only when the phone may contribute (charging, on Wi-Fi).")}
    </p>
  );
}

const eventMarks: Record<ActivityEvent["kind"], string> = { done: "✓", declined: "–", refused: "⛔", "handed-back": "↩", failed: "!", info: "·" };

function EventItem({ event }: { event: ActivityEvent }) {
  const time = new Date(event.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return (
    <li class={`contrib-event event-${event.kind}`} data-kind={event.kind} data-job-id={event.jobId ?? ""}>
      <span class="contrib-event-mark" aria-hidden="true">
        {eventMarks[event.kind]}
      </span>
      <span class="contrib-event-text">{event.text}</span>
      <time class="small muted">{time}</time>
    </li>
  );
}

function StatusIcon({ phase }: { phase: Phase }) {
  const spinning = phase === "working" || phase === "connecting" || phase === "reconnecting" || phase === "preparing" || phase === "joining";
  return (
    <svg class={`contrib-icon ${spinning ? "is-spinning" : ""}`} viewBox="0 0 48 48" width="52" height="52" aria-hidden="true">
      <circle cx="24" cy="24" r="21" class="contrib-icon-ring" />
      {phase === "contributing" && <path d="M15 24.5 21.5 31 34 18" class="contrib-icon-mark" />}
      {phase === "paused" && <path d="M19 16v16M29 16v16" class="contrib-icon-mark" />}
      {phase === "off" && <path d="M24 13v11M16.5 17.5a11 11 0 1 0 15 0" class="contrib-icon-mark" />}
      {phase === "revoked" && <path d="M17 17 31 31M31 17 17 31" class="contrib-icon-mark" />}
      {spinning && <path d="M24 3a21 21 0 0 1 21 21" class="contrib-icon-arc" />}
    </svg>
  );
}

function JoinCard({ snapshot: s, onJoin }: { snapshot: Snapshot; onJoin: (name: string) => void }) {
  const [name, setName] = useState(defaultName(s));
  const busy = s.phase === "joining";
  return (
    <section class="contrib-card contrib-join">
      <h1 data-testid="state">Contribute this phone</h1>
      <p>This link adds the phone to a MeshAI network as a device. While it is on, the phone:</p>
      <ul class="contrib-list">
        <li>runs small AI jobs (text embeddings) for the network's members, right in this page;</li>
        <li>only works while charging on Wi-Fi, on screen, and not running hot — you can switch it off any time;</li>
        <li>earns credits for the network's owner per minute of validated work.</li>
      </ul>
      <p class="small muted">The device keys are created in this browser and never leave it; the network signs a certificate for them.</p>
      <form
        class="contrib-form"
        onSubmit={(e) => {
          e.preventDefault();
          onJoin(name);
        }}
      >
        <label for="device-name">Name this phone</label>
        <input id="device-name" value={name} maxLength={64} required onInput={(e) => setName(e.currentTarget.value)} autoComplete="off" />
        {s.error && (
          <p class="contrib-error" role="alert">
            {s.error}
          </p>
        )}
        <button type="submit" class="btn btn-primary contrib-join-button" disabled={busy || !name.trim()}>
          {busy ? "Joining…" : "Join and contribute"}
        </button>
      </form>
    </section>
  );
}

function defaultName(s: Snapshot): string {
  const ua = navigator.userAgent;
  const model = /Android [\d.]+; ([^;)]+)/.exec(ua)?.[1]?.trim();
  if (model && model !== "K") return `${model} (browser)`;
  if (/iPhone/.test(ua)) return "iPhone (browser)";
  return s.mobile ? "Phone (browser)" : "Browser";
}

function NeedsLink() {
  return (
    <Centered title="Open a join link">
      <p>This page turns a phone into a device of a MeshAI network. It needs a one-use join link from the network's admin:</p>
      <pre class="code">meshnet device join --web</pre>
      <p class="small muted">…or Devices → Add device in the dashboard. Scan its QR code with this phone.</p>
    </Centered>
  );
}

function Revoked({ reason }: { reason: string }) {
  return (
    <Centered title="Removed from the network" tone="bad">
      <p data-testid="reason">An admin removed this phone ({reason}). It runs no more jobs and its certificate no longer works.</p>
      <p class="small muted">To contribute again, open a new join link; an admin approves the phone again.</p>
    </Centered>
  );
}

function Centered({ title, children, tone }: { title: string; children: ComponentChildren; tone?: string }) {
  return (
    <section class={`contrib-card contrib-centered ${tone ? `contrib-${tone}` : ""}`}>
      <h1 data-testid="state">{title}</h1>
      {children}
    </section>
  );
}

// Holds ONE phone page of the web contributor (/contribute) in headless system Chromium for the NUnit Browser tests
// (tests/MeshAI.EndToEnd.Tests/ContributorBrowserTests.cs), which act on it across several tests: the page stays joined
// and contributing while the tests submit jobs, pull the plug, switch to cellular data, hide the page, revoke the device.
// Phone emulation: 390×844 viewport, touch, a mobile user agent; the browser's battery, connection, pressure and
// visibility signals come from phone-signals.js (an init script the tests drive).
//
//   node contribute.mjs --out DIR [--signals real]   then one JSON command per stdin line, one JSON answer per stdout line:
//   {"id":1,"op":"open","url":"https://…/contribute#token=…"}          → {"id":1,"ok":true}
//   {"id":2,"op":"join","name":"Pixel 8"}                               → {"id":2,"ok":true}
//   {"id":3,"op":"wait","phase":"contributing","timeoutMs":120000}      → {"id":3,"ok":true,"state":{…}}
//   {"id":4,"op":"wait","event":{"kind":"done","jobId":"job_…"}}        → waits for an activity entry
//   {"id":5,"op":"signals","set":{"charging":false}}                    → changes a signal and fires its event
//        (,"afterHeartbeat":true: right after the page's next heartbeat was answered)
//   {"id":6,"op":"state"}                                               → {"state":{phase, reason, deviceId, events, …}}
//   {"id":7,"op":"shot","name":"contributing"}                          → a 390×844 screenshot DIR/contribute-<name>.png
//   {"id":8,"op":"close"}
// Failures answer {"id":N,"ok":false,"error":"…"} (with a screenshot DIR/contribute-failed-<op>.png).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const out = args.out ?? join(process.cwd(), "screenshots");
mkdirSync(out, { recursive: true });

export const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  userAgent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
};

// playwright-core's launch() gives the run a fresh temporary profile (--user-data-dir) and removes it on close.
const browser = await chromium.launch({
  executablePath: process.env.MESHAI_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-quic", "--ignore-certificate-errors"],
});
const context = await browser.newContext({ ...PHONE, ignoreHTTPSErrors: true, reducedMotion: "reduce" });
// --signals real: what headless Chromium on Linux reports by itself (no connection type, no pressure source): the page must
// then say which rules it cannot check and stay out of work.
if (args.signals !== "real") await context.addInitScript({ path: new URL("./phone-signals.js", import.meta.url).pathname });
const page = await context.newPage();
const consoleErrors = [];
page.on("console", (m) => {
  if (m.type() === "error") consoleErrors.push(m.text());
});
page.on("pageerror", (e) => consoleErrors.push(String(e)));

/** What the page shows, read from the DOM (the same text and marks a person sees). */
async function state() {
  return page.evaluate(() => {
    const root = document.querySelector(".contrib");
    const text = (selector) => document.querySelector(selector)?.textContent?.trim() ?? "";
    return {
      phase: root?.getAttribute("data-phase") ?? "",
      deviceId: root?.getAttribute("data-device-id") ?? "",
      headline: text("[data-testid=state]"),
      reason: text("[data-testid=reason]"),
      job: document.querySelector("[data-testid=job]")?.getAttribute("data-job-id") ?? "",
      model: document.querySelector("[data-testid=model]")?.getAttribute("data-state") ?? "",
      jobsToday: text("[data-testid=jobs-today] .contrib-tile-value"),
      creditsToday: text("[data-testid=credits-today] .contrib-tile-value"),
      battery: text("[data-testid=battery]"),
      network: text("[data-testid=network]"),
      switchedOn: document.querySelector("[role=switch]")?.getAttribute("aria-checked") === "true",
      rules: [...document.querySelectorAll("[data-rule]")].map((r) => ({ id: r.getAttribute("data-rule"), state: r.getAttribute("data-state"), text: r.textContent.trim() })),
      events: [...document.querySelectorAll("[data-testid=events] li")].map((e) => ({ kind: e.getAttribute("data-kind"), jobId: e.getAttribute("data-job-id"), text: e.querySelector(".contrib-event-text")?.textContent ?? "" })),
      crossOriginIsolated: globalThis.crossOriginIsolated,
    };
  });
}

async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await state();
    if (predicate(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; page: ${JSON.stringify({ ...s, rules: undefined })}`);
    await page.waitForTimeout(100);
  }
}

const ops = {
  async open({ url }) {
    await page.goto(url);
    await page.waitForSelector("[data-testid=state]");
  },
  async join({ name }) {
    await page.getByLabel("Name this phone").fill(name);
    await page.getByRole("button", { name: "Join and contribute" }).tap();
  },
  async wait({ phase, event, timeoutMs = 60_000 }) {
    const s = await waitFor(
      (s) => (phase === undefined || s.phase === phase) && (event === undefined || s.events.some((e) => e.kind === event.kind && (!event.jobId || e.jobId === event.jobId))),
      timeoutMs,
      JSON.stringify({ phase, event }),
    );
    return { state: s };
  },
  async signals({ set, afterHeartbeat = false }) {
    // afterHeartbeat: change the signal right after the page's next heartbeat was answered, so control keeps the old state
    // for a whole heartbeat interval (an offer then meets the page's own, fresher check).
    if (afterHeartbeat) await page.waitForResponse((r) => r.url().endsWith("/meshai.relay.v1.WebRelayService/SendHeartbeat") && r.ok(), { timeout: 60_000 });
    await page.evaluate((change) => globalThis.__meshaiSignals.set(change), set);
  },
  async toggle() {
    await page.getByRole("switch").tap();
  },
  state: async () => ({ state: await state() }),
  async shot({ name, fullPage = false }) {
    await page.evaluate(() => document.fonts?.ready);
    const path = join(out, `contribute-${name}.png`);
    await page.screenshot({ path, fullPage, animations: "disabled" });
    return { path };
  },
  async close() {
    await browser.close();
    process.exit(0);
  },
};

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let request = {};
  try {
    request = JSON.parse(line);
    const op = ops[request.op];
    if (!op) throw new Error(`unknown op ${request.op}`);
    const answer = (await op(request)) ?? {};
    process.stdout.write(JSON.stringify({ id: request.id, ok: true, ...answer, consoleErrors }) + "\n");
  } catch (error) {
    await page.screenshot({ path: join(out, `contribute-failed-${request.op ?? "unknown"}.png`) }).catch(() => {});
    process.stdout.write(JSON.stringify({ id: request.id, ok: false, error: String(error?.message ?? error), consoleErrors }) + "\n");
  }
}
await browser.close();

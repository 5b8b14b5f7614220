// Drives the MeshAI web dashboard in headless system Chromium (playwright-core; never downloads a browser) for the NUnit
// Browser tests (tests/MeshAI.EndToEnd.Tests/DashboardBrowserTests.cs). One invocation runs one flow:
//
//   node dashboard.mjs --flow NAME --url https://127.0.0.1:PORT [--token SESSION] [--out DIR] [--phone] [--key value …]
//
// Lines on stdout: "EVENT <name> <json>" when the flow needs the test to act (start an agent with a join link, kill it…),
// "SHOT <path>" per screenshot, and last "RESULT <json>". On failure: "FAILED <message>", a screenshot, exit code 1.
// Controls are found by their accessible role and label (getByRole/getByLabel), so an unlabelled control fails a flow.
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

import { flows } from "./dashboard-flows.mjs";

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const key = process.argv[i].replace(/^--/, "");
  const next = process.argv[i + 1];
  if (next === undefined || next.startsWith("--")) args[key] = true;
  else args[key] = next, i++;
}

export const DESKTOP = { viewport: { width: 1280, height: 800 } };
export const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  userAgent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
};

const emit = (kind, value) => console.log(`${kind} ${typeof value === "string" ? value : JSON.stringify(value)}`);
const out = args.out ?? join(process.cwd(), "screenshots");
mkdirSync(out, { recursive: true });

// playwright-core's launch() gives every run a fresh temporary profile (--user-data-dir) and removes it on close.
const browser = await chromium.launch({
  executablePath: process.env.MESHAI_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-quic", "--ignore-certificate-errors"],
});

const consoleErrors = [];
/** A fresh browser context (desktop or phone) with the session token in localStorage when given. */
async function newPage(kind = args.phone ? "phone" : "desktop", token = args.token) {
  const context = await browser.newContext({ ...(kind === "phone" ? PHONE : DESKTOP), ignoreHTTPSErrors: true, acceptDownloads: true, reducedMotion: "reduce" });
  if (token && token !== true) {
    await context.addInitScript((t) => {
      if (!localStorage.getItem("meshai.session")) localStorage.setItem("meshai.session", t);
    }, token);
  }
  const page = await context.newPage();
  page.setDefaultTimeout(Number(args.timeout ?? 30_000));
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
    if (args.verbose) console.error("browser:", m.type(), m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.kind = kind;
  return page;
}

/** Screenshot to <out>/<name>-<desktop|phone>.png (full page). */
async function shot(page, name) {
  // A sticky header would be painted in the middle of a full-page capture taken while scrolled.
  await page.evaluate(async () => (window.scrollTo(0, 0), await document.fonts?.ready));
  const path = join(out, `${name}-${page.kind}.png`);
  await page.screenshot({ path, fullPage: true, animations: "disabled" });
  emit("SHOT", path);
  return path;
}

/** Waits for the test to write a line on stdin (after an EVENT it must act on). */
const stdinLines = (async function* () {
  let buffer = "";
  for await (const chunk of process.stdin) {
    buffer += chunk;
    let at;
    while ((at = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, at).trim();
      buffer = buffer.slice(at + 1);
    }
  }
})();
async function waitForTest(name) {
  const { value, done } = await stdinLines.next();
  if (done) throw new Error(`stdin closed while waiting for the test after ${name}`);
  return value;
}

/** The newest magic-link mail for an address in the server's outbox folder. */
function magicLink(outbox, email) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const mails = readdirSync(outbox).filter((f) => f.endsWith(".eml") && f.includes(email)).sort();
    const last = mails.at(-1);
    if (last) {
      const line = readFileSync(join(outbox, last), "utf8").split(/\r?\n/).find((l) => l.startsWith("Link: "));
      if (line) return line.slice(6).trim();
    }
    if (Date.now() > deadline) throw new Error(`no magic link for ${email} in ${outbox}`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
}

const flow = flows[args.flow];
let page;
try {
  if (!flow) throw new Error(`unknown flow "${args.flow}"; flows: ${Object.keys(flows).join(", ")}`);
  const result = await flow({ args, newPage, shot, emit, waitForTest, magicLink, onPage: (p) => (page = p) });
  emit("RESULT", { ...result, consoleErrors });
} catch (error) {
  emit("FAILED", String(error?.stack ?? error).split("\n").slice(0, 6).join(" | "));
  if (page) await shot(page, `failed-${args.flow}`).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close().catch(() => {});
  process.exit(process.exitCode ?? 0);
}

// The dashboard flows driven by dashboard.mjs. Each takes the driver's helpers and returns what the NUnit test asserts on.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** axe-core (WCAG 2 A/AA + best practices) on the current page; evaluated through the DevTools protocol, so the page's CSP stays on. */
async function axeScan(page) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] }, resultTypes: ["violations"] }),
  );
  return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length, targets: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
}

/** Waits until `predicate` (run in the page) is true. */
const until = (page, predicate, arg, timeout = 60_000) => page.waitForFunction(predicate, arg, { timeout, polling: 200 });

export const flows = {
  /** Sign in with a magic link typed into the sign-in page; the link comes from the server's outbox. */
  async "signin-magic"({ args, newPage, shot, magicLink, onPage }) {
    const page = onPage(await newPage("desktop", undefined));
    await page.goto(args.url + "/");
    await page.getByRole("heading", { name: "Sign in to MeshAI" }).waitFor();
    await shot(page, "signin");
    await page.getByLabel("Email address").fill(args.email);
    await page.getByRole("button", { name: "Email me a sign-in link" }).click();
    await page.getByText(`Check ${args.email}`).waitFor();
    await shot(page, "signin-sent");
    await page.goto(magicLink(args.outbox, args.email));
    await page.getByRole("heading", { name: "Networks", exact: true }).waitFor();
    const token = await page.evaluate(() => localStorage.getItem("meshai.session"));
    return { token, path: new URL(page.url()).pathname };
  },

  /** Create a network from the empty network list, with the spec's fields and defaults shown. */
  async "create-network"({ args, newPage, shot, onPage }) {
    const page = onPage(await newPage());
    await page.goto(args.url + "/");
    await page.getByRole("heading", { name: "Networks", exact: true }).waitFor();
    // The heading renders before the list has loaded: wait for its outcome (the empty state or the list of networks).
    await page.getByText("No networks yet").or(page.getByRole("list", { name: "Your networks" })).first().waitFor();
    const empty = await page.getByText("No networks yet").isVisible();
    if (empty) await shot(page, "networks-empty");
    await page.getByRole("button", { name: empty ? "Create your first network" : "Create network" }).first().click();
    const dialog = page.getByRole("dialog", { name: "Create a network" });
    await dialog.getByLabel("Name").fill(args.name);
    const visibility = await dialog.getByLabel("Visibility").inputValue();
    const billing = await dialog.getByLabel("Billing").inputValue();
    await dialog.getByText("Defaults applied to the new network").click();
    await shot(page, "create-network");
    await dialog.getByRole("button", { name: "Create network" }).click();
    await page.waitForURL(/\/networks\/net_[^/]+\/devices$/);
    const networkId = new URL(page.url()).pathname.split("/")[2];
    await page.getByText("No devices in this network yet").waitFor();
    await shot(page, "devices-empty");
    return { networkId, visibility, billing, empty };
  },

  /** Add device: the join link (and QR) from the dialog; the test starts a real agent with it; the card appears live. */
  async "add-device"({ args, newPage, shot, emit, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/devices`);
    await page.getByRole("button", { name: /^Add (your first )?device$/ }).first().click();
    const dialog = page.getByRole("dialog", { name: "Add a device" });
    const link = await dialog.getByLabel("Join link").inputValue({ timeout: 30_000 });
    await dialog.getByRole("img", { name: "QR code of the join link" }).waitFor();
    await shot(page, "add-device");
    const before = await page.evaluate(() => performance.now());
    emit("EVENT", { name: "join-link", link });
    await dialog.getByText(/joined and is online/).waitFor({ timeout: 120_000 });
    const after = await page.evaluate(() => performance.now());
    const navigations = await page.evaluate(() => performance.getEntriesByType("navigation").length);
    await page.getByRole("button", { name: "Close" }).click();
    const card = page.locator(`li.device-card[data-online="Online"]`).first();
    await card.waitFor();
    await shot(page, "devices");
    return { link, deviceId: await card.getAttribute("data-device-id"), name: await card.locator(".device-name").innerText(), waitedMs: Math.round(after - before), navigations };
  },

  /** Pin a workload, pause and resume contribution on a device card; the card follows live. */
  async "device-actions"({ args, newPage, shot, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/devices`);
    const card = page.locator(`li.device-card[data-device-id="${args.device}"]`);
    await card.getByRole("button", { name: "Pin workloads here" }).click();
    const dialog = page.getByRole("dialog", { name: /^Pin workloads to/ });
    await dialog.getByLabel("Embeddings").check();
    await shot(page, "pin-workloads");
    await dialog.getByRole("button", { name: "Save" }).click();
    await card.getByText("Pinned: Embeddings").waitFor();
    await card.getByRole("button", { name: "Disable contribution" }).click();
    await card.getByText("Manual toggle · paused").or(card.getByText(/· paused$/)).first().waitFor();
    const paused = await card.getByRole("button", { name: "Enable contribution" }).isVisible();
    await card.getByRole("button", { name: "Enable contribution" }).click();
    await card.getByRole("button", { name: "Disable contribution" }).waitFor();
    // Unpin again so the later runs choose freely.
    await card.getByRole("button", { name: "Pin workloads here" }).click();
    await dialog.getByLabel("Embeddings").uncheck();
    await dialog.getByRole("button", { name: "Save" }).click();
    await card.getByText("Pinned: Embeddings").waitFor({ state: "detached" });
    return { paused };
  },

  /** Device-code pairing approved in the dashboard; the device then appears online. */
  async "pair-device"({ args, newPage, shot, emit, waitForTest, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/devices`);
    await page.getByRole("button", { name: "Add device" }).click();
    const dialog = page.getByRole("dialog", { name: "Add a device" });
    await dialog.getByRole("tab", { name: "Device code" }).click();
    emit("EVENT", { name: "need-code" });
    const code = await waitForTest("need-code");
    await dialog.getByLabel("Code shown by the device").fill(code);
    await dialog.getByRole("button", { name: "Approve device" }).click();
    await dialog.getByText("Approved. The device finishes joining").waitFor();
    await shot(page, "pair-device");
    emit("EVENT", { name: "approved" });
    await dialog.getByText(/joined and is online/).waitFor({ timeout: 120_000 });
    await page.getByRole("button", { name: "Close" }).click();
    return { code };
  },

  /** A device whose agent is killed turns offline on the open page; then it is removed. */
  async "device-offline"({ args, newPage, shot, emit, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/devices`);
    const card = page.locator(`li.device-card[data-device-id="${args.device}"]`);
    await card.and(page.locator('[data-online="Online"]')).waitFor();
    emit("EVENT", { name: "kill" });
    await card.and(page.locator('[data-online="Offline"]')).waitFor({ timeout: 90_000 });
    const navigations = await page.evaluate(() => performance.getEntriesByType("navigation").length);
    await shot(page, "device-offline");
    await card.getByRole("button", { name: "Remove" }).click();
    const confirm = page.getByRole("dialog", { name: /^Remove .*\?$/ });
    await confirm.getByRole("button", { name: "Remove device" }).click();
    await card.and(page.locator('[data-online="Removed"]')).waitFor();
    return { navigations };
  },

  /** Invite by share link; the test accepts as another user; the pending request shows up live and is approved. */
  async "invite-member"({ args, newPage, shot, emit, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/members`);
    await page.getByRole("radio", { name: "Email" }).click();
    await page.getByLabel("Email address").fill("not-an-address");
    await page.getByRole("button", { name: "Send invite" }).click();
    const invalid = await page.getByLabel("Email address").evaluate((el) => !el.checkValidity());
    await page.getByRole("radio", { name: "Share link" }).click();
    await page.getByLabel("Role", { exact: true }).selectOption({ label: "Member" });
    await page.getByRole("button", { name: "Create link" }).click();
    const link = await page.getByLabel("Invite link").inputValue();
    await shot(page, "members-invite");
    emit("EVENT", { name: "invite-link", link });
    const pending = page.getByRole("list", { name: "Waiting for approval" }).locator("li").first();
    await pending.waitFor({ timeout: 60_000 });
    await shot(page, "members-pending");
    const email = await pending.locator("strong").innerText();
    await pending.getByRole("button", { name: /^Approve / }).click();
    await page.getByRole("table", { name: "Members" }).getByText(args.invitee).first().waitFor();
    await page.getByRole("list", { name: "Waiting for approval" }).waitFor({ state: "detached" });
    await shot(page, "members");
    return { link, invalidEmailRefused: invalid, pendingShown: email };
  },

  /** Run a workload from the run page, watch it, see its result and the explain view. */
  async "run"({ args, newPage, shot, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/workloads/run`);
    await page.getByRole("radio", { name: args.workload }).click();
    if (args.texts) await page.getByLabel("Texts, one per line").fill(args.texts.replace(/\|/g, "\n"));
    if (args.data) await page.getByLabel("Data", { exact: true }).fill(args.data);
    if (args.message) {
      await page.getByLabel("Message").fill(args.message);
      await page.getByLabel("Max tokens").fill(String(args.maxTokens ?? 16));
    }
    if (args.ocrText) {
      // The image is rendered by Chromium itself (canvas → PNG), so the overlay shows a real, browser-readable image.
      const dataUrl = await page.evaluate((text) => {
        const c = document.createElement("canvas");
        c.width = 900;
        c.height = 140;
        const g = c.getContext("2d");
        g.fillStyle = "#fff";
        g.fillRect(0, 0, c.width, c.height);
        g.fillStyle = "#000";
        g.font = "34px 'DejaVu Sans', sans-serif";
        g.fillText(text, 30, 85);
        return c.toDataURL("image/png");
      }, args.ocrText);
      await page.getByLabel("Image").setInputFiles({ name: "sentence.png", mimeType: "image/png", buffer: Buffer.from(dataUrl.split(",")[1], "base64") });
    }
    if (args.wav) await page.getByLabel("Audio (WAV)").setInputFiles(args.wav);
    if (args.cap) await page.getByLabel("Cost cap (credits)").fill(args.cap);
    const estimate = page.getByTestId("estimate-cost");
    await estimate.waitFor();
    const estimateText = await estimate.innerText();
    await shot(page, `run-${args.shot}-form`);
    await page.getByRole("button", { name: args.message ? "Send" : "Run", exact: true }).click();
    if (args.expectError) {
      const alert = page.locator(".run-panel [role=alert]");
      await alert.waitFor();
      await shot(page, `run-${args.shot}-error`);
      return { estimate: estimateText, error: await alert.innerText(), reason: await alert.getAttribute("data-reason") };
    }
    const panel = page.getByTestId("run-panel");
    await panel.and(page.locator('[data-state="COMPLETED"], [data-state="FAILED"], [data-state="CANCELLED"]')).waitFor({ timeout: 170_000 });
    if ((await panel.getAttribute("data-state")) !== "COMPLETED") {
      await shot(page, `run-${args.shot}-failed`);
      return { state: await panel.getAttribute("data-state"), error: await panel.innerText() };
    }
    // Token frames the page opened before the result frame (the run loop stops reading at the result).
    const sawTokens = Number(await panel.getAttribute("data-tokens"));
    const result = page.locator(`[data-testid^="result-"]`).first();
    await result.waitFor({ timeout: 30_000 });
    const resultKind = await result.getAttribute("data-testid");
    const resultText = await result.innerText();
    const jobId = (await panel.locator("xpath=ancestor::section").getByRole("link").first().innerText()).trim();
    const similarities = await page.locator("td.heat").evaluateAll((cells) => cells.map((c) => Number(c.getAttribute("data-similarity"))));
    const boxes = await page.locator("rect.ocr-box").count();
    const conversation = args.message ? await page.getByRole("list", { name: "Conversation" }).locator("li").allInnerTexts() : [];
    await shot(page, `run-${args.shot}-result`);
    await page.getByRole("button", { name: "Why did it route there?" }).click();
    const explain = page.getByTestId("explain");
    await explain.waitFor();
    const selected = await explain.locator(".alert").innerText();
    await explain.scrollIntoViewIfNeeded();
    await shot(page, `run-${args.shot}-explain`);
    return { state: "COMPLETED", jobId, estimate: estimateText, resultKind, resultText, similarities, boxes, sawTokens, conversation, selected };
  },

  /** The recent runs list and one job's page (result opened with this browser's key, explain view). */
  async "job-page"({ args, newPage, shot, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/workloads`);
    const rows = page.getByRole("table", { name: "Recent runs" }).locator("tbody tr");
    await rows.first().waitFor();
    const count = await rows.count();
    await shot(page, "workloads");
    await page.goto(`${args.url}/networks/${args.network}/workloads/${args.job}`);
    await page.getByRole("heading", { name: "Result" }).waitFor();
    const sealed = await page
      .getByText("end-to-end encrypted to the browser or client that submitted it")
      .waitFor({ timeout: 20_000 })
      .then(() => true, () => false);
    await page.getByRole("button", { name: "Explain routing" }).click();
    await page.getByTestId("explain").waitFor();
    await shot(page, "job");
    return { rows: count, sealedElsewhere: sealed };
  },

  /** Export the ledger as CSV and JSONL (the downloaded files are returned) and reconcile it. */
  async "ledger"({ args, newPage, shot, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/ledger`);
    await page.locator(".chart canvas, .chart .u-wrap").first().waitFor({ timeout: 30_000 });
    await shot(page, "ledger");
    const files = {};
    for (const format of ["CSV", "JSONL"]) {
      const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: `Export ${format}` }).click()]);
      const stream = await download.createReadStream();
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      files[format.toLowerCase()] = { name: download.suggestedFilename(), text: Buffer.concat(chunks).toString("utf8") };
    }
    await page.getByRole("button", { name: "Reconcile" }).click();
    const status = await page.getByTestId("reconcile-status").innerText();
    return { files, reconcile: status };
  },

  /** Rotate the network keys from Settings; the key ids shown change. */
  async "rotate-keys"({ args, newPage, shot, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/settings`);
    const before = await page.getByTestId("control-key-id").innerText();
    await page.getByRole("button", { name: "Rotate keys now" }).click();
    const confirm = page.getByRole("dialog", { name: "Rotate this network's keys?" });
    await shot(page, "rotate-keys");
    await confirm.getByRole("button", { name: "Rotate keys" }).click();
    await page.getByText(/^New keys /).waitFor();
    await until(page, (old) => document.querySelector('[data-testid="control-key-id"]')?.textContent !== old, before, 30_000);
    const after = await page.getByTestId("control-key-id").innerText();
    return { before, after, ca: await page.getByTestId("ca-key-id").innerText() };
  },

  /** Edit the policy so that a stored test fails: the save is refused with the failing test named; the tests run shows it. */
  async "policy-refused"({ args, newPage, shot, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/settings`);
    const editor = page.getByLabel("Policy (JSON)");
    await until(page, () => (document.querySelector("textarea.policy-editor")?.value ?? "").includes("rules"), undefined, 30_000);
    const policy = JSON.parse(await editor.inputValue());
    // Allow everything first: a stored default test expects some request to be denied.
    policy.rules = [{ name: "allow-everything", effect: "POLICY_EFFECT_ALLOW" }, ...(policy.rules ?? [])];
    await editor.fill(JSON.stringify(policy, null, 2));
    await page.getByRole("button", { name: "Run stored tests" }).click();
    const table = page.getByRole("table", { name: "Policy test results" });
    await table.waitFor();
    await until(page, () => !document.querySelector('[data-passed="pending"]'), undefined, 30_000);
    const failing = await table.locator('tr[data-passed="false"]').count();
    await page.getByRole("button", { name: "Save policy" }).click();
    const alert = page.getByTestId("policy-save").getByRole("alert");
    await alert.waitFor();
    await alert.scrollIntoViewIfNeeded();
    await shot(page, "policy-refused");
    return { failing, refusal: await alert.innerText(), reason: await alert.getAttribute("data-reason") };
  },

  /** Approve a terminal's device-code sign-in by its code. */
  async "approve-cli"({ args, newPage, shot, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/approve?code=${encodeURIComponent(args.code)}`);
    await page.getByRole("button", { name: "Approve sign-in" }).click();
    await page.getByText(/^Approved /).waitFor();
    await shot(page, "account");
    return {};
  },

  /** Open a sign-in link (e.g. from `meshnet auth dashboard`) in a fresh browser: signed in, on the page it names. */
  async "open-link"({ args, newPage, onPage }) {
    const page = onPage(await newPage("desktop", undefined));
    await page.goto(args.link);
    await until(page, () => (!location.pathname.startsWith("/signin") && !location.pathname.startsWith("/auth") && document.querySelector("main h1")?.textContent) || document.querySelector("[role=alert]"), undefined, 30_000);
    const alert = page.getByRole("alert");
    return {
      path: new URL(page.url()).pathname,
      token: await page.evaluate(() => localStorage.getItem("meshai.session")),
      error: (await alert.count()) ? await alert.first().innerText() : "",
    };
  },

  /** Passkeys in the dashboard with a CDP virtual authenticator: add one on the account page, then sign in with it. */
  async "passkey"({ args, newPage, shot, onPage }) {
    const page = onPage(await newPage());
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    await page.goto(`${args.url}/account`);
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await page.getByTestId("passkey-added").waitFor();
    await page.getByRole("button", { name: /^Account menu/ }).click();
    await page.getByRole("menuitem", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to MeshAI" }).waitFor();
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    await page.getByRole("heading", { name: "Networks", exact: true }).waitFor();
    return { token: await page.evaluate(() => localStorage.getItem("meshai.session")) };
  },

  /** The page stays open while the server restarts: it shows "Reconnecting…", then live data again without a reload. */
  async "reconnect"({ args, newPage, shot, emit, waitForTest, onPage }) {
    const page = onPage(await newPage());
    await page.goto(`${args.url}/networks/${args.network}/devices`);
    const live = page.locator('.live[data-status="live"]');
    await live.waitFor();
    emit("EVENT", { name: "restart" });
    await page.locator('.live[data-status="reconnecting"]').waitFor({ timeout: 60_000 });
    await shot(page, "reconnecting");
    await waitForTest("restart");
    await live.waitFor({ timeout: 90_000 });
    await page.locator('li.device-card[data-online="Online"]').first().waitFor({ timeout: 90_000 });
    const navigations = await page.evaluate(() => performance.getEntriesByType("navigation").length);
    return { navigations };
  },

  /** Every screen at 1280×800 and 390×844 (phone: touch, mobile UA): screenshot, axe-core scan, no sideways scrolling at 360 px. */
  async "screens"({ args, newPage, shot }) {
    const n = `/networks/${args.network}`;
    const screens = [
      ["signin", "/signin", (p) => p.getByRole("heading", { name: "Sign in to MeshAI" }), false],
      ["networks", "/", (p) => p.locator(".network-card").first(), true],
      ["devices", `${n}/devices`, (p) => p.locator(".device-card").first(), true],
      ["add-device", `${n}/devices`, async (p) => (await p.getByRole("button", { name: "Add device" }).click(), p.getByRole("img", { name: "QR code of the join link" })), true],
      ["members", `${n}/members`, (p) => p.getByRole("table", { name: "Members" }), true],
      ["workloads", `${n}/workloads`, (p) => p.getByRole("table", { name: "Recent runs" }), true],
      ["run", `${n}/workloads/run`, (p) => p.getByTestId("estimate-cost"), true],
      ["job", `${n}/workloads/${args.job}`, (p) => p.getByRole("heading", { name: "Result" }), true],
      ["ledger", `${n}/ledger`, (p) => p.locator(".chart canvas").first(), true],
      ["settings", `${n}/settings`, (p) => p.getByRole("table", { name: "Policy rules" }), true],
      ["account", "/account", (p) => p.getByRole("list", { name: "Sessions" }), true],
    ];
    const report = [];
    for (const kind of ["desktop", "phone"]) {
      for (const [name, path, ready, signedIn] of screens) {
        const page = await newPage(kind, signedIn ? args.token : undefined);
        await page.goto(args.url + path);
        await (await ready(page)).waitFor({ timeout: 30_000 });
        await page.waitForTimeout(300);
        const file = await shot(page, `screen-${name}`);
        const violations = await axeScan(page);
        let overflow = 0;
        if (kind === "phone") {
          await page.setViewportSize({ width: 360, height: 780 });
          await page.waitForTimeout(150);
          // Mobile emulation widens the layout viewport to fit overflowing content, so compare with the screen's 360 px.
          overflow = await page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - 360);
        }
        report.push({ screen: name, kind, file, violations, overflow });
        await page.context().close();
      }
    }
    return { report };
  },
};

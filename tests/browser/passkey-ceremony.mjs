// Drives the server's /auth/passkey page in headless system Chromium with a CDP virtual authenticator (WebAuthn domain):
// registers a passkey for the session, then signs in with it by email and discoverably (no email).
// Usage: node passkey-ceremony.mjs --url https://localhost:PORT/auth/passkey --token SESSION --email ADDRESS
// Prints one line "PASSKEY_RESULT {json}" on success; exits 1 with the error otherwise. Never downloads a browser.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, value, i, all) => (i % 2 === 0 ? [...pairs, [value.replace(/^--/, ""), all[i + 1]]] : pairs), []));
const executablePath = process.env.MESHAI_CHROMIUM ?? "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "meshai-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    ignoreHTTPSErrors: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--ignore-certificate-errors"],
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.on("console", m => console.error("browser console:", m.text()));
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  await page.goto(args.url, { waitUntil: "load" });

  const registered = await page.evaluate(([token]) => window.meshaiPasskey.register(token, "virtual authenticator"), [args.token]);
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  const byEmail = await page.evaluate(([email]) => window.meshaiPasskey.login(email), [args.email]);
  const discoverable = await page.evaluate(() => window.meshaiPasskey.login(""));
  const { credentials: after } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  console.log("PASSKEY_RESULT " + JSON.stringify({
    origin: new URL(page.url()).origin,
    registered,
    authenticatorCredentials: credentials.length,
    residentKey: credentials.some(c => c.isResidentCredential),
    signCount: after[0]?.signCount ?? -1,
    byEmail,
    discoverable,
  }));
} catch (error) {
  console.error("PASSKEY_FAILED " + (error?.stack ?? error));
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

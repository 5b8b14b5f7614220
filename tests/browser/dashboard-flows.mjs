// The dashboard flows driven by dashboard.mjs. Each takes the driver's helpers and returns what the NUnit test asserts on.

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
};

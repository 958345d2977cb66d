// A console tab left idle: vmd (console_idle_secs = 3 in this test's config) detaches the
// serial client; the page shows "detached" and waits for Reconnect instead of attaching
// again on its own (which would hold the VM's one serial console for good), while the VNC
// tab, which vmd does not detach, stays connected. Reconnect attaches again.
//
// Run by vmd-web/tests/ui.rs; prints one "ok:" line per step, exits 1 naming the failed step.

import * as ui from "./lib.mjs";

const SECOND = 1000;
const VM = process.env.UI_VM || ui.fail("environment variable UI_VM is not set");

ui.journey(async (browser) => {
  const context = await browser.newContext();
  const page = await ui.watchedPage(context, "dashboard");
  await ui.step(`log in as ${ui.env.user}`, () => ui.login(page, ui.env.user, ui.env.password));
  const con = await ui.watchedPage(context, "console");
  await ui.step("the console tab connects both consoles", async () => {
    await con.goto(`${ui.env.url}console?vm=${VM}`);
    await con.locator('#vnc-status[data-state="connected"]').waitFor({ timeout: 60 * SECOND });
    await con.click("#tab-serial");
    await con.locator('#serial-status[data-state="connected"][data-connects="1"]').waitFor({ timeout: 60 * SECOND });
  });
  await ui.step("left idle, the serial console is detached and waits for Reconnect", async () => {
    await con.locator('#serial-status[data-state="detached"]').waitFor({ timeout: 60 * SECOND });
    await con.locator("#serial-reconnect").waitFor({ state: "visible" });
    await con.locator('#vnc-status[data-state="connected"][data-connects="1"]').waitFor({ state: "attached" });
  });
  await ui.step("Reconnect attaches the serial console again", async () => {
    await con.click("#serial-reconnect");
    await con.locator('#serial-status[data-state="connected"][data-connects="2"]').waitFor({ timeout: 30 * SECOND });
  });
});

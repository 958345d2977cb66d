// Taking the serial console over: a second console tab on the same VM is refused while the
// first holds the serial console and offers Take over; taking over connects it, and the
// first tab reads vmd's "console taken over" line and waits for Reconnect ("detached")
// instead of taking the console back on its own. The new holder runs a command.
//
// Run by vmd-web/tests/ui.rs; prints one "ok:" line per step, exits 1 naming the failed step.

import * as ui from "./lib.mjs";

const SECOND = 1000;
const VM = process.env.UI_VM || ui.fail("environment variable UI_VM is not set");

/** Opens the console page of VM in a new tab and shows its serial tab. */
async function openSerial(context, label) {
  const con = await ui.watchedPage(context, label);
  await con.goto(`${ui.env.url}console?vm=${VM}`);
  await con.click("#tab-serial");
  return con;
}

async function main() {
  const browser = await ui.launch();
  try {
    const context = await browser.newContext();
    const page = await ui.watchedPage(context, "dashboard");
    await ui.step(`log in as ${ui.env.user}`, () => ui.login(page, ui.env.user, ui.env.password));
    const first = await openSerial(context, "first console");
    await ui.step("the first tab holds the serial console", async () => {
      await first.locator('#serial-status[data-state="connected"]').waitFor({ timeout: 60 * SECOND });
      await first.locator("#serial-takeover").waitFor({ state: "hidden" });
    });
    const second = await openSerial(context, "second console");
    await ui.step("the second tab is refused and offers Take over", async () => {
      await second.locator('#serial-status[data-state="waiting"]').waitFor({ timeout: 30 * SECOND });
      await second.locator("#serial-takeover").waitFor({ state: "visible", timeout: 30 * SECOND });
    });
    await ui.step("Take over connects the second tab", async () => {
      await second.click("#serial-takeover");
      await second.locator('#serial-status[data-state="connected"]').waitFor({ timeout: 30 * SECOND });
      await second.locator("#serial-takeover").waitFor({ state: "hidden" });
    });
    await ui.step("the first tab is told and waits for Reconnect", async () => {
      await ui.waitTerminalText(first, "#serial-term", `console taken over by ${ui.env.user}`, 30 * SECOND);
      await first.locator('#serial-status[data-state="detached"]').waitFor({ timeout: 30 * SECOND });
      await first.locator("#serial-reconnect").waitFor({ state: "visible" });
    });
    await ui.step("the new holder runs a command", async () => {
      await second.click("#serial-term");
      await second.keyboard.type('echo "taken""-$((6*7))"\n');
      await ui.waitTerminalText(second, "#serial-term", "taken-42", 60 * SECOND);
      await second.locator('#serial-status[data-state="connected"][data-connects="1"]').waitFor({ state: "attached" });
    });
    ui.assertNoPageProblems();
  } finally {
    await browser.close();
  }
}

main().then(
  () => console.log("journey passed"),
  (err) => ui.fail(err.message),
);

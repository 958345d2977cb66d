// Journey: a wrong password is refused; a user logs in, sees the OS in the sidebar, creates
// a VM with a lifetime (the card appears at once; a taken name shows vmd's refusal), extends
// its lifetime, sees labels set through the API on the card, starts it from a second tab with a right-click (the first tab's card turns
// green through the event stream alone), opens the console in a new tab (noVNC connects;
// the serial tab shows the guest's ready marker and runs a typed command), reads its logs;
// a second VM's console opens beside the first and both stay connected; the second VM's
// QEMU is killed (its card turns red with the reason) and its disk wiped; a second user
// sees none of it; the VMs are deleted after a confirmation.
//
// Run by vmd-web/tests/ui.rs; prints one "ok:" line per step, exits 1 naming the failed step.

import * as ui from "./lib.mjs";

const VM = "web1";
const VM2 = "web2";
const SECOND = 1000;
const BOOT = 180 * SECOND;

async function createVm(page) {
  await ui.step("the OS is in the sidebar with its family's icon", async () => {
    const entry = page.locator(`.os[data-image="${ui.env.image}"]`);
    const os = await entry.getAttribute("data-os");
    await entry.locator(`svg.os-badge[data-os="${os}"]`).waitFor();
    await entry.click();
    await page.locator("#create").waitFor({ state: "visible" });
  });
  await ui.step("the name is checked as you type", async () => {
    await page.fill("#vm-name", "Bad_Name");
    await page.locator('#vm-name[aria-invalid="true"]').waitFor();
    const help = await page.textContent("#vm-name-help");
    if (!help.includes("lowercase")) throw new Error(`no rule shown: ${help}`);
    await page.fill("#vm-name", VM);
    await page.locator('#vm-name[aria-invalid="false"]').waitFor();
  });
  await ui.step("creating shows the card without a reload", async () => {
    await page.evaluate(() => { window.notReloaded = true; });
    await page.fill("#vm-memory", "128");
    await page.selectOption("#vm-ttl", "3600");
    await page.click("#create-submit");
    await ui.waitState(page, VM, "stopped", 30 * SECOND);
    await ui.card(page, VM).locator("dd[data-until]").waitFor();
  });
  await ui.step("vmd's refusal of a taken name is shown", async () => {
    await page.locator(`.os[data-image="${ui.env.image}"]`).click();
    await page.fill("#vm-name", VM);
    await page.click("#create-submit");
    await page.locator("#create-error", { hasText: "exists" }).waitFor();
    await page.click("#create-cancel");
  });
}

async function extendLifetime(page) {
  await ui.step("⋮ → Extend lifetime moves the deadline", async () => {
    const dd = ui.card(page, VM).locator("dd[data-until]");
    const before = Date.parse(await dd.getAttribute("data-until"));
    await ui.menuAction(page, VM, "extend");
    await page.fill("#extend-hours", "2");
    await page.click('#extend-dialog button[value="ok"]');
    await page.waitForFunction(
      ([vm, old]) => {
        const el = document.querySelector(`.card[data-vm="${vm}"] dd[data-until]`);
        return el && Date.parse(el.dataset.until) - old >= 7200 * 1000;
      },
      [VM, before],
    );
  });
}

async function labelsShow(page) {
  await ui.step("labels set through the API show on the card live", async () => {
    const status = await page.evaluate(async (vm) => {
      const headers = {
        "Content-Type": "application/json",
        "X-CSRF-Token": localStorage.getItem("vmd-csrf") || "",
      };
      const body = JSON.stringify({ labels: { course: "net101", team: "red" } });
      return (await fetch(`/api/v1/vms/${vm}`, { method: "PATCH", headers, body })).status;
    }, VM);
    if (status !== 200) throw new Error(`PATCH answered ${status}`);
    await ui.card(page, VM).locator("dd", { hasText: "course=net101 · team=red" }).waitFor();
  });
}

async function readLogs(page, con) {
  await ui.step("⋮ → Logs shows the guest's output", async () => {
    await ui.menuAction(page, VM, "logs");
    await page.locator("#logs-text", { hasText: `GUEST-READY ${VM}` }).waitFor();
  });
  await ui.step("the open Logs dialog follows new output live", async () => {
    await con.bringToFront();
    await con.click("#serial-term");
    await con.keyboard.type('echo "log""-follow"\n');
    await page.locator("#logs-text", { hasText: "log-follow" }).waitFor({ timeout: 30 * SECOND });
    await page.bringToFront();
    await page.click('#logs-dialog button[value="close"]');
    await page.locator("#logs-dialog[open]").waitFor({ state: "detached" });
  });
}

async function startFromOtherTab(context, page) {
  const other = await ui.watchedPage(context, "second-tab");
  await ui.step("a second tab shows the same dashboard", async () => {
    await other.goto(ui.env.url);
    await ui.card(other, VM).waitFor();
  });
  await ui.step("right-click → Start in the second tab", async () => {
    await ui.card(other, VM).click({ button: "right" });
    await other.locator('#vm-menu [data-action="start"]').click();
  });
  await ui.step("the first tab's card turns green from the event stream", async () => {
    await ui.waitState(page, VM, "running", 60 * SECOND);
    if (!(await page.evaluate(() => window.notReloaded))) throw new Error("the page was reloaded");
  });
  await other.close();
}

/** Opens the console of `vm` from its ⋮ menu; returns the console tab once both consoles
 * work (VNC connected with a canvas, the serial console showing the ready marker). */
async function openConsole(context, page, vm) {
  const opened = context.waitForEvent("page");
  await ui.step(`⋮ → Open console of ${vm} opens a new tab`, async () => {
    await ui.menuAction(page, vm, "console");
  });
  const con = await opened;
  ui.watch(con, `console-${vm}`);
  await ui.step(`noVNC connects to ${vm} and draws the screen`, async () => {
    await con.locator('#vnc-status[data-state="connected"]').waitFor({ timeout: 60 * SECOND });
    // noVNC sizes its canvas to the guest's framebuffer once the RFB handshake is done.
    await con.waitForFunction(() => document.querySelector("#vnc-screen canvas")?.width >= 320);
    await con.locator("#vnc-cad:not([disabled])").waitFor();
    await ui.screenshots(`vnc-${vm}`);
  });
  await ui.step(`the serial tab shows ${vm}'s ready marker`, async () => {
    await con.click("#tab-serial");
    await con.locator('#serial-status[data-state="connected"]').waitFor({ timeout: 60 * SECOND });
    await ui.waitTerminalText(con, "#serial-term", `GUEST-READY ${vm}`, BOOT);
  });
  return con;
}

async function typeInTerminal(con) {
  await ui.step("keys typed in the terminal reach the guest", async () => {
    await con.click("#serial-term");
    await con.keyboard.type('echo "ui""-$((6*7))"\n');
    await ui.waitTerminalText(con, "#serial-term", "ui-42", 60 * SECOND);
  });
}

/** With two VMs of `max_vms` 2: the meter is full and a third VM is refused by vmd. */
async function quotaIsFull(page) {
  await page.waitForFunction(() => {
    const meter = document.getElementById("meter-vms");
    return meter?.tagName === "METER" && meter.value === 2 && meter.max === 2;
  });
  await page.locator(`.os[data-image="${ui.env.image}"]`).click();
  await page.fill("#vm-name", "web3");
  await page.fill("#vm-memory", "128");
  await page.click("#create-submit");
  await page.locator("#create-error", { hasText: "quota exceeded" }).waitFor();
  await page.click("#create-cancel");
  if ((await ui.card(page, "web3").count()) !== 0) throw new Error("a card for the refused VM");
}

/** A second VM made and started from the dashboard, its console opened beside the first. */
async function secondConsole(context, page, first) {
  await ui.step(`create ${VM2} (the VM quota is then full: a third is refused) and start it`, async () => {
    await page.bringToFront();
    await page.locator(`.os[data-image="${ui.env.image}"]`).click();
    await page.fill("#vm-name", VM2);
    await page.fill("#vm-memory", "128");
    await page.click("#create-submit");
    await ui.waitState(page, VM2, "stopped", 30 * SECOND);
    await quotaIsFull(page);
    await ui.menuAction(page, VM2, "start");
    await ui.waitState(page, VM2, "running", 60 * SECOND);
  });
  const second = await openConsole(context, page, VM2);
  await ui.step("both console tabs stay connected at once", async () => {
    for (const con of [first, second]) {
      await con.locator('#vnc-status[data-state="connected"]').waitFor({ state: "attached", timeout: 5 * SECOND });
      await con.locator('#serial-status[data-state="connected"]').waitFor({ state: "attached", timeout: 5 * SECOND });
    }
  });
  await ui.screenshots("consoles");
  await second.close();
  await first.close();
}

/** QEMU of `vm` killed behind vmd's back: the card turns red with the reason, live; then
 * Wipe disk (confirmed) works on the crashed VM and vmd's note shows in its logs. */
async function crashAndWipe(page, vm) {
  await ui.step(`${vm}'s QEMU killed: its card turns red with the reason`, async () => {
    await page.bringToFront();
    const pid = await page.evaluate(async (name) => (await (await fetch(`/api/v1/vms/${name}`)).json()).pid, vm);
    if (!pid) throw new Error(`no pid for ${vm}`);
    process.kill(pid, "SIGKILL");
    await ui.waitState(page, vm, "crashed", 60 * SECOND);
    const title = await ui.card(page, vm).getAttribute("title");
    if (!title.includes("SIGKILL")) throw new Error(`no reason on hover: ${title}`);
    const border = await ui.card(page, vm).evaluate((el) => getComputedStyle(el).borderLeftColor);
    if (border !== "rgb(198, 40, 40)") throw new Error(`a crashed card's border is ${border}`);
  });
  await ui.step(`⋮ → Wipe disk of crashed ${vm}, confirmed, shows in its logs`, async () => {
    await ui.menuAction(page, vm, "wipe");
    await page.click("#confirm-ok");
    await page.locator("#toast", { hasText: `${vm}: disk wiped` }).waitFor();
    await ui.menuAction(page, vm, "logs");
    await page.locator("#logs-text", { hasText: "disk wiped" }).waitFor();
    await page.click('#logs-dialog button[value="close"]');
  });
}

async function otherUserSeesNothing(browser) {
  const context = await browser.newContext();
  const page = await ui.watchedPage(context, "other-user");
  await ui.step("a second user sees the OS but not the first user's VM", async () => {
    await ui.login(page, ui.env.otherUser, ui.env.otherPassword);
    await page.locator(`.os[data-image="${ui.env.image}"]`).waitFor();
    await page.locator("#vms-empty").waitFor({ state: "visible" });
    const cards = await page.locator(".card").count();
    if (cards !== 0) throw new Error(`${cards} card(s) shown to the other user`);
  });
  await context.close();
}

async function stopAndDelete(page) {
  await ui.step("⋮ → Pause, then Resume", async () => {
    await ui.menuAction(page, VM, "pause");
    await ui.waitState(page, VM, "paused", 30 * SECOND);
    await ui.menuAction(page, VM, "resume");
    await ui.waitState(page, VM, "running", 30 * SECOND);
  });
  await ui.step("⋮ → Force stop turns the card grey", async () => {
    await ui.menuAction(page, VM, "force-stop");
    await ui.waitState(page, VM, "stopped", 60 * SECOND);
  });
  await ui.step("Delete asks first; Cancel keeps the VM", async () => {
    await ui.menuAction(page, VM, "delete");
    await page.locator("#confirm-dialog[open]").waitFor();
    await page.click('#confirm-dialog button[value="cancel"]');
    await ui.card(page, VM).waitFor();
  });
  await ui.step("Delete → Confirm removes the cards", async () => {
    for (const vm of [VM, VM2]) {
      await ui.menuAction(page, vm, "delete");
      await page.click("#confirm-ok");
      await ui.card(page, vm).waitFor({ state: "detached", timeout: 30 * SECOND });
    }
    await page.locator("#vms-empty").waitFor({ state: "visible" });
  });
}

ui.journey(async (browser) => {
  const context = await browser.newContext();
  const page = await ui.watchedPage(context, "dashboard");
  await ui.step("a wrong password is refused on the page", async () => {
    await ui.login(page, ui.env.user, "not the password", { expectFailure: true });
    await page.locator("#login-error", { hasText: /./ }).waitFor();
  });
  await ui.step(`log in as ${ui.env.user}`, () => ui.login(page, ui.env.user, ui.env.password));
  await createVm(page);
  await extendLifetime(page);
  await labelsShow(page);
  await startFromOtherTab(context, page);
  const con = await openConsole(context, page, VM);
  await typeInTerminal(con);
  await readLogs(page, con);
  await secondConsole(context, page, con);
  await crashAndWipe(page, VM2);
  await otherUserSeesNothing(browser);
  await stopAndDelete(page);
  await ui.screenshots("done");
});

// The lab's whole story, both roles at once in two browser contexts. The admin logs in,
// drops the test guest's installer ISO on the ISO panel, creates a base from it, installs it
// through the install VM's console in the browser (`install-to-disk` on the serial tab),
// stops it and seals it, adds a student with a password and a one-VM quota. The student logs
// in in a second context, creates a VM from the OS sidebar, starts it and sees the card turn
// green without a reload, opens its console: the noVNC canvas shows the guest's screen
// (pixels that are not all one colour) and the serial tab the guest's ready marker. A second
// VM is refused by the quota; the admin pages and another user's console stay closed to the
// student; Stop (picked with the keyboard) turns the card grey while the console tab waits,
// Start again and the console tab reconnects by itself; a QEMU killed from outside turns
// the card red, Wipe and Delete work. Screenshots of both dashboards, the console tab and a
// phone-width dashboard are taken for the docs (lib.mjs `docShot`).
//
// Run by vmd-web/tests/ui.rs; prints one "ok:" line per step, exits 1 naming the failed step.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as ui from "./lib.mjs";

const SECOND = 1000;
const BOOT = 180 * SECOND;
const ISO = "guest"; // the name the page makes of "guest.iso"
const BASE = ui.env.image;
const STUDENT = ui.env.otherUser;
const VM = "lab1";
// A loopback port for the VM's SSH forward, unlikely to be taken by a test running beside.
const SSH_PORT = 20000 + Math.floor(Math.random() * 20000);
const foreignVm = process.env.UI_FOREIGN_VM || ui.fail("environment variable UI_FOREIGN_VM is not set");
const isoPath = process.env.UI_ISO || ui.fail("environment variable UI_ISO is not set");

const imageRow = (page) => page.locator(`#image-rows tr[data-key="${BASE}"]`);
const vmRow = (page, vm) => page.locator(`#allvms-rows tr[data-key="${vm}"]`);

/** Drops the file at `path` on drop zone `zone` as a user dragging it from their desktop
 * would: the page receives a `drop` event whose DataTransfer holds the real file. */
async function dropFile(page, zone, path) {
  await page.evaluate(() => {
    const input = Object.assign(document.createElement("input"), { type: "file", id: "test-source", hidden: true });
    document.body.append(input);
  });
  await page.setInputFiles("#test-source", path);
  await page.evaluate((id) => {
    const input = document.getElementById("test-source");
    const dt = new DataTransfer();
    dt.items.add(input.files[0]);
    input.remove();
    const target = document.getElementById(id);
    for (const type of ["dragenter", "dragover", "drop"]) {
      target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
    }
  }, zone);
}

/** Picks `action` in the ⋮ menu of `vm`'s row of All VMs. */
async function rowAction(page, vm, action) {
  await page.bringToFront();
  await vmRow(page, vm).locator(".menu-button").click();
  await page.locator(`#vm-menu [data-action="${action}"]:not([disabled])`).click();
}

async function uploadIso(admin) {
  await ui.step("the admin opens Admin and drops the installer ISO: progress to 100%", async () => {
    await admin.click('#view-nav [data-view="admin-view"]');
    await admin.locator("#admin-view").waitFor({ state: "visible" });
    await dropFile(admin, "iso-drop", isoPath);
    await admin.locator("#iso-percent", { hasText: "100%" }).waitFor({ timeout: 60 * SECOND });
    const hash = createHash("sha256").update(readFileSync(isoPath)).digest("hex");
    await admin.locator(`#iso-rows tr[data-key="${ISO}"]`, { hasText: hash }).waitFor({ timeout: 60 * SECOND });
  });
}

/** Creates the base from the ISO and installs it through the browser console. */
async function installBase(admin) {
  await ui.step("a base is created from the ISO and its install VM started", async () => {
    await admin.fill("#image-name", BASE);
    await admin.selectOption("#image-iso", ISO);
    await admin.fill("#image-size", "1");
    await admin.selectOption("#image-firmware", "bios");
    await admin.selectOption("#image-os", "linux");
    await admin.click('#image-form button[type="submit"]');
    await imageRow(admin).and(admin.locator('[data-sealed="false"]')).waitFor();
    await rowAction(admin, BASE, "start");
    await admin.locator(`#allvms-rows tr[data-key="${BASE}"][data-state="running"]`).waitFor({ timeout: 60 * SECOND });
  });
  const [con] = await Promise.all([
    admin.context().waitForEvent("page"),
    imageRow(admin).locator("button", { hasText: "Console" }).click(),
  ]);
  ui.watch(con, "install-console");
  await ui.step("the installer runs from the install VM's serial console in the browser", async () => {
    await con.locator('#vnc-status[data-state="connected"]').waitFor({ timeout: 60 * SECOND });
    await con.click("#tab-serial");
    await con.locator('#serial-status[data-state="connected"]').waitFor({ timeout: 60 * SECOND });
    await ui.waitTerminalText(con, "#serial-term", "GUEST-READY", BOOT);
    await con.click("#serial-term");
    await con.keyboard.type("install-to-disk\n");
    await ui.waitTerminalText(con, "#serial-term", "INSTALL-DONE", 120 * SECOND);
  });
  await con.close();
  await ui.step("the install VM is stopped and the base sealed", async () => {
    await rowAction(admin, BASE, "stop");
    await admin.locator(`#allvms-rows tr[data-key="${BASE}"][data-state="stopped"]`).waitFor({ timeout: 90 * SECOND });
    await imageRow(admin).locator("button", { hasText: "Seal" }).click();
    await imageRow(admin).and(admin.locator('[data-sealed="true"]')).waitFor({ timeout: 60 * SECOND });
    await vmRow(admin, BASE).waitFor({ state: "detached" });
  });
  await ui.step("the admin describes the base for the students", async () => {
    await imageRow(admin).locator("button", { hasText: "Edit" }).click();
    await admin.fill("#image-info-description", "Tiny Linux: BusyBox with a serial shell, boots in seconds");
    await admin.click("#image-info-ok");
    await imageRow(admin).locator("td", { hasText: "BusyBox with a serial shell" }).waitFor();
  });
}

async function addStudent(admin) {
  await ui.step(`the admin adds ${STUDENT} with a password and a one-VM quota`, async () => {
    await admin.fill("#user-name", STUDENT);
    await admin.fill("#user-password", ui.env.otherPassword);
    await admin.click('#user-form button[type="submit"]');
    const row = admin.locator(`#user-rows tr[data-key="${STUDENT}"]`);
    await row.waitFor();
    await row.locator("button", { hasText: "Quota" }).click();
    await admin.fill("#quota-max_vms", "1");
    await admin.click("#quota-ok");
    await row.locator("td", { hasText: "0 / 1" }).waitFor();
  });
}

async function createAndStart(page) {
  await ui.step(`${STUDENT} creates a VM from the OS sidebar with a bigger disk, an SSH port and a description`, async () => {
    const os = page.locator(`.os[data-image="${BASE}"]`);
    await os.locator("text=BusyBox with a serial shell").waitFor();
    if ((await os.getAttribute("data-os")) !== "linux") throw new Error("the base's OS family is not shown");
    await os.click();
    await page.fill("#vm-name", VM);
    await page.fill("#vm-memory", "128");
    const min = await page.getAttribute("#vm-disk", "min");
    if (min !== "1") throw new Error(`the disk's minimum for a 1 GiB base is ${min}`);
    await page.fill("#vm-disk", "2");
    await page.fill("#vm-ssh", String(SSH_PORT));
    await page.fill("#vm-description", "Networking lab, week 1");
    await page.click("#create-submit");
    await ui.waitState(page, VM, "stopped", 30 * SECOND);
    const facts = await ui.card(page, VM).locator("dl").textContent();
    for (const want of ["2.0 GiB disk", `host port ${SSH_PORT}`, "Networking lab, week 1"]) {
      if (!facts.includes(want)) throw new Error(`the card lacks "${want}": ${facts}`);
    }
  });
  await ui.step("Start turns the card green without a reload", async () => {
    await page.evaluate(() => { window.notReloaded = true; });
    await ui.menuAction(page, VM, "start");
    await ui.waitState(page, VM, "running", 60 * SECOND);
    const border = await ui.card(page, VM).evaluate((el) => getComputedStyle(el).borderLeftColor);
    if (border !== "rgb(46, 125, 50)") throw new Error(`a running card's border is ${border}`);
    if (!(await page.evaluate(() => window.notReloaded))) throw new Error("the page was reloaded");
  });
}

async function adminSeesIt(admin) {
  await ui.step("the admin's All VMs and overview show the student's running VM, live", async () => {
    await admin.locator(`#allvms-rows tr[data-key="${VM}"][data-owner="${STUDENT}"][data-state="running"]`).waitFor({ timeout: 30 * SECOND });
    await admin.waitForFunction(() => document.querySelector('#overview [data-stat="vms"]')?.textContent === "1 / 2");
  });
  await admin.evaluate(() => window.scrollTo(0, 0));
  await ui.docShot(admin, "admin-dashboard");
}

/** True once the canvas under #vnc-screen has pixels of more than one colour. */
function canvasHasPicture() {
  const canvas = document.querySelector("#vnc-screen canvas");
  if (!canvas || canvas.width < 320) return false;
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  for (let i = 4; i < data.length; i += 4) {
    if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2]) return true;
  }
  return false;
}

async function console_(context, page) {
  const opened = context.waitForEvent("page");
  await ui.menuAction(page, VM, "console");
  const con = await opened;
  ui.watch(con, "console");
  await ui.step("the console tab's noVNC canvas shows the guest's screen", async () => {
    await con.locator('#vnc-status[data-state="connected"]').waitFor({ timeout: 60 * SECOND });
    await con.waitForFunction(canvasHasPicture, null, { timeout: BOOT, polling: 500 });
  });
  await ui.step("the serial tab shows the guest's ready marker", async () => {
    await con.click("#tab-serial");
    await ui.waitTerminalText(con, "#serial-term", `GUEST-READY ${VM}`, BOOT);
  });
  await ui.docShot(con, "console-serial");
  await con.click("#tab-vnc");
  await ui.docShot(con, "console");
  return con;
}

async function quotaRefusal(page) {
  await ui.step("a second VM is refused by the quota, with vmd's words", async () => {
    await page.locator(`.os[data-image="${BASE}"]`).click();
    await page.fill("#vm-name", "lab2");
    await page.fill("#vm-memory", "128");
    await page.click("#create-submit");
    await page.locator("#create-error", { hasText: "quota exceeded" }).waitFor();
    await page.click("#create-cancel");
    if (await ui.card(page, "lab2").count()) throw new Error("a card for the refused VM");
  });
  await ui.docShot(page, "user-dashboard");
}

async function closedDoors(context, page) {
  await ui.step("the student gets no admin view at /#admin, and vmd refuses the admin API", async () => {
    await page.goto(`${ui.env.url}#admin`);
    await ui.card(page, VM).waitFor();
    if (await page.isVisible("#admin-view")) throw new Error("the admin view is shown to a user");
    if (await page.isVisible("#view-nav")) throw new Error("the admin nav is shown to a user");
    const [users, status] = await page.evaluate(async () => {
      const list = await (await fetch("/api/v1/users")).json();
      const headers = { "content-type": "application/json", "x-csrf-token": localStorage.getItem("vmd-csrf") };
      const body = JSON.stringify({ name: "sneaky", admin: true });
      const add = await fetch("/api/v1/users", { method: "POST", headers, body });
      return [list.map((u) => u.name), add.status];
    });
    if (users.join() !== STUDENT) throw new Error(`GET /api/v1/users lists ${users.join()}`);
    if (status !== 403) throw new Error(`POST /api/v1/users answered ${status}`);
  });
  await ui.step("another user's console URL shows vmd's not-found, never a screen", async () => {
    const other = await ui.watchedPage(context, "foreign-console");
    await other.goto(`${ui.env.url}console?vm=${foreignVm}`);
    await other.locator('#vnc-status[data-state="failed"]', { hasText: "not found" }).waitFor();
    await other.locator('#serial-status[data-state="failed"]', { hasText: "not found" }).waitFor({ state: "attached" });
    if (await other.locator("#vnc-screen canvas").count()) throw new Error("a VNC canvas was made");
    await other.close();
  });
}

async function stopKillWipeDelete(page, con) {
  await ui.step("Stop, picked from the ⋮ menu with the keyboard, turns the card grey", async () => {
    await page.bringToFront();
    await ui.card(page, VM).locator(".menu-button").focus();
    await page.keyboard.press("Enter");
    await page.locator("#vm-menu:not([hidden])").waitFor();
    while ((await page.evaluate(() => document.activeElement?.dataset.action)) !== "stop") {
      await page.keyboard.press("ArrowDown");
    }
    await page.keyboard.press("Enter");
    await ui.waitState(page, VM, "stopped", 90 * SECOND);
  });
  await ui.step("the open console tab waits while the VM is stopped", async () => {
    for (const kind of ["vnc", "serial"]) {
      await con.locator(`#${kind}-status[data-state="waiting"]`).waitFor({ state: "attached", timeout: 30 * SECOND });
    }
  });
  await ui.step("started again, the console tab reconnects by itself", async () => {
    await ui.menuAction(page, VM, "start");
    await ui.waitState(page, VM, "running", 60 * SECOND);
    for (const kind of ["vnc", "serial"]) {
      await con.locator(`#${kind}-status[data-state="connected"][data-connects="2"]`).waitFor({ state: "attached", timeout: 60 * SECOND });
    }
    await con.close();
  });
  await ui.step("a QEMU killed from outside turns the card red", async () => {
    const pid = await page.evaluate(async (name) => (await (await fetch(`/api/v1/vms/${name}`)).json()).pid, VM);
    if (!pid) throw new Error(`no pid for ${VM}`);
    process.kill(pid, "SIGKILL");
    await ui.waitState(page, VM, "crashed", 60 * SECOND);
  });
  await ui.step("Wipe disk and Delete, each confirmed, work", async () => {
    await ui.menuAction(page, VM, "wipe");
    await page.click("#confirm-ok");
    await page.locator("#toast", { hasText: `${VM}: disk wiped` }).waitFor();
    await ui.menuAction(page, VM, "delete");
    await page.click("#confirm-ok");
    await ui.card(page, VM).waitFor({ state: "detached", timeout: 30 * SECOND });
  });
}

async function phoneWidth(browser) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await ui.watchedPage(context, "phone");
  await ui.step("at a phone's width the dashboard fits without sideways scrolling", async () => {
    await ui.login(page, STUDENT, ui.env.otherPassword);
    await page.locator(`.os[data-image="${BASE}"]`).waitFor();
    await ui.card(page, VM).waitFor();
    const outside = await page.evaluate(() => {
      const parts = [".sidebar", "#meters", ".card", ".card .menu-button", ".topbar button"];
      return parts.flatMap((sel) => [...document.querySelectorAll(sel)]
        .filter((el) => { const r = el.getBoundingClientRect(); return r.left < 0 || r.right > window.innerWidth; })
        .map(() => sel));
    });
    if (outside.length) throw new Error(`past the screen's edge: ${outside.join(", ")}`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (wide > 0) throw new Error(`the page is ${wide} px wider than the screen`);
  });
  await ui.docShot(page, "phone");
  await context.close();
}

ui.journey(async (browser) => {
  const viewport = { width: 1280, height: 800 };
  const adminContext = await browser.newContext({ viewport });
  const admin = await ui.watchedPage(adminContext, "admin");
  await ui.step("the admin logs in", () => ui.login(admin, ui.env.user, ui.env.password));
  await uploadIso(admin);
  await installBase(admin);
  await addStudent(admin);

  const context = await browser.newContext({ viewport });
  const page = await ui.watchedPage(context, "student");
  await ui.step(`${STUDENT} logs in in a second browser context`, () => ui.login(page, STUDENT, ui.env.otherPassword));
  await createAndStart(page);
  await adminSeesIt(admin);
  const con = await console_(context, page);
  await quotaRefusal(page);
  await closedDoors(context, page);
  await phoneWidth(browser);
  await stopKillWipeDelete(page, con);
  await ui.step("the admin's All VMs followed the student's VM away live", async () => {
    await vmRow(admin, VM).waitFor({ state: "detached" });
  });
});

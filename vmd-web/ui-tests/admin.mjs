// Journey of the admin view: an admin logs in, keeps their own (empty) dashboard and opens
// Admin; the overview counts what vmd has; a dropped file's upload is cancelled; the test
// guest's ISO, chosen in the file input, uploads with the progress bar reaching 100% and is
// listed with its sha256; a base is created from it (its install VM shows in All VMs; sealing
// the blank disk shows vmd's refusal, deleting the ISO in use vmd's dependency message); a
// dropped disk image is imported as a base (its OS family and description edited, the OS
// sidebar showing its icon and description); another user's stopped VM is published as a base;
// a user is added and removed, a quota set (removing a user owning a VM is refused with
// vmd's words); another user's
// VM is found with its owner, filtered by user, started, force-stopped and
// deleted from the ⋮ menu, the overview following live; the Logs panel lists, filters and
// follows the journey's events and shows the install VM's console log (admin-logs.mjs).
// Then one user is managed from the Users panel (users.mjs): role, VMs, tokens, password,
// deletion with everything.
//
// Run by vmd-web/tests/ui.rs; prints one "ok:" line per step, exits 1 naming the failed step.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as ui from "./lib.mjs";
import { manageOneUser } from "./users.mjs";
import { consoleLog, eventLog, longHistory, phoneWidth } from "./admin-logs.mjs";

const SECOND = 1000;
const ISO = "inst";
const BASE = "base1";
const VM = "carl1";
const isoPath = process.env.UI_ISO || ui.fail("environment variable UI_ISO is not set");

const stat = (page, key) => page.locator(`#overview [data-stat="${key}"]`);
const vmRow = (page, vm) => page.locator(`#allvms-rows tr[data-key="${vm}"]`);

/** Waits until overview entry `key` reads exactly `text`. */
async function waitStat(page, key, text, timeout = 10 * SECOND) {
  await page.waitForFunction(
    ([k, t]) => document.querySelector(`#overview [data-stat="${k}"]`)?.textContent === t,
    [key, text],
    { timeout },
  );
}

async function overview(page) {
  await ui.step("the admin keeps their dashboard and opens Admin", async () => {
    await page.locator("#vms-empty").waitFor({ state: "visible" });
    if (await ui.card(page, VM).count()) throw new Error(`${VM} of another user is on My VMs`);
    await page.click('#view-nav [data-view="admin-view"]');
    await page.locator("#admin-view").waitFor({ state: "visible" });
    if (await page.isVisible("#dashboard-view")) throw new Error("the dashboard is still shown");
  });
  await ui.step("the overview counts ISOs, images, VMs and users", async () => {
    await waitStat(page, "isos", "0");
    await waitStat(page, "images", "1");
    await waitStat(page, "vms", "0 / 1");
    await page.locator('#user-rows tr[data-key="carl"]').waitFor();
    const users = await page.locator("#user-rows tr").count();
    await waitStat(page, "users", String(users));
    await waitStat(page, "issues", "none");
    const bases = await stat(page, "images-bytes").textContent();
    if (bases === "0 B") throw new Error("the bases' storage reads 0 B");
  });
  await ui.step("the overview shows the host's CPU, load and memory", async () => {
    const cpu = await stat(page, "host-cpu").textContent();
    if (!/^\d+ CPUs?, \d+% busy$/.test(cpu)) throw new Error(`host CPU reads ${cpu}`);
    const load = await stat(page, "host-load").textContent();
    if (!/^\d+\.\d\d \/ \d+\.\d\d \/ \d+\.\d\d$/.test(load)) throw new Error(`load reads ${load}`);
    const memory = await stat(page, "host-memory").textContent();
    if (!/ used of /.test(memory)) throw new Error(`host memory reads ${memory}`);
  });
}

/** Drops an in-page file `name` of `mib` MiB of zeros with an MBR boot signature (a raw
 * disk QEMU accepts) on drop zone `zone`. */
async function dropFile(page, zone, name, mib) {
  await page.evaluate(([id, file, size]) => {
    const bytes = new Uint8Array(size << 20);
    bytes[510] = 0x55;
    bytes[511] = 0xaa;
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], file));
    const target = document.getElementById(id);
    target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, [zone, name, mib]);
}

async function isos(page) {
  await ui.step("a dropped file uploads until Cancel stops it", async () => {
    let held = null;
    // This upload is held in the browser, so it is still open when Cancel is pressed.
    const dropped = (url) => url.pathname === "/api/v1/isos" && url.searchParams.get("name") === "dropped-1";
    await page.route(dropped, (route) => { held = route; });
    await dropFile(page, "iso-drop", "Dropped 1.iso", 1);
    await page.locator("#iso-upload").waitFor({ state: "visible" });
    const name = await page.inputValue("#iso-name");
    if (name !== "dropped-1") throw new Error(`name from the file: ${name}`);
    await page.waitForFunction(() => document.getElementById("iso-cancel").disabled === false);
    await page.click("#iso-cancel");
    await page.locator("#iso-error", { hasText: "cancelled" }).waitFor();
    await page.locator("#iso-upload").waitFor({ state: "hidden" });
    await page.unroute(dropped);
    if (!held) throw new Error("the upload never reached the network");
  });
  await ui.step("the file input uploads the ISO with progress to 100%; it is listed", async () => {
    await page.evaluate(() => {
      window.seenPercents = [];
      const text = document.getElementById("iso-percent");
      new MutationObserver(() => window.seenPercents.push(text.textContent)).observe(text, { childList: true });
    });
    await page.fill("#iso-name", ISO);
    await page.setInputFiles("#iso-file", isoPath);
    await page.locator("#iso-percent", { hasText: "100%" }).waitFor({ timeout: 60 * SECOND });
    const hash = createHash("sha256").update(readFileSync(isoPath)).digest("hex");
    await page.locator(`#iso-rows tr[data-key="${ISO}"]`, { hasText: hash }).waitFor({ timeout: 60 * SECOND });
    if (await page.inputValue("#iso-name")) throw new Error("the name field was not cleared for the next upload");
    const seen = await page.evaluate(() => window.seenPercents);
    if (!seen.includes("100%")) throw new Error(`progress seen: ${seen.join(" ")}`);
    await waitStat(page, "isos", "1");
  });
}

async function images(page) {
  await ui.step("a base is created from the ISO; its install VM shows in All VMs", async () => {
    await page.fill("#image-name", BASE);
    await page.selectOption("#image-iso", ISO);
    await page.fill("#image-size", "1");
    await page.selectOption("#image-firmware", "bios");
    await page.click('#image-form button[type="submit"]');
    await page.locator(`#image-rows tr[data-key="${BASE}"][data-sealed="false"]`).waitFor();
    await vmRow(page, BASE).locator("td", { hasText: ui.env.user }).first().waitFor();
  });
  await ui.step("the unsealed base's Console opens its install VM's console tab", async () => {
    const [con] = await Promise.all([
      page.context().waitForEvent("page"),
      page.locator(`#image-rows tr[data-key="${BASE}"] button`, { hasText: "Console" }).click(),
    ]);
    await con.waitForLoadState();
    const url = new URL(con.url());
    if (url.pathname !== "/console" || url.searchParams.get("vm") !== BASE) throw new Error(`opened ${url}`);
    await con.close();
  });
  await ui.step("sealing the blank disk shows vmd's refusal", async () => {
    await page.locator(`#image-rows tr[data-key="${BASE}"] button`, { hasText: "Seal" }).click();
    await page.locator("#image-error", { hasText: "still blank" }).waitFor();
  });
  await ui.step("deleting the ISO in use shows vmd's dependency message", async () => {
    await page.locator(`#iso-rows tr[data-key="${ISO}"] button`, { hasText: "Delete" }).click();
    await page.click("#confirm-ok");
    await page.locator("#iso-error", { hasText: `used by` }).waitFor();
    await page.locator("#iso-error", { hasText: BASE }).waitFor();
    await page.locator(`#iso-rows tr[data-key="${ISO}"]`).waitFor();
  });
}

async function moreImages(page) {
  await ui.step("a disk image dropped on Base images is imported (progress 100%) with its OS and description", async () => {
    await page.selectOption("#disk-os", "freebsd");
    await page.fill("#disk-description", "Dropped blank disk");
    await dropFile(page, "disk-drop", "Blank Disk.img", 16);
    // The name is filled in when the upload starts (and cleared once it is imported).
    const name = await page.inputValue("#disk-name");
    if (name !== "blank-disk") throw new Error(`name from the file: ${name}`);
    await page.locator("#disk-percent", { hasText: "100%" }).waitFor({ timeout: 60 * SECOND });
    const blank = page.locator('#image-rows tr[data-key="blank-disk"][data-sealed="true"]');
    await blank.waitFor({ timeout: 60 * SECOND });
    await blank.locator("td", { hasText: "Dropped blank disk" }).waitFor();
    await blank.locator("td", { hasText: "FreeBSD" }).waitFor();
    await waitStat(page, "images", "3");
  });
  await ui.step("publishing the other user's stopped VM makes a public base", async () => {
    await page.selectOption("#publish-vm", VM);
    await page.fill("#publish-name", "carl-base");
    await page.selectOption("#publish-os", "debian");
    await page.fill("#publish-description", "Carl's lab setup");
    await page.click('#publish-form button[type="submit"]');
    const row = page.locator('#image-rows tr[data-key="carl-base"][data-sealed="true"]');
    await row.locator("td", { hasText: "sealed, public" }).waitFor({ timeout: 60 * SECOND });
    await row.locator("td", { hasText: "Carl's lab setup" }).waitFor();
    await row.locator("td", { hasText: "Debian" }).waitFor();
    await waitStat(page, "images", "4");
  });
}

async function imageInfo(page) {
  await ui.step("Edit sets an image's OS family and description; the OS sidebar shows them", async () => {
    const row = page.locator('#image-rows tr[data-key="blank-disk"]');
    await row.locator("button", { hasText: "Edit" }).click();
    await page.selectOption("#image-info-os", "alpine");
    await page.fill("#image-info-description", "Tiny test base");
    await page.click("#image-info-ok");
    await row.locator('.os-cell[data-os="alpine"] svg.os-badge').waitFor();
    await row.locator("td", { hasText: "Tiny test base" }).waitFor();
    await page.click('#view-nav [data-view="dashboard-view"]');
    const entry = page.locator('#os-list .os[data-image="blank-disk"][data-os="alpine"]');
    await entry.locator('svg.os-badge[data-os="alpine"]').waitFor();
    await entry.locator(".os-description", { hasText: "Tiny test base" }).waitFor();
    await page.click('#view-nav [data-view="admin-view"]');
  });
}

async function usersPanel(page) {
  await ui.step("the admin adds a user, sets a quota; deleting a user who owns a VM is refused", async () => {
    const before = Number(await stat(page, "users").textContent());
    await page.fill("#user-name", "dora");
    await page.fill("#user-password", "another long password");
    await page.click('#user-form button[type="submit"]');
    await page.locator('#user-rows tr[data-key="dora"]', { hasText: "user" }).waitFor();
    await waitStat(page, "users", String(before + 1));
    const other = page.locator(`#user-rows tr[data-key="${ui.env.otherUser}"]`);
    await other.locator("button", { hasText: "Quota" }).click();
    await page.fill("#quota-max_vms", "5");
    await page.click("#quota-ok");
    await other.locator("td", { hasText: "1 / 5" }).waitFor();
    await other.locator("button", { hasText: "Delete" }).click();
    await page.click("#confirm-ok");
    await page.locator("#user-error", { hasText: `owns` }).waitFor();
    await page.locator("#user-error", { hasText: VM }).waitFor();
    await page.locator('#user-rows tr[data-key="dora"] button', { hasText: "Delete" }).click();
    await page.click("#confirm-ok");
    await page.locator('#user-rows tr[data-key="dora"]').waitFor({ state: "detached" });
    await waitStat(page, "users", String(before));
  });
}

/** Picks `action` in the ⋮ menu of `vm`'s row. */
async function rowAction(page, vm, action) {
  await vmRow(page, vm).locator(".menu-button").click();
  await page.locator(`#vm-menu [data-action="${action}"]:not([disabled])`).click();
}

async function allVms(page) {
  await ui.step("All VMs shows the other user's VM with its owner; the filters work", async () => {
    await page.locator(`#allvms-rows tr[data-key="${VM}"][data-owner="${ui.env.otherUser}"]`).waitFor();
    await page.selectOption("#filter-user", ui.env.otherUser);
    await page.waitForFunction(() => document.querySelectorAll("#allvms-rows tr").length === 1);
    await vmRow(page, VM).waitFor();
    await page.selectOption("#filter-user", ui.env.user);
    await vmRow(page, VM).waitFor({ state: "detached" });
    await vmRow(page, BASE).waitFor();
    await page.selectOption("#filter-user", "");
    await page.selectOption("#filter-state", "stopped");
    await vmRow(page, VM).waitFor();
    await page.selectOption("#filter-state", "");
    await page.selectOption("#filter-image", ui.env.image);
    await page.waitForFunction(() => document.querySelectorAll("#allvms-rows tr").length === 1);
    await vmRow(page, VM).waitFor();
    await page.selectOption("#filter-image", "");
  });
  await ui.step("the admin starts, force-stops and deletes it from the ⋮ menu", async () => {
    await rowAction(page, VM, "start");
    await page.locator(`#allvms-rows tr[data-key="${VM}"][data-state="running"]`).waitFor({ timeout: 30 * SECOND });
    await waitStat(page, "vms", "1 / 2");
    // The events about carl's VM re-read it on My VMs too: it must not become a card there.
    await page.click('#view-nav [data-view="dashboard-view"]');
    await ui.card(page, BASE).waitFor();
    if (await ui.card(page, VM).count()) throw new Error(`${VM} of another user is on My VMs`);
    await page.click('#view-nav [data-view="admin-view"]');
    await rowAction(page, VM, "force-stop");
    await page.locator(`#allvms-rows tr[data-key="${VM}"][data-state="stopped"]`).waitFor({ timeout: 30 * SECOND });
    await rowAction(page, VM, "delete");
    await page.click("#confirm-ok");
    await vmRow(page, VM).waitFor({ state: "detached" });
    await waitStat(page, "vms", "0 / 1");
  });
}

ui.journey(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await ui.watchedPage(context, "admin");
  await ui.step("the admin logs in", () => ui.login(page, ui.env.user, ui.env.password));
  await overview(page);
  await isos(page);
  await images(page);
  await moreImages(page);
  await imageInfo(page);
  await usersPanel(page);
  await allVms(page);
  await eventLog(page, { iso: ISO, base: BASE, vm: VM, other: ui.env.otherUser });
  await consoleLog(page, BASE);
  await longHistory(page, "blank-disk");
  await phoneWidth(page);
  await manageOneUser(browser, page);
  await ui.screenshots("end");
});

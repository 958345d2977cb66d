// Steps of the admin journey (admin.mjs) on the Logs panel: the event log lists what the
// journey did before, each filter narrows it, a new event shows live without a reload with
// Follow keeping it in view; a VM's console log shows vmd's own lines, followed live, and
// its text filter keeps and marks the matching lines; at a phone's width the panel's
// parts stay within the screen.

import * as ui from "./lib.mjs";

const SECOND = 1000;
const rows = "#events-rows tr";

/** The event rows as shown: kind, VM, actor, owner and the whole row's text. */
const eventRows = (page) => page.$$eval(rows, (trs) => trs.map((tr) => ({
  kind: tr.dataset.kind,
  vm: tr.dataset.vm ?? null,
  actor: tr.cells[3].textContent,
  owner: tr.cells[4].textContent,
  text: tr.textContent,
})));

/** A REST call from the page with its session and CSRF token; fails on an error answer. */
async function api(page, method, path, body) {
  await page.evaluate(async ([m, p, b]) => {
    const headers = { "Content-Type": "application/json", "X-CSRF-Token": localStorage.getItem("vmd-csrf") };
    const init = { method: m, headers, body: b === null ? undefined : JSON.stringify(b) };
    const answer = await fetch(p, init);
    if (!answer.ok) throw new Error(`${m} ${p}: ${answer.status} ${await answer.text()}`);
  }, [method, path, body ?? null]);
}

/** Applies a filter with `set`, checks every remaining row with `each` (and that the rows
 * are fewer than `total` but not none), then clears it with `clear`. */
async function narrows(page, total, { set, each, clear }, what) {
  await set();
  const shown = await eventRows(page);
  if (!shown.length || shown.length >= total) throw new Error(`${what}: ${shown.length} of ${total} rows`);
  const wrong = shown.find((r) => !each(r));
  if (wrong) throw new Error(`${what} shows ${wrong.text}`);
  await clear();
  const back = (await eventRows(page)).length;
  if (back !== total) throw new Error(`clearing ${what}: ${back} rows, ${total} before`);
}

/** A local "YYYY-MM-DDTHH:MM" (a datetime-local value) `minutes` from `at` (RFC 3339), as the
 * page's clock and time zone see it. */
const localMinute = (page, at, minutes) => page.evaluate(([t, m]) => {
  const d = new Date(Date.parse(t) + m * 60_000);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
}, [at, minutes]);

/** Checks that the From and To inputs narrow the rows: out of range, none; around all, all. */
async function timeFilters(page, total) {
  const first = await page.locator(`${rows} td`).first().getAttribute("title");
  const now = new Date().toISOString();
  await page.fill("#events-from", await localMinute(page, now, 2));
  await page.locator("#events-empty").waitFor({ state: "visible" });
  if (await page.locator(rows).count()) throw new Error("From after the last event still shows rows");
  await page.fill("#events-from", "");
  await page.fill("#events-to", await localMinute(page, first, -2));
  await page.locator("#events-empty").waitFor({ state: "visible" });
  if (await page.locator(rows).count()) throw new Error("To before the first event still shows rows");
  await page.fill("#events-from", await localMinute(page, first, 0));
  await page.fill("#events-to", await localMinute(page, now, 0));
  const within = await page.locator(rows).count();
  if (within !== total) throw new Error(`From first to now shows ${within} of ${total} rows`);
  await page.fill("#events-from", "");
  await page.fill("#events-to", "");
}

/** The event log's steps; `names` has the journey's `iso`, `base`, `vm` and `other` user. */
export async function eventLog(page, { iso, base, vm, other }) {
  await ui.step("the Logs panel lists the journey's events", async () => {
    await page.locator("#logs-heading").scrollIntoViewIfNeeded();
    await page.locator(`${rows}[data-kind="iso_imported"]`, { hasText: iso }).waitFor();
    await page.locator(`${rows}[data-kind="image_imported"]`, { hasText: base }).first().waitFor();
    await page.locator(`${rows}[data-kind="vm_created"][data-vm="${vm}"]`).waitFor();
    await page.locator(`${rows}[data-kind="vm_removed"][data-vm="${vm}"]`).waitFor();
    await page.locator(`${rows}[data-kind="user_added"]`, { hasText: "dora" }).waitFor();
  });
  await ui.step("each filter of the event log narrows the rows", async () => {
    const total = await page.locator(rows).count();
    const pick = (id, value) => ({
      set: () => page.selectOption(id, value),
      clear: () => page.selectOption(id, ""),
    });
    await narrows(page, total, { ...pick("#events-vm", vm), each: (r) => r.vm === vm }, "VM");
    await narrows(page, total, { ...pick("#events-user", other), each: (r) => r.actor === other || r.owner === other }, "user");
    await narrows(page, total, { ...pick("#events-kind", "iso_imported"), each: (r) => r.kind === "iso_imported" }, "kind");
    const text = {
      set: () => page.fill("#events-text", "DORA"),
      clear: () => page.fill("#events-text", ""),
      each: (r) => r.text.includes("dora"),
    };
    await narrows(page, total, text, "text");
    await timeFilters(page, total);
  });
  await ui.step("a new event shows live, Follow keeping it in view", async () => {
    await page.evaluate(() => { window.notReloaded = true; });
    await page.check("#events-follow");
    await api(page, "POST", "/api/v1/users", { name: "erin" });
    await page.locator(`${rows}[data-kind="user_added"]`, { hasText: "erin" }).waitFor();
    await page.waitForFunction(() => {
      const box = document.getElementById("events-scroll").getBoundingClientRect();
      const last = document.querySelector("#events-rows tr:last-child");
      const row = last.getBoundingClientRect();
      return last.textContent.includes("erin") && row.top >= box.top && row.bottom <= box.bottom + 2;
    });
    await page.selectOption("#events-kind", "user_removed");
    await api(page, "DELETE", "/api/v1/users/erin");
    await page.locator(`${rows}[data-kind="user_removed"]`, { hasText: "erin" }).waitFor();
    const kinds = new Set((await eventRows(page)).map((r) => r.kind));
    if (kinds.size !== 1) throw new Error(`kind filter on live rows shows ${[...kinds].join(", ")}`);
    await page.selectOption("#events-kind", "");
    if (!(await page.evaluate(() => window.notReloaded))) throw new Error("the page was reloaded");
  });
}

/** The console log's steps, on VM `vm` (stopped, started and force-stopped here). */
export async function consoleLog(page, vm) {
  await ui.step("a VM's console log shows vmd's lines, followed live", async () => {
    await page.selectOption("#vmlog-vm", vm);
    await page.locator(`#vmlog-text[data-following="${vm}"]`).waitFor();
    await api(page, "POST", `/api/v1/vms/${vm}/start`);
    await page.locator("#vmlog-text", { hasText: "starting QEMU" }).waitFor({ timeout: 30 * SECOND });
    await page.locator(`${rows}[data-kind="state_changed"][data-vm="${vm}"]`).first().waitFor();
    await api(page, "POST", `/api/v1/vms/${vm}/stop`, { force: true });
    await page.locator("#vmlog-text", { hasText: "forced stop requested" }).waitFor({ timeout: 30 * SECOND });
  });
  await ui.step("the console log's filter keeps and marks matching lines", async () => {
    await page.fill("#vmlog-filter", "[VMD");
    // Read in one go: the log is still followed, and vmd may add lines (QEMU's exit)
    // between separate reads.
    const { lines, marks, count } = await page.evaluate(() => ({
      lines: document.getElementById("vmlog-text").textContent.split("\n").filter(Boolean),
      marks: document.querySelectorAll("#vmlog-text mark").length,
      count: document.getElementById("vmlog-count").textContent,
    }));
    if (lines.length < 2 || !lines.every((l) => l.includes("[vmd"))) throw new Error(`kept: ${lines.join(" | ")}`);
    if (marks !== lines.length) throw new Error(`${marks} marks on ${lines.length} lines`);
    if (!count.startsWith(`${lines.length} of `)) throw new Error(`count reads ${count}`);
    await page.fill("#vmlog-filter", "");
  });
}

/** A history longer than one page (1000 events): after a reload the panel reads only the
 * newest 500 (found by probing, without reading the rest), the newest among them; Load
 * older reads the 500 before them. `image` is an image whose description is rewritten to
 * make the events. */
export async function longHistory(page, image) {
  await ui.step("a long history: the newest 500 are read first, Load older reads 500 more", async () => {
    await page.evaluate(async (name) => {
      const headers = { "Content-Type": "application/json", "X-CSRF-Token": localStorage.getItem("vmd-csrf") };
      for (let i = 0; i < 1000; i += 1) {
        const body = JSON.stringify({ description: `bulk ${i}` });
        const answer = await fetch(`/api/v1/images/${name}`, { method: "PATCH", headers, body });
        if (!answer.ok) throw new Error(`PATCH ${i}: ${answer.status}`);
      }
    }, image);
    // The newest event: a VM made (and removed below) to be found by name.
    await api(page, "POST", "/api/v1/vms", { name: "bulkmark", image, memory_mib: 128 });
    const reads = [];
    page.on("request", (r) => { if (r.url().includes("/events/history")) reads.push(new URL(r.url()).search); });
    await page.reload();
    await page.locator("#admin-view").waitFor({ state: "visible" });
    const mark = page.locator(`${rows}[data-kind="vm_created"][data-vm="bulkmark"]`);
    await mark.waitFor({ timeout: 30 * SECOND });
    const newest = Number(await mark.getAttribute("data-key"));
    const { first, oldest } = await page.evaluate(() => ({
      first: Number(document.getElementById("events-count").textContent.match(/of (\d+) loaded/)[1]),
      oldest: Math.min(...[...document.querySelectorAll("#events-rows tr")].map((tr) => Number(tr.dataset.key))),
    }));
    if (first < 500 || first > 510) throw new Error(`${first} events loaded at first`);
    if (oldest < newest - 510) throw new Error(`read back to seq ${oldest}, the newest is ${newest}`);
    // Only the first page (since=0) reads far back; the rest are one-event probes and the
    // reads of the newest 500 (and catch-ups after the stream connects).
    const deep = reads.filter((q) => {
      const p = new URLSearchParams(q);
      return p.get("limit") !== "1" && Number(p.get("since")) < newest - 510;
    });
    if (deep.length !== 1) throw new Error(`pages read far back: ${deep.join(" ")} (all: ${reads.join(" ")})`);
    await page.click("#events-older");
    await page.waitForFunction((n) => {
      const m = document.getElementById("events-count").textContent.match(/of (\d+) loaded/);
      return m && Number(m[1]) >= n + 500;
    }, first);
    await api(page, "DELETE", "/api/v1/vms/bulkmark");
  });
}

/** Checks that at a phone's width the Logs panel and its two boxes stay within the screen
 * (the boxes scroll sideways instead); the viewport is then restored. */
export async function phoneWidth(page) {
  await ui.step("at a phone's width the Logs panel stays within the screen", async () => {
    const wide = page.viewportSize();
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      const outside = await page.evaluate(() => ["#logs-heading", "#events-scroll", "#vmlog-text", "#events-to"]
        .filter((sel) => document.querySelector(sel).getBoundingClientRect().right > window.innerWidth + 1));
      if (outside.length) throw new Error(`wider than the screen: ${outside.join(", ")}`);
      const panel = await page.$eval(".logs-panel", (el) => el.scrollWidth - el.clientWidth);
      if (panel > 1) throw new Error(`the panel overflows by ${panel} px`);
      await page.locator("#logs-heading").scrollIntoViewIfNeeded();
      await ui.screenshots("phone");
    } finally {
      await page.setViewportSize(wide);
    }
  });
}

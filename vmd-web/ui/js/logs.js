// The admin's event log: vmd's stored events (`GET /api/v1/events/history`, read in pages:
// the newest 500 first, older ones on request), then live ones from the page's shared event
// stream (`onEvent`, routed by admin.js), as a table filtered in the page by VM, user (actor
// or owner), kind, text and time. "Follow" keeps the newest row in view.

import { get } from "./api.js";
import { fillSelect, row } from "./table.js";

const $ = (id) => document.getElementById(id);
/** Most events `events.list` returns at once. */
const PAGE = 1000;
/** How many of the newest events are read first, and how many more "Load older" reads. */
const RECENT = 500;
/** Most events kept in the page: past it, live events push the oldest out (Load older
 * reads them again), so a busy lab cannot grow the table without bound. */
const KEEP = 5000;
/** Every loaded event, by seq. */
const events = new Map();
/** Every event with a seq above this is loaded (0: the whole history). */
let floor = 0;
let newest = 0;
let loading = null;

/** One page of stored events after `since`. */
const page = (since, limit) => get(`/api/v1/events/history?since=${since}&limit=${limit}`);

/** Keeps `list` (events) and what they name for the filters' choices. */
function add(list) {
  for (const e of list) {
    events.set(e.seq, e);
    noteChoices(e);
  }
  newest = Math.max(newest, ...list.map((e) => e.seq));
}

/** Reads every stored event after `since`, page by page. */
async function readFrom(since) {
  for (;;) {
    const list = await page(since, PAGE);
    add(list);
    if (list.length < PAGE) return;
    since = list[list.length - 1].seq;
  }
}

/** The newest stored seq (0 if none), found with one-event probes: doubling up, then
 * halving (at most a few dozen tiny requests, whatever the history's length). */
async function newestStored(known) {
  let lo = known;
  let hi = Math.max(2 * known, 1024);
  for (;;) {
    const [e] = await page(hi, 1);
    if (!e) break;
    [lo, hi] = [e.seq, 2 * e.seq];
  }
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const [e] = await page(mid, 1);
    if (e) lo = e.seq;
    else hi = mid;
  }
  return lo;
}

/** Reads the newest `RECENT` stored events (everything when the history is short). */
async function loadRecent() {
  const first = await page(0, PAGE);
  if (first.length < PAGE) return add(first);
  floor = Math.max(0, (await newestStored(first[PAGE - 1].seq)) - RECENT);
  await readFrom(floor);
}

/** Reads the `RECENT` events before the oldest loaded one. An empty window means vmd
 * pruned what was older (it keeps the newest events): there is nothing more to read. */
async function loadOlder() {
  const below = floor;
  floor = Math.max(0, below - RECENT);
  const older = (await page(floor, RECENT)).filter((e) => e.seq <= below);
  if (!older.length) floor = 0;
  add(older);
  render();
}

/** Reads what was stored since the newest loaded event (after a stream reconnection). */
export async function catchUp() {
  await loading;
  try {
    await readFrom(newest);
    evict();
    render();
  } catch (err) {
    showError(err);
  }
}

/** The filters' current values. */
function filters() {
  const time = (id, end) => ($(id).value ? Date.parse($(id).value) + end : null);
  return {
    vm: $("events-vm").value,
    user: $("events-user").value,
    kind: $("events-kind").value,
    text: $("events-text").value.trim().toLowerCase(),
    from: time("events-from", 0),
    // A minute's input includes that whole minute.
    to: time("events-to", 60_000),
  };
}

/** Whether event `e` passes filters `f`. */
function matches(e, f) {
  const at = Date.parse(e.at);
  const words = [e.kind, e.vm, e.image, e.iso, e.actor, e.owner, e.message].join(" ").toLowerCase();
  return (!f.vm || e.vm === f.vm)
    && (!f.user || e.actor === f.user || e.owner === f.user)
    && (!f.kind || e.kind === f.kind)
    && (!f.text || words.includes(f.text))
    && (f.from === null || at >= f.from)
    && (f.to === null || at < f.to);
}

/** A time as local "YYYY-MM-DD HH:MM:SS" (the time inputs are local too). */
function local(at) {
  const d = new Date(at);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} `
    + `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** What an event is about: "vm NAME", "image NAME" or "iso NAME". */
const subject = (e) =>
  (e.vm ? `vm ${e.vm}` : e.image ? `image ${e.image}` : e.iso ? `iso ${e.iso}` : "");

/** The table row of event `e`. */
function eventRow(e) {
  const tr = row(String(e.seq), [local(e.at), e.kind, subject(e), e.actor ?? "vmd", e.owner, e.message]);
  tr.firstChild.title = e.at;
  tr.dataset.kind = e.kind;
  if (e.vm) tr.dataset.vm = e.vm;
  return tr;
}

/** The values each choice offers, from the loaded events. */
const choices = { "events-vm": new Set(), "events-user": new Set(), "events-kind": new Set() };

/** Adds what `e` names to the choices; refills a select only when it gains a value. */
function noteChoices(e) {
  const values = { "events-vm": [e.vm], "events-user": [e.actor, e.owner], "events-kind": [e.kind] };
  for (const [id, list] of Object.entries(values)) {
    const known = choices[id];
    const fresh = list.filter((v) => v && !known.has(v));
    if (!fresh.length) continue;
    for (const v of fresh) known.add(v);
    fillSelect($(id), [...known].sort(), 1);
  }
}

/** Redraws the table from the loaded events and the filters. */
export function render() {
  const f = filters();
  const all = [...events.values()].sort((a, b) => a.seq - b.seq);
  const shown = all.filter((e) => matches(e, f));
  $("events-rows").replaceChildren(...shown.map(eventRow));
  $("events-empty").hidden = shown.length > 0;
  $("events-older").hidden = floor === 0;
  counted();
}

/** Says how many rows show, and keeps the newest in view while "Follow" is on. */
function counted() {
  $("events-count").textContent = `${$("events-rows").rows.length} of ${events.size} loaded events`;
  follow();
}

/** Scrolls the newest row into view while "Follow" is on. */
function follow() {
  const box = $("events-scroll");
  if ($("events-follow").checked) box.scrollTop = box.scrollHeight;
}

/** Drops the oldest loaded events (and their rows) past `KEEP`; they stay readable with
 * Load older. Returns whether any went. */
function evict() {
  if (events.size <= KEEP) return false;
  const seqs = [...events.keys()].sort((a, b) => a - b);
  for (const seq of seqs.slice(0, events.size - KEEP)) {
    events.delete(seq);
    floor = seq;
  }
  const rows = $("events-rows");
  while (rows.firstChild && Number(rows.firstChild.dataset.key) <= floor) rows.firstChild.remove();
  $("events-older").hidden = false;
  return true;
}

/** Takes one live event of the shared stream. */
export function onEvent(event) {
  if (events.has(event.seq)) return;
  const inOrder = event.seq > newest;
  add([event]);
  evict();
  if (!inOrder) return render();
  if (matches(event, filters())) {
    $("events-rows").append(eventRow(event));
    $("events-empty").hidden = true;
  }
  counted();
}

/** Wires the filters and reads the recent history. */
export function install() {
  for (const id of ["events-vm", "events-user", "events-kind", "events-from", "events-to"]) {
    $(id).addEventListener("change", render);
  }
  $("events-text").addEventListener("input", render);
  $("events-follow").addEventListener("change", follow);
  $("events-older").addEventListener("click", () => loadOlder().catch(showError));
  loading = loadRecent().then(render, showError);
}

/** Shows vmd's error under the table. */
function showError(err) {
  $("events-error").textContent = err.text || String(err);
}

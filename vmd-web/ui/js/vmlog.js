// The admin's console log viewer: any VM's console log (serial output and vmd's own
// `[vmd …]` lines): its last 64 KiB (`GET /api/v1/vms/NAME/logs`), then followed live
// (`?follow=1`, an SSE stream of appended text, as the guest Logs dialog does) until another
// VM is picked. A text filter keeps only the lines containing it, marked.

import { get, vmPath } from "./api.js";
import { fillSelect } from "./table.js";

const $ = (id) => document.getElementById(id);
/** How much of a log's end is read, and kept while following. */
const TAIL = 65536;
let text = "";
let source = null;
/** Bumped on every pick: a late answer for an earlier pick is dropped. */
let generation = 0;
let vmsTimer = null;

/** Re-reads the choice of VMs (every user's); a failure is shown under the log. */
export async function refreshVms() {
  try {
    const vms = await get("/api/v1/vms?all=1");
    fillSelect($("vmlog-vm"), vms.map((vm) => vm.name).sort(), 1);
  } catch (err) {
    showError(err);
  }
}

/** Re-reads the VMs soon (a burst of events costs one request). */
export function refreshVmsSoon() {
  clearTimeout(vmsTimer);
  vmsTimer = setTimeout(refreshVms, 250);
}

/** Shows the log of VM `name` (nothing for ""), then follows it. */
async function open(name) {
  const mine = ++generation;
  source?.close();
  source = null;
  delete $("vmlog-text").dataset.following;
  text = "";
  showError("");
  render();
  if (!name) return;
  const logs = await get(vmPath(name, `/logs?tail_bytes=${TAIL}`));
  if (mine !== generation) return;
  text = logs.text;
  render();
  source = new EventSource(vmPath(name, "/logs?follow=1"));
  // Marks the log as followed from here on (vmd has subscribed when the stream opens).
  source.onopen = () => { $("vmlog-text").dataset.following = name; };
  source.onmessage = (message) => append(JSON.parse(message.data));
  source.onerror = () => {
    if (source?.readyState === EventSource.CLOSED) showError(`no longer following ${name}`);
  };
}

/** Adds a followed chunk, keeping the last TAIL characters. */
function append(chunk) {
  text = (text + chunk).slice(-TAIL);
  render();
}

/** Draws the log's lines that contain the filter (all without one), the matches marked. */
function render() {
  const pre = $("vmlog-text");
  const needle = $("vmlog-filter").value;
  const lines = text.split("\n");
  const kept = needle ? lines.filter((l) => l.toLowerCase().includes(needle.toLowerCase())) : lines;
  pre.replaceChildren(...(needle ? kept.flatMap((l) => [...marked(l, needle), "\n"]) : [text]));
  $("vmlog-count").textContent = needle ? `${kept.length} of ${lines.length} lines` : "";
  if ($("vmlog-follow").checked) pre.scrollTop = pre.scrollHeight;
}

/** `line` as text and `<mark>` nodes around each case-insensitive occurrence of `needle`. */
function marked(line, needle) {
  const nodes = [];
  const lower = line.toLowerCase();
  const want = needle.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(want); i >= 0; i = lower.indexOf(want, at)) {
    nodes.push(line.slice(at, i));
    const mark = document.createElement("mark");
    mark.textContent = line.slice(i, i + want.length);
    nodes.push(mark);
    at = i + want.length;
  }
  nodes.push(line.slice(at));
  return nodes;
}

/** Shows vmd's error (or clears it). */
function showError(err) {
  $("vmlog-error").textContent = err ? err.text || String(err) : "";
}

/** Wires the VM choice, the filter and Follow (admin.js's refresh reads the VMs). */
export function install() {
  $("vmlog-vm").addEventListener("change", (e) => open(e.target.value).catch(showError));
  $("vmlog-filter").addEventListener("input", render);
  $("vmlog-follow").addEventListener("change", render);
}

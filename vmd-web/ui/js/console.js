// The console page (`/console?vm=NAME`): the VM's screen through noVNC and its serial
// console through xterm.js, each over its WebSocket with a fresh console ticket for every
// (re)connection. Both connect when the page opens; the tabs only switch what is shown.
// When a connection ends, the VM is read again: if it stopped or runs a new QEMU since the
// connection was made, the console is retried on its own, 1, 2, 4, 8 then every 10 s, until
// it connects to the VM's next run. If the same QEMU still runs, vmd detached the client
// (an idle serial console, or an admin taking it over): it waits for Reconnect, so a
// forgotten tab never holds the VM's one serial console for good. A VM that is gone or not
// the caller's (404), or a session that ended (401/403), is not retried. While vmd refuses the
// serial console (another client holds it), a Take over button attaches with `force`: vmd
// tells the other client (vmctl, or another tab, which then shows "detached") and lets go of it.

import { get, post, vmPath } from "./api.js";
import RFB from "../vendor/novnc/core/rfb.js";
import { Terminal } from "../vendor/xterm/xterm.mjs";

const $ = (id) => document.getElementById(id);
const vm = new URLSearchParams(location.search).get("vm") || "";

/** A one-shot ticket of `kind` and the WebSocket URL it opens (with `force`, one that takes
 * the serial console over). */
async function socketUrl(kind, force) {
  const { ticket } = await post(vmPath(vm, "/console-ticket"), { kind });
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const path = kind === "vnc" ? "/vnc" : "/serial";
  const url = `${scheme}://${location.host}${vmPath(vm, path)}?ticket=${encodeURIComponent(ticket)}`;
  return force ? `${url}&force=true` : url;
}

/** Whether vmd refused the serial console's last upgrade (most likely another client holds it). */
let serialRefused = false;

/** Shows the state of one console (`data-state` is what tests wait on; `data-connects`
 * counts the connections made). */
function status(kind, state, text) {
  const el = $(`${kind}-status`);
  el.dataset.state = state;
  if (state === "connected") el.dataset.connects = String(Number(el.dataset.connects || 0) + 1);
  el.textContent = text;
  $(`${kind}-reconnect`).hidden = state === "connected" || state === "connecting";
  if (kind === "serial") $("serial-takeover").hidden = !(serialRefused && state === "waiting");
}

const RETRY_SECS = [1, 2, 4, 8, 10];
/** Per console: the pending retry, how many so far, and the QEMU run (`started_at`) the
 * last connection was made to. */
const retries = {
  vnc: { timer: null, count: 0, run: null },
  serial: { timer: null, count: 0, run: null },
};
const connectors = {};

/** Whether a failed ticket request is worth retrying: not for a VM that is gone or not the
 * caller's, nor for a session that ended. */
const retryable = (err) => ![401, 403, 404].includes(err.status);

/** Shows why `kind` is down and connects it again after the next back-off delay. */
function retryLater(kind, why) {
  const retry = retries[kind];
  clearTimeout(retry.timer);
  const secs = RETRY_SECS[Math.min(retry.count, RETRY_SECS.length - 1)];
  retry.count += 1;
  status(kind, "waiting", `${why}; reconnecting in ${secs} s`);
  retry.timer = setTimeout(() => connectors[kind](), secs * 1000);
}

/** Connects `kind` now (the Reconnect button): the back-off starts over. */
function reconnectNow(kind) {
  clearTimeout(retries[kind].timer);
  retries[kind].count = 0;
  connectors[kind]();
}

/** Shows `err` and retries later if it is worth it. */
function failed(kind, err) {
  if (retryable(err)) retryLater(kind, err.text || String(err));
  else status(kind, "failed", err.text || String(err));
}

/** A ticket's URL for `kind`, or null after showing why there is none (and maybe retrying).
 * Notes which run of the VM it is for. */
async function ticketUrl(kind, force = false) {
  clearTimeout(retries[kind].timer);
  status(kind, "connecting", "connecting…");
  try {
    retries[kind].run = (await get(vmPath(vm))).started_at || null;
    return await socketUrl(kind, force);
  } catch (err) {
    failed(kind, err);
    return null;
  }
}

/** After `kind`'s connection ended (`why`): retry if the VM's run it was made to is over,
 * else wait for the Reconnect button (vmd detached this client). */
async function ended(kind, why) {
  let now;
  try {
    now = await get(vmPath(vm));
  } catch (err) {
    return failed(kind, err);
  }
  if (now.state === "running" && now.started_at && now.started_at === retries[kind].run) {
    return status(kind, "detached", `${why}: detached by vmd (idle, or another client took over)`);
  }
  retryLater(kind, now.state === "running" ? `${why}: the VM restarted` : `${why}: the VM is ${now.state}`);
}

/** Marks `kind` connected and resets its back-off. */
function connected(kind) {
  retries[kind].count = 0;
  status(kind, "connected", "connected");
}

/** Connects noVNC to the VM's screen. */
async function connectVnc() {
  const url = await ticketUrl("vnc");
  if (!url) return;
  const screen = $("vnc-screen");
  screen.replaceChildren();
  const rfb = new RFB(screen, url, { wsProtocols: ["binary"] });
  rfb.scaleViewport = true;
  $("vnc-cad").onclick = () => rfb.sendCtrlAltDel();
  let refused = false;
  rfb.addEventListener("connect", () => {
    connected("vnc");
    $("vnc-cad").disabled = false;
  });
  rfb.addEventListener("disconnect", (e) => {
    $("vnc-cad").disabled = true;
    if (!refused) ended("vnc", e.detail.clean ? "disconnected" : "connection lost");
  });
  rfb.addEventListener("securityfailure", (e) => {
    refused = true;
    status("vnc", "failed", `refused: ${e.detail.reason || e.detail.status}`);
  });
}

const term = new Terminal({ cols: 100, rows: 30, convertEol: false, scrollback: 5000 });
let termOpened = false;
let serial = null;

/** Connects the terminal to the VM's serial console; `force` takes it over from its client. */
async function connectSerial(force = false) {
  const url = await ticketUrl("serial", force);
  if (!url) return;
  const ws = new WebSocket(url, ["binary"]);
  ws.binaryType = "arraybuffer";
  let opened = false;
  ws.onopen = () => {
    opened = true;
    serialRefused = false;
    connected("serial");
  };
  ws.onmessage = (e) => term.write(new Uint8Array(e.data));
  // Never opened: vmd refused the upgrade, e.g. 423 while another client holds the console
  // (retried, so the tab attaches once the other one closes; Take over does not wait).
  ws.onclose = () => {
    serialRefused = !opened;
    if (opened) ended("serial", "disconnected");
    else retryLater("serial", "refused (another console open?)");
  };
  serial = ws;
}

/** The Take over button: attaches now, displacing the serial console's client. */
function takeOver() {
  clearTimeout(retries.serial.timer);
  retries.serial.count = 0;
  connectSerial(true);
}

term.onData((keys) => {
  if (serial?.readyState === WebSocket.OPEN) serial.send(keys);
});

/** Shows the panel of `kind` ("vnc" or "serial"). */
function select(kind) {
  for (const k of ["vnc", "serial"]) {
    const on = k === kind;
    $(`tab-${k}`).setAttribute("aria-selected", String(on));
    $(`tab-${k}`).tabIndex = on ? 0 : -1;
    $(`panel-${k}`).hidden = !on;
  }
  if (kind === "serial" && !termOpened) {
    term.open($("serial-term"));
    termOpened = true;
  }
  if (kind === "serial") term.focus();
}

/** Arrow keys move between the tabs (the WAI-ARIA tabs pattern). */
function onTabKey(event) {
  if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
  const next = event.target.id === "tab-vnc" ? "serial" : "vnc";
  select(next);
  $(`tab-${next}`).focus();
}

function main() {
  document.title = `${vm} — console`;
  $("console-title").textContent = `Console of ${vm}`;
  $("tab-vnc").addEventListener("click", () => select("vnc"));
  $("tab-serial").addEventListener("click", () => select("serial"));
  for (const tab of ["tab-vnc", "tab-serial"]) $(tab).addEventListener("keydown", onTabKey);
  connectors.vnc = connectVnc;
  connectors.serial = connectSerial;
  $("vnc-reconnect").addEventListener("click", () => reconnectNow("vnc"));
  $("serial-reconnect").addEventListener("click", () => reconnectNow("serial"));
  $("serial-takeover").addEventListener("click", takeOver);
  connectVnc();
  connectSerial();
}

main();

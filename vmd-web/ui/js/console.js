// The console page (`/console?vm=NAME`): the VM's screen through noVNC and its serial
// console through xterm.js, each over its WebSocket with a fresh console ticket for every
// (re)connection. Both connect when the page opens; the tabs only switch what is shown.

import { post, vmPath } from "./api.js";
import RFB from "../vendor/novnc/core/rfb.js";
import { Terminal } from "../vendor/xterm/xterm.mjs";

const $ = (id) => document.getElementById(id);
const vm = new URLSearchParams(location.search).get("vm") || "";

/** A one-shot ticket of `kind` and the WebSocket URL it opens. */
async function socketUrl(kind) {
  const { ticket } = await post(vmPath(vm, "/console-ticket"), { kind });
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const path = kind === "vnc" ? "/vnc" : "/serial";
  return `${scheme}://${location.host}${vmPath(vm, path)}?ticket=${encodeURIComponent(ticket)}`;
}

/** Shows the state of one console (`data-state` is what tests wait on). */
function status(kind, state, text) {
  const el = $(`${kind}-status`);
  el.dataset.state = state;
  el.textContent = text;
  $(`${kind}-reconnect`).hidden = state === "connected" || state === "connecting";
}

/** Connects noVNC to the VM's screen. */
async function connectVnc() {
  status("vnc", "connecting", "connecting…");
  let url;
  try {
    url = await socketUrl("vnc");
  } catch (err) {
    return status("vnc", "failed", err.text || String(err));
  }
  const screen = $("vnc-screen");
  screen.replaceChildren();
  const rfb = new RFB(screen, url, { wsProtocols: ["binary"] });
  rfb.scaleViewport = true;
  $("vnc-cad").onclick = () => rfb.sendCtrlAltDel();
  rfb.addEventListener("connect", () => {
    status("vnc", "connected", "connected");
    $("vnc-cad").disabled = false;
  });
  rfb.addEventListener("disconnect", (e) => {
    $("vnc-cad").disabled = true;
    status("vnc", "disconnected", e.detail.clean ? "disconnected" : "connection lost");
  });
  rfb.addEventListener("securityfailure", (e) =>
    status("vnc", "failed", `refused: ${e.detail.reason || e.detail.status}`));
}

const term = new Terminal({ cols: 100, rows: 30, convertEol: false, scrollback: 5000 });
let termOpened = false;
let serial = null;

/** Connects the terminal to the VM's serial console. */
async function connectSerial() {
  status("serial", "connecting", "connecting…");
  let url;
  try {
    url = await socketUrl("serial");
  } catch (err) {
    return status("serial", "failed", err.text || String(err));
  }
  const ws = new WebSocket(url, ["binary"]);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => status("serial", "connected", "connected");
  ws.onmessage = (e) => term.write(new Uint8Array(e.data));
  ws.onclose = () => status("serial", "disconnected", "disconnected");
  serial = ws;
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
  $("vnc-reconnect").addEventListener("click", connectVnc);
  $("serial-reconnect").addEventListener("click", connectSerial);
  connectVnc();
  connectSerial();
}

main();

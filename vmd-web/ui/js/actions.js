// What each menu item does: one REST call (after a confirmation for wipe and delete), or
// opening the console tab, the logs or the extension dialog.

import { del, get, post, vmPath } from "./api.js";
import { askExtension, confirmAction, showLogs } from "./dialogs.js";

const live = (s) => ["running", "paused", "starting"].includes(s);
const down = (s) => s === "stopped" || s === "crashed";
const any = () => true;

/** The menu entries: id, label, in which states it applies, whether it destroys data. */
export const ENTRIES = [
  { id: "start", label: "Start", allowed: down },
  { id: "stop", label: "Stop", allowed: live },
  { id: "force-stop", label: "Force stop", allowed: (s) => live(s) || s === "stopping" },
  { id: "reboot", label: "Reboot", allowed: (s) => s === "running" },
  { id: "pause", label: "Pause", allowed: (s) => s === "running" },
  { id: "resume", label: "Resume", allowed: (s) => s === "paused" },
  { id: "console", label: "Open console", allowed: (s) => s === "running" || s === "paused" },
  { id: "logs", label: "Logs", allowed: any },
  { id: "extend", label: "Extend lifetime", allowed: any },
  { id: "wipe", label: "Wipe disk…", allowed: down, danger: true },
  { id: "delete", label: "Delete…", allowed: any, danger: true },
];

/** Runs action `id` on VM `name`; resolves to the updated Vm, "removed", or null. */
export async function run(id, name) {
  switch (id) {
    case "start": return post(vmPath(name, "/start"));
    case "stop": return post(vmPath(name, "/stop"), {});
    case "force-stop": return post(vmPath(name, "/stop"), { force: true });
    case "reboot": return post(vmPath(name, "/reboot"));
    case "pause": return post(vmPath(name, "/pause"));
    case "resume": return post(vmPath(name, "/resume"));
    case "console": return openConsole(name);
    case "logs": return logs(name);
    case "extend": return extend(name);
    case "wipe": return wipe(name);
    case "delete": return remove(name);
    default: return null;
  }
}

/** Opens the console of `name` in a new tab. */
function openConsole(name) {
  window.open(`/console?vm=${encodeURIComponent(name)}`, "_blank", "noopener");
  return null;
}

async function logs(name) {
  const text = (await get(vmPath(name, "/logs?tail_bytes=65536"))).text;
  await showLogs(name, text, vmPath(name, "/logs?follow=1"));
  return null;
}

async function extend(name) {
  const secs = await askExtension();
  return secs ? post(vmPath(name, "/extend"), { by_secs: secs }) : null;
}

async function wipe(name) {
  const ok = await confirmAction(`Wipe the disk of ${name}? Everything written to it is lost.`, "Wipe");
  return ok ? post(vmPath(name, "/wipe")) : null;
}

async function remove(name) {
  const ok = await confirmAction(`Delete ${name} and its disk? This cannot be undone.`, "Delete");
  if (!ok) return null;
  await del(vmPath(name));
  return "removed";
}

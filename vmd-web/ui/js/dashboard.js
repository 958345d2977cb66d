// The guest dashboard: sidebar, create form, quota meters and VM cards, kept live by the
// event stream. The VM list is read once per (re)connection of the stream; afterwards each
// event naming a VM re-reads that VM, and quota meters are re-read shortly after.

import { ApiError, get, vmPath } from "./api.js";
import * as actions from "./actions.js";
import * as cards from "./cards.js";
import { applyQuota, installCreateForm, renderImages } from "./create.js";
import { subscribe } from "./events.js";
import { installMenu, openMenu } from "./menu.js";
import { renderMeters } from "./meters.js";

const $ = (id) => document.getElementById(id);
const vms = new Map();
/** Per VM, the number of the latest read or change: an older answer arriving late is
 * dropped, so a slow GET never brings back an older state or a deleted VM's card. */
const generation = new Map();
let meTimer = null;
/** The caller: an admin's event stream also names other users' VMs, not shown here. */
let me = null;

/** Starts a new generation for VM `name`; returns a check that it is still the latest. */
function newGeneration(name) {
  const mine = (generation.get(name) || 0) + 1;
  generation.set(name, mine);
  return () => generation.get(name) === mine;
}

/** Shows a short message in the status area. */
export function toast(text, isError = false) {
  const el = $("toast");
  el.textContent = text;
  el.classList.toggle("error", isError);
  el.classList.add("shown");
  clearTimeout(el.hideTimer);
  el.hideTimer = setTimeout(() => el.classList.remove("shown"), isError ? 8000 : 3000);
}

/** Shows or updates `vm` (one of the caller's own). */
function show(vm) {
  if (vm.owner !== me.user) return;
  vms.set(vm.name, vm);
  cards.upsert($("vm-cards"), vm, menuFromButton);
  $("vms-empty").hidden = true;
}

/** Forgets VM `name`. */
function drop(name) {
  newGeneration(name);
  vms.delete(name);
  cards.remove($("vm-cards"), name);
  $("vms-empty").hidden = vms.size > 0;
}

/** Re-reads VM `name` (gone: its card goes). */
async function refreshVm(name) {
  const latest = newGeneration(name);
  try {
    const vm = await get(vmPath(name));
    if (latest()) show(vm);
  } catch (err) {
    if (latest() && err instanceof ApiError && err.status === 404) drop(name);
  }
}

/** Re-reads the whole list. */
async function refreshAll() {
  const checks = new Map([...generation.keys()].map((name) => [name, newGeneration(name)]));
  const list = await get("/api/v1/vms");
  // A VM first met during the read is current only if nothing about it happened meanwhile.
  const current = (name) => (checks.has(name) ? checks.get(name)() : !generation.has(name));
  for (const name of [...vms.keys()]) {
    if (current(name) && !list.some((vm) => vm.name === name)) drop(name);
  }
  list.filter((vm) => current(vm.name)).forEach(show);
  $("vms-empty").hidden = vms.size > 0;
}

/** Re-reads quota and usage soon (several events in a burst cost one request). */
function refreshMeSoon() {
  clearTimeout(meTimer);
  meTimer = setTimeout(async () => {
    const me = await get("/api/v1/me");
    renderMeters($("meters"), me);
  }, 250);
}

/** Reacts to one event of vmd's stream. */
function onEvent(event) {
  if (event.vm) {
    if (event.kind === "vm_removed") drop(event.vm);
    else refreshVm(event.vm);
    refreshMeSoon();
  } else if (event.image) {
    get("/api/v1/images").then(renderImages);
    // Creating or sealing a base adds or removes its install VM with only an image event.
    refreshAll().catch((err) => toast(err.text || String(err), true));
  }
}

/** Runs a picked menu action and shows its outcome. */
async function pick(id, name) {
  const latest = newGeneration(name);
  try {
    const result = await actions.run(id, name);
    if (result === "removed") {
      drop(name);
      toast(`${name} deleted`);
    } else if (result && latest()) {
      show(result);
    }
    if (id === "wipe" && result) toast(`${name}: disk wiped`);
  } catch (err) {
    // The session ended (expired, logged out elsewhere): the reload shows the login form.
    if (err instanceof ApiError && err.status === 401) location.reload();
    else toast(`${name}: ${err.text || err}`, true);
  }
}

function menuFromButton(name, button) {
  const rect = button.getBoundingClientRect();
  openMenu(vms.get(name), actions.ENTRIES, pick, rect.left + scrollX, rect.bottom + scrollY, button);
}

function menuFromContext(event) {
  const card = event.target.closest(".card");
  if (!card) return;
  event.preventDefault();
  const button = card.querySelector(".menu-button");
  openMenu(vms.get(card.dataset.vm), actions.ENTRIES, pick, event.pageX, event.pageY, button);
}

/** The event stream was refused: back to the login page if the session ended. */
async function streamClosed() {
  try {
    await get("/api/v1/me");
    toast("live updates stopped: reload the page", true);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) location.reload();
    else toast(`live updates stopped: ${err.text || err}`, true);
  }
}

/** Starts the dashboard for the caller `who` (`GET /api/v1/me`); `also.onEvent(event)` and
 * `also.onOpen()` share the event stream (the admin view). */
export async function startDashboard(who, also = {}) {
  me = who;
  $("dashboard-view").hidden = false;
  renderMeters($("meters"), me);
  applyQuota(me);
  installMenu();
  installCreateForm((vm) => {
    show(vm);
    toast(`${vm.name} created`);
    refreshMeSoon();
  });
  $("vm-cards").addEventListener("contextmenu", menuFromContext);
  renderImages(await get("/api/v1/images"));
  await refreshAll();
  const failed = (err) => toast(err.text || String(err), true);
  const opened = () => {
    refreshAll().catch(failed);
    also.onOpen?.().catch(failed);
  };
  subscribe((event) => {
    onEvent(event);
    also.onEvent?.(event);
  }, opened, streamClosed);
  setInterval(() => cards.tick($("vm-cards")), 1000);
}

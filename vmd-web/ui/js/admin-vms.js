// The admin's table of every VM (`GET /api/v1/vms?all=1`): owner, state, resources, age and
// expiry, filtered by user, state and image in the page, with the same ⋮ menu and actions as
// the guest cards (menu.js, actions.js). Kept live by the shared event stream.

import { ApiError, get, vmPath } from "./api.js";
import * as actions from "./actions.js";
import { toast } from "./dashboard.js";
import { bytes, duration, mib } from "./format.js";
import { openMenu } from "./menu.js";
import { button, fillSelect, row, when } from "./table.js";

const $ = (id) => document.getElementById(id);
const STATES = ["running", "starting", "stopping", "paused", "stopped", "crashed"];
const vms = new Map();
const generation = new Map();
let users = [];
let onCount = () => {};

/** Starts a new generation for `name`; returns a check that it is still the latest. */
function newGeneration(name) {
  const mine = (generation.get(name) || 0) + 1;
  generation.set(name, mine);
  return () => generation.get(name) === mine;
}

/** Whether `vm` passes the three filters. */
function matches(vm) {
  const want = (id, value) => !$(id).value || $(id).value === value;
  return want("filter-user", vm.owner) && want("filter-state", vm.state) && want("filter-image", vm.image);
}

/** The table row of `vm`. */
function vmRow(vm) {
  const age = duration((Date.now() - Date.parse(vm.created_at)) / 1000);
  const menu = button("⋮", () => openMenu(vm, actions.ENTRIES, pick, ...below(menu), menu), "menu-button");
  menu.setAttribute("aria-haspopup", "menu");
  menu.setAttribute("aria-label", `Actions for ${vm.name}`);
  const state = document.createElement("span");
  state.className = `badge state-${vm.state}`;
  state.textContent = vm.state;
  if (vm.reason) state.title = vm.reason;
  const tr = row(vm.name, [
    vm.name, vm.owner, state, vm.image,
    `${vm.cpus} vCPU · ${mib(vm.memory_mib)} · ${bytes(vm.disk_bytes)} (${bytes(vm.disk_usage_bytes)} used)`,
    age, vm.expires_at ? when(vm.expires_at) : "never", menu,
  ]);
  tr.dataset.owner = vm.owner;
  tr.dataset.state = vm.state;
  return tr;
}

/** Page position just below `el`. */
const below = (el) => {
  const rect = el.getBoundingClientRect();
  return [rect.left + scrollX, rect.bottom + scrollY];
};

/** Redraws the table and the filters' choices, and reports the counts. */
export function render() {
  const all = [...vms.values()].sort((a, b) => a.name.localeCompare(b.name));
  const shown = all.filter(matches);
  $("allvms-rows").replaceChildren(...shown.map(vmRow));
  $("allvms-empty").hidden = shown.length > 0;
  const owners = new Set([...users, ...all.map((vm) => vm.owner)]);
  fillSelect($("filter-user"), [...owners].sort(), 1);
  fillSelect($("filter-image"), [...new Set(all.map((vm) => vm.image))].sort(), 1);
  fillSelect($("publish-vm"), all.filter((vm) => vm.state === "stopped").map((vm) => vm.name));
  onCount({ vms: all.length, running: all.filter((vm) => vm.state === "running").length });
}

/** Runs a menu action on `name` and shows its outcome. */
async function pick(id, name) {
  const latest = newGeneration(name);
  try {
    const result = await actions.run(id, name);
    if (result === "removed") {
      vms.delete(name);
      toast(`${name} deleted`);
    } else if (result && result.name && latest()) {
      vms.set(name, result);
    }
    render();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) location.reload();
    else toast(`${name}: ${err.text || err}`, true);
  }
}

/** Re-reads every VM. */
export async function refreshAll() {
  const list = await get("/api/v1/vms?all=1");
  vms.clear();
  for (const vm of list) vms.set(vm.name, vm);
  render();
}

/** Reacts to an event naming a VM. */
export async function onVmEvent(event) {
  const name = event.vm;
  const latest = newGeneration(name);
  if (event.kind === "vm_removed") {
    vms.delete(name);
    return render();
  }
  try {
    const vm = await get(vmPath(name));
    if (latest()) vms.set(name, vm);
  } catch (err) {
    if (!(latest() && err instanceof ApiError && err.status === 404)) return;
    vms.delete(name);
  }
  render();
}

/** The user names for the user filter. */
export function setUsers(names) {
  users = names;
  render();
}

/** Shows only `owner`'s VMs (the other filters cleared) and moves focus to the table's
 * user filter, so the admin acts on them with the rows' ⋮ menus. */
export function showOwner(owner) {
  if (!users.includes(owner)) users = [...users, owner];
  render();
  $("filter-user").value = owner;
  $("filter-state").value = "";
  $("filter-image").value = "";
  render();
  $("allvms-heading").scrollIntoView({ block: "start" });
  $("filter-user").focus({ preventScroll: true });
}

/** Wires the filters; `count({vms, running})` hears the counts. */
export function install(count) {
  onCount = count;
  fillSelect($("filter-state"), STATES, 1);
  for (const id of ["filter-user", "filter-state", "filter-image"]) {
    $(id).addEventListener("change", render);
  }
  setInterval(render, 30000);
}

// The admin view (role admin): overview, all VMs, ISOs, base images, users and logs. Switched to
// from the top bar's nav; it shares the dashboard's event stream (`onEvent`, `onOpen`),
// re-reading the list an event concerns.

import { get } from "./api.js";
import * as allVms from "./admin-vms.js";
import * as images from "./images.js";
import * as isos from "./isos.js";
import * as logs from "./logs.js";
import * as users from "./users.js";
import * as vmlog from "./vmlog.js";
import { bytes } from "./format.js";

const $ = (id) => document.getElementById(id);
const counts = { isos: 0, vms: 0, running: 0, users: 0 };
let systemTimer = null;
let allTimer = null;
let usersTimer = null;

/** Shows view `id` (dashboard-view or admin-view) and marks its nav button. */
function showView(id) {
  for (const b of $("view-nav").querySelectorAll("button")) {
    const on = b.dataset.view === id;
    $(b.dataset.view).hidden = !on;
    if (on) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  history.replaceState(null, "", id === "admin-view" ? "#admin" : location.pathname);
}

/** One `<div><dt/><dd/></div>` of the overview; `key` names the `<dd>` (data-stat). */
function stat(key, label, value) {
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.dataset.stat = key;
  dd.textContent = value;
  const div = document.createElement("div");
  div.append(dt, dd);
  return div;
}

/** The host's CPU, load and memory rows (none from a vmd older than API 2.2). */
function hostStats(h) {
  if (!h) return [];
  const used = h.memory_total_bytes - h.memory_available_bytes;
  return [
    stat("host-cpu", "Host CPU", `${h.cpus} CPUs, ${Math.round(h.cpu_busy_percent)}% busy`),
    stat("host-load", "Host load (1 / 5 / 15 min)",
      [h.load_1, h.load_5, h.load_15].map((l) => l.toFixed(2)).join(" / ")),
    stat("host-memory", "Host memory",
      `${bytes(used)} used of ${bytes(h.memory_total_bytes)}`),
  ];
}

/** Renders the overview from `GET /api/v1/system` and the lists' counts. */
function renderOverview(sys) {
  const d = sys.disk;
  const free = `${bytes(d.free_bytes)}${d.low ? " (below the floor!)" : ""}`;
  $("overview").replaceChildren(
    stat("isos", "ISOs", String(counts.isos)),
    stat("images", "Base images", String(sys.image_count)),
    stat("vms", "VMs (running / total)", `${counts.running} / ${sys.vm_count}`),
    stat("users", "Users", String(counts.users)),
    stat("images-bytes", "Storage: bases", bytes(d.images_bytes)),
    stat("overlays-bytes", "Storage: overlays", bytes(d.overlays_bytes)),
    stat("free-bytes", "Free on the state disk", free),
    stat("floor-bytes", "Free-space floor", bytes(d.floor_bytes)),
    ...hostStats(sys.host),
    stat("accelerator", "Accelerator", `${sys.accelerator.name} (${sys.accelerator.reason})`),
    stat("daemon", "vmd", `${sys.daemon_version}, up ${Math.floor(sys.uptime_secs / 60)} min`),
    stat("issues", "Consistency issues at start-up", issues(sys.issues)),
  );
}

/** SystemInfo's consistency issues as "none" or "kind name, …". */
const issues = (list) => list.map((i) => `${i.kind.replace(/_/g, " ")} ${i.name}`).join(", ") || "none";

/** Re-reads the overview soon (a burst of events costs one request). */
function refreshOverviewSoon() {
  clearTimeout(systemTimer);
  systemTimer = setTimeout(async () => renderOverview(await get("/api/v1/system")), 250);
}

/** Records a list's new count (from admin-vms, isos, users) and refreshes the overview. */
export function counted(changes) {
  Object.assign(counts, changes);
  refreshOverviewSoon();
}

/** Reads and shows the users, and hands their names to the VM filter. */
async function refreshUsers() {
  const names = await users.refresh();
  allVms.setUsers(names);
  counted({ users: names.length });
}

/** Re-reads the users soon (their usage follows VM events). */
function refreshUsersSoon() {
  clearTimeout(usersTimer);
  usersTimer = setTimeout(() => refreshUsers().catch(() => {}), 250);
}

/** Re-reads everything the admin view shows. */
export async function refreshAdmin() {
  await Promise.all([allVms.refreshAll(), isos.refresh(), images.refresh(), refreshUsers(),
    logs.catchUp(), vmlog.refreshVms()]);
}

/** Re-reads everything soon: image and ISO events change several lists at once (creating
 * a base adds its install VM and uses an ISO, with one `image_*` event). */
function refreshAdminSoon() {
  clearTimeout(allTimer);
  allTimer = setTimeout(() => refreshAdmin().catch(() => {}), 250);
}

/** Routes one event of the shared stream to the lists it concerns. */
export function onAdminEvent(event) {
  if (event.image || event.iso) refreshAdminSoon();
  else if (event.vm) allVms.onVmEvent(event);
  if (event.vm) images.refreshSoon();
  if (event.vm || event.kind.startsWith("user")) refreshUsersSoon();
  refreshOverviewSoon();
  routeToLogs(event);
}

/** Hands `event` to the Logs panel: the event log, and the console log's VM choice. */
function routeToLogs(event) {
  logs.onEvent(event);
  if (event.kind === "vm_created" || event.kind === "vm_removed" || event.image) vmlog.refreshVmsSoon();
}

/** Shows the nav and builds the admin view for admin `me`. */
export async function startAdmin(me) {
  $("view-nav").hidden = false;
  for (const b of $("view-nav").querySelectorAll("button")) {
    b.addEventListener("click", () => showView(b.dataset.view));
  }
  allVms.install(counted);
  isos.install(counted);
  images.install();
  users.install();
  logs.install();
  vmlog.install();
  await refreshAdmin();
}

/** Opens the admin view if the address asks for it (`/#admin`). */
export function viewFromAddress() {
  if (location.hash === "#admin") showView("admin-view");
}

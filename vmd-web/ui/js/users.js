// The admin's users: the list with role and usage against quota (`GET /api/v1/users`),
// sortable by its column headers; add (`POST /api/v1/users`, UserAdd: name, admin, optional
// password); role (`PATCH /api/v1/users/NAME` {role}) and quota overrides (same route, in a
// dialog); a new password typed twice (`POST /api/v1/users/NAME/password`); the user's
// tokens and sessions (tokens.js); their VMs in the All VMs table; delete (`DELETE
// /api/v1/users/NAME`: while they own VMs or images vmd refuses, its words are shown and
// "Delete with everything" offered, confirmed again, as `?force=1`).

import { del, get, post, request } from "./api.js";
import { showOwner } from "./admin-vms.js";
import { toast } from "./dashboard.js";
import { askPassword, askQuota, confirmAction } from "./dialogs.js";
import { bytes } from "./format.js";
import { button, group, row } from "./table.js";
import { showTokens } from "./tokens.js";

const $ = (id) => document.getElementById(id);
const limit = (used, max, fmt = String) => `${fmt(used)} / ${max == null ? "∞" : fmt(max)}`;
const userPath = (name, rest = "") => `/api/v1/users/${encodeURIComponent(name)}${rest}`;
const ROLES = ["user", "admin"];
const count = (n, what) => `${n} ${what}${n === 1 ? "" : "s"}`;

/** The sort keys of the table's columns (`th[data-sort]`). */
const SORT_KEYS = {
  name: (u) => u.name,
  role: (u) => u.role,
  vms: (u) => u.usage.vms,
  vcpus: (u) => u.usage.vcpus,
  memory: (u) => u.usage.memory_mib,
  disk: (u) => u.usage.disk_bytes,
};
const sorting = { key: "name", descending: false };
let shown = [];
let forceTarget = null;

/** A row action button named `act` (kept focused across redraws), `name` its accessible
 * name. */
function action(act, label, name, onClick, className) {
  const b = button(label, onClick, className);
  b.dataset.act = act;
  b.setAttribute("aria-label", name);
  return b;
}

/** The role `<select>` of user `u`. */
function roleSelect(u) {
  const select = document.createElement("select");
  select.dataset.act = "role";
  select.setAttribute("aria-label", `Role of ${u.name}`);
  select.append(...ROLES.map((r) => new Option(r, r)));
  select.value = u.role;
  select.addEventListener("change", () => setRole(u.name, select.value));
  return select;
}

/** The table row of user `u`. */
function userRow(u) {
  const tr = row(u.name, [
    u.name, roleSelect(u), limit(u.usage.vms, u.quota.max_vms),
    limit(u.usage.vcpus, u.quota.max_vcpus),
    limit(u.usage.memory_mib, u.quota.max_memory_mib, (m) => bytes(m * 1048576)),
    limit(u.usage.disk_bytes, u.quota.max_disk_bytes, bytes),
    group(
      action("quota", "Quota…", `Quota of ${u.name}`, () => editQuota(u)),
      action("password", "Password…", `New password for ${u.name}`, () => resetPassword(u.name)),
      action("tokens", "Tokens…", `Tokens and sessions of ${u.name}`, () => showTokens(u.name)),
      action("vms", "VMs", `VMs of ${u.name}`, () => showOwner(u.name)),
      action("delete", "Delete", `Delete ${u.name}`, () => remove(u.name), "danger"),
    ),
  ]);
  tr.dataset.role = u.role;
  return tr;
}

/** `shown` in the chosen order (ties by name). */
function sorted() {
  const key = SORT_KEYS[sorting.key];
  const sign = sorting.descending ? -1 : 1;
  const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  return [...shown].sort((a, b) => sign * cmp(key(a), key(b)) || a.name.localeCompare(b.name));
}

/** Draws the rows, putting focus back on the control it was on (by row and action). */
function draw() {
  const el = document.activeElement;
  const tr = el?.closest?.("#user-rows tr");
  const focus = tr && el.dataset.act ? [tr.dataset.key, el.dataset.act] : null;
  $("user-rows").replaceChildren(...sorted().map(userRow));
  for (const th of $("user-table").querySelectorAll("th[data-sort]")) {
    const on = th.dataset.sort === sorting.key;
    if (on) th.setAttribute("aria-sort", sorting.descending ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  }
  if (!focus) return;
  const again = [...$("user-rows").rows].find((r) => r.dataset.key === focus[0]);
  again?.querySelector(`[data-act="${focus[1]}"]`)?.focus();
}

/** Reads and shows the users; resolves to their names. */
export async function refresh() {
  shown = await get("/api/v1/users");
  draw();
  return shown.map((u) => u.name);
}

/** Runs `call` for `what`, toasting `done` (if any) after; vmd's refusal is shown under
 * the form and handed to `refused`. Resolves to whether it succeeded. */
async function act(what, call, done, refused = () => {}) {
  $("user-error").textContent = "";
  offerForce(null);
  try {
    await call();
    if (done) toast(done);
    await refresh();
    return true;
  } catch (err) {
    $("user-error").textContent = `${what}: ${err.text || err}`;
    refused(err);
    return false;
  }
}

/** What changing a user's role to `role` means, for its confirmation. */
const ROLE_MEANS = {
  admin: "Admins see and change every user's VMs, images, ISOs and accounts.",
  user: "They keep their own VMs and lose access to everyone else's.",
};

/** Sets `name`'s role once confirmed; a cancel or a refusal redraws the table (the select
 * shows the role again). */
async function setRole(name, role) {
  const becomes = role === "admin" ? "an admin" : "a user";
  if (!(await confirmAction(`Make ${name} ${becomes}? ${ROLE_MEANS[role]}`, `Make ${role}`))) {
    return draw();
  }
  const call = () => request("PATCH", userPath(name), { role });
  await act(`role of ${name}`, call, `${name} is now ${role}`, () => refresh().catch(() => {}));
}

/** Asks for a new password of `name`, typed twice, and sets it. */
async function resetPassword(name) {
  const password = await askPassword(name);
  if (password === null) return;
  const call = () => post(userPath(name, "/password"), { password });
  await act(`password of ${name}`, call, `password of ${name} changed`);
}

/** Offers "Delete with everything" after vmd's `in_use` refusal to remove `target.name`
 * (`target.said`: vmd's message); null hides the offer. */
function offerForce(target) {
  forceTarget = target;
  $("user-force").hidden = !target;
  if (target) $("user-force-delete").textContent = `Delete ${target.name} with everything…`;
}

async function remove(name) {
  if (!(await confirmAction(`Delete the user ${name}?`, "Delete"))) return;
  const refused = (err) => {
    if (err.kind === "in_use") offerForce({ name, said: err.message });
  };
  await act(`delete ${name}`, () => del(userPath(name)), `${name} deleted`, refused);
}

/** Removes the user of the offer with `?force=1`, after a confirmation naming what goes. */
async function removeWithEverything() {
  const { name, said } = forceTarget;
  const text = `${said}. Delete ${name} with all of it? Their VMs are stopped and deleted with `
    + "their disks, their private images deleted and their tokens and sessions revoked; "
    + "their public images and ISOs pass to you. This cannot be undone.";
  if (!(await confirmAction(text, "Delete with everything"))) return;
  const call = async () => {
    const gone = await del(userPath(name, "?force=1"));
    toast(`${name} deleted with ${count(gone.vms.length, "VM")} and ${count(gone.images.length, "image")}`);
  };
  await act(`delete ${name} with everything`, call, null);
}

/** Asks for user `u`'s quota overrides and sends them (`PATCH /api/v1/users/NAME`). */
async function editQuota(u) {
  const body = await askQuota(u.quota_overrides);
  if (!body) return;
  const call = () => request("PATCH", userPath(u.name), body);
  await act(`quota of ${u.name}`, call, `quota of ${u.name} saved`);
}

/** Submits the add form. */
async function add(event) {
  event.preventDefault();
  const body = { name: $("user-name").value.trim(), admin: $("user-admin").checked };
  if ($("user-password").value) body.password = $("user-password").value;
  if (await act(`add ${body.name}`, () => post("/api/v1/users", body), `${body.name} added`)) {
    $("user-form").reset();
  }
}

/** Sorts by column `key`, or reverses the order when it is already the key. */
function sortBy(key) {
  sorting.descending = sorting.key === key ? !sorting.descending : false;
  sorting.key = key;
  draw();
}

/** Wires the add form, the sortable headers and the force offer. */
export function install() {
  $("user-form").addEventListener("submit", add);
  $("user-force-delete").addEventListener("click", removeWithEverything);
  for (const th of $("user-table").querySelectorAll("th[data-sort]")) {
    th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.sort));
  }
}

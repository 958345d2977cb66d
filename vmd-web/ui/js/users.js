// The admin's users: the list with role and usage against quota (`GET /api/v1/users`), add
// (`POST /api/v1/users`, UserAdd: name, admin, optional password) and delete (`DELETE
// /api/v1/users/NAME`; vmd refuses while the user owns VMs or images, and that is shown),
// quota overrides (`PATCH /api/v1/users/NAME`, in a dialog).

import { del, get, post, request } from "./api.js";
import { toast } from "./dashboard.js";
import { askQuota, confirmAction } from "./dialogs.js";
import { bytes } from "./format.js";
import { button, group, row } from "./table.js";

const $ = (id) => document.getElementById(id);
const limit = (used, max, fmt = String) => `${fmt(used)} / ${max == null ? "∞" : fmt(max)}`;

/** The table row of user `u`. */
function userRow(u) {
  return row(u.name, [
    u.name, u.role, limit(u.usage.vms, u.quota.max_vms), limit(u.usage.vcpus, u.quota.max_vcpus),
    limit(u.usage.memory_mib, u.quota.max_memory_mib, (m) => bytes(m * 1048576)),
    limit(u.usage.disk_bytes, u.quota.max_disk_bytes, bytes),
    group(button("Quota…", () => editQuota(u)), button("Delete", () => remove(u.name), "danger")),
  ]);
}

/** Reads and shows the users; resolves to their names. */
export async function refresh() {
  const users = await get("/api/v1/users");
  $("user-rows").replaceChildren(...users.map(userRow));
  return users.map((u) => u.name);
}

/** Runs `call` for `what`; vmd's refusal is shown under the form. */
async function act(what, call, done) {
  $("user-error").textContent = "";
  try {
    await call();
    toast(done);
    await refresh();
    return true;
  } catch (err) {
    $("user-error").textContent = `${what}: ${err.text || err}`;
    return false;
  }
}

async function remove(name) {
  if (!(await confirmAction(`Delete the user ${name}?`, "Delete"))) return;
  await act(`delete ${name}`, () => del(`/api/v1/users/${encodeURIComponent(name)}`), `${name} deleted`);
}

/** Asks for user `u`'s quota overrides and sends them (`PATCH /api/v1/users/NAME`). */
async function editQuota(u) {
  const body = await askQuota(u.quota_overrides);
  if (!body) return;
  const path = `/api/v1/users/${encodeURIComponent(u.name)}`;
  await act(`quota of ${u.name}`, () => request("PATCH", path, body), `quota of ${u.name} saved`);
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

/** Wires the add form. */
export function install() {
  $("user-form").addEventListener("submit", add);
}

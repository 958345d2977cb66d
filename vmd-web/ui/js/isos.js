// The admin's ISO library: the list (`GET /api/v1/isos`), delete (vmd's dependency message
// is shown), and uploads by drag-and-drop or file input (upload.js) to
// `POST /api/v1/isos?name=NAME`.

import { del, get } from "./api.js";
import { toast } from "./dashboard.js";
import { confirmAction } from "./dialogs.js";
import { bytes } from "./format.js";
import { button, fillSelect, group, row, when } from "./table.js";
import { installUpload } from "./upload.js";

const $ = (id) => document.getElementById(id);
let onCount = () => {};

/** Reads and shows the ISOs (and the image form's ISO choices). */
export async function refresh() {
  const list = await get("/api/v1/isos");
  $("iso-rows").replaceChildren(...list.map((iso) => row(iso.name, [
    iso.name, bytes(iso.size_bytes), when(iso.created_at), code(iso.sha256),
    iso.used_by.join(", ") || "—", group(button("Delete", () => remove(iso.name), "danger")),
  ])));
  fillSelect($("image-iso"), list.map((iso) => iso.name));
  onCount({ isos: list.length });
}

/** `text` in a <code>. */
function code(text) {
  const el = document.createElement("code");
  el.className = "hash";
  el.textContent = text;
  return el;
}

/** Deletes ISO `name` after a confirmation; vmd's refusal (in use) is shown. */
async function remove(name) {
  if (!(await confirmAction(`Delete the ISO ${name}?`, "Delete"))) return;
  try {
    await del(`/api/v1/isos/${encodeURIComponent(name)}`);
    toast(`${name} deleted`);
    await refresh();
  } catch (err) {
    $("iso-error").textContent = `${name}: ${err.text || err}`;
  }
}

/** Wires the upload panel; `count({isos})` hears the count. */
export function install(count) {
  onCount = count;
  installUpload("iso", (name) => `/api/v1/isos?name=${encodeURIComponent(name)}`, (name) => {
    toast(`${name} uploaded`);
    refresh();
  });
}

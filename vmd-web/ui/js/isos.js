// The admin's ISO library: the list (`GET /api/v1/isos`), delete (vmd's dependency message
// is shown), and uploads by drag-and-drop or file input, sent as the raw body of
// `POST /api/v1/isos?name=NAME` with XMLHttpRequest for the progress bar and Cancel.

import { ApiError, del, get } from "./api.js";
import { toast } from "./dashboard.js";
import { confirmAction } from "./dialogs.js";
import { bytes } from "./format.js";
import { button, fillSelect, group, row, when } from "./table.js";

const $ = (id) => document.getElementById(id);
let current = null;
let onCount = () => {};

/** A DNS-label name from a file name: "Debian-12.5.iso" → "debian-12-5". */
export function nameFromFile(file) {
  const stem = file.replace(/\.[^.]*$/, "").toLowerCase();
  return stem.replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63) || "iso";
}

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

/** Shows upload progress as a percentage. */
function progress(percent) {
  $("iso-progress").value = percent;
  $("iso-percent").textContent = `${percent}%`;
}

/** Settles an upload: hides the bar (unless done) and reports vmd's answer. */
function finish(xhr, name) {
  current = null;
  $("iso-cancel").disabled = true;
  if (xhr.status === 201) {
    toast(`${name} uploaded`);
    refresh();
    return;
  }
  let body = null;
  try {
    body = JSON.parse(xhr.responseText);
  } catch {}
  $("iso-error").textContent = new ApiError(xhr.status, body).text;
}

/** Uploads `file` as ISO `name`. */
export function upload(file, name) {
  if (current) return;
  $("iso-error").textContent = "";
  $("iso-upload").hidden = false;
  $("iso-cancel").disabled = false;
  progress(0);
  const xhr = new XMLHttpRequest();
  current = xhr;
  xhr.open("POST", `/api/v1/isos?name=${encodeURIComponent(name)}`);
  xhr.setRequestHeader("X-CSRF-Token", localStorage.getItem("vmd-csrf") || "");
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.onprogress = (e) => e.lengthComputable && progress(Math.floor((100 * e.loaded) / e.total));
  xhr.onload = () => finish(xhr, name);
  xhr.onerror = () => finish(xhr, name);
  xhr.onabort = () => {
    current = null;
    $("iso-upload").hidden = true;
    $("iso-error").textContent = `upload of ${name} cancelled`;
  };
  xhr.send(file);
}

/** Starts the upload of the first of `files`, named from the name field or the file. */
function start(files) {
  const file = files?.[0];
  if (!file) return;
  const name = $("iso-name").value.trim() || nameFromFile(file.name);
  $("iso-name").value = name;
  upload(file, name);
}

/** Wires the drop zone, the file input and Cancel; `count({isos})` hears the count. */
export function install(count) {
  onCount = count;
  const zone = $("iso-drop");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    start(e.dataTransfer.files);
  });
  $("iso-file").addEventListener("change", (e) => {
    start(e.target.files);
    e.target.value = "";
  });
  $("iso-cancel").addEventListener("click", () => current?.abort());
}

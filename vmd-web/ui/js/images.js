// The admin's base images: the list with storage per image (`GET /api/v1/images`), create
// from an ISO (`POST /api/v1/images`, JSON ImageCreate; the install VM has the image's name),
// open the install VM's console, seal, publish a stopped VM, import a disk image (upload.js),
// edit an image's OS family, description and visibility (`PATCH /api/v1/images/NAME`, in a
// dialog), delete. vmd's refusals (in use, nothing installed yet, …) are shown under the forms.

import { del, get, post, request, vmPath } from "./api.js";
import { toast } from "./dashboard.js";
import { askImageInfo, confirmAction } from "./dialogs.js";
import { bytes } from "./format.js";
import { family, familyOptions, osIcon } from "./os-icons.js";
import { button, group, row } from "./table.js";
import { installUpload } from "./upload.js";

const $ = (id) => document.getElementById(id);
const GIB = 1024 * 1024 * 1024;
const imagePath = (name, rest = "") => `/api/v1/images/${encodeURIComponent(name)}${rest}`;
let timer = null;

/** Shows vmd's refusal (or clears it with null). */
function error(err, what) {
  $("image-error").textContent = err ? `${what}: ${err.text || err}` : "";
}

/** Runs `call`, then re-reads the list; a refusal is shown for `what`. */
async function act(what, call, done) {
  error(null);
  try {
    await call();
    if (done) toast(done);
    await refresh();
  } catch (err) {
    error(err, what);
  }
}

/** The buttons of `image`: console and seal while unsealed, delete always. */
function imageActions(image) {
  const name = image.name;
  const buttons = [];
  if (!image.sealed) {
    buttons.push(button("Console", () => window.open(`/console?vm=${encodeURIComponent(name)}`, "_blank", "noopener")));
    buttons.push(button("Seal", () => act(`seal ${name}`, () => post(imagePath(name, "/seal")), `${name} sealed`)));
  }
  buttons.push(button("Edit", () => edit(image)));
  buttons.push(button("Delete", () => remove(name), "danger"));
  return group(...buttons);
}

/** Asks for `image`'s OS family, description and visibility and sends the changes. */
async function edit(image) {
  const body = await askImageInfo(image);
  if (!body) return;
  await act(`edit ${image.name}`, () => request("PATCH", imagePath(image.name), body), `${image.name} saved`);
}

/** The OS cell: the family's badge and its label. */
function osCell(image) {
  const span = document.createElement("span");
  span.className = "os-cell";
  span.dataset.os = image.os || "other";
  span.append(osIcon(image.os), family(image.os).label);
  return span;
}

async function remove(name) {
  if (!(await confirmAction(`Delete the base image ${name}?`, "Delete"))) return;
  await act(`delete ${name}`, () => del(imagePath(name)), `${name} deleted`);
}

/** Reads and shows the images. */
export async function refresh() {
  const list = await get("/api/v1/images");
  $("image-rows").replaceChildren(...list.map((image) => {
    const status = image.sealed ? (image.public ? "sealed, public" : "sealed, private") : "installing (unsealed)";
    const tr = row(image.name, [
      image.name, osCell(image), image.description || "—", status, image.owner, bytes(image.virtual_size_bytes),
      bytes(image.disk_usage_bytes), image.firmware, image.used_by.join(", ") || "—", imageActions(image),
    ]);
    tr.dataset.sealed = String(image.sealed);
    return tr;
  }));
}

/** Re-reads the list soon (a burst of events costs one request). */
export function refreshSoon() {
  clearTimeout(timer);
  timer = setTimeout(() => refresh(), 250);
}

/** Submits the create form. */
function create(event) {
  event.preventDefault();
  const body = {
    name: $("image-name").value.trim(),
    size_bytes: Math.round(Number($("image-size").value) * GIB),
    iso: $("image-iso").value,
    firmware: $("image-firmware").value,
  };
  if ($("image-os").value) body.os = $("image-os").value;
  act(`create ${body.name}`, () => post("/api/v1/images", body), `${body.name} created: install it from its console, then seal`);
}

/** The OS family and description chosen in the `prefix-os` / `prefix-description` fields,
 * only those set (vmd guesses or inherits the rest). */
function osAndDescription(prefix) {
  const chosen = {};
  if ($(`${prefix}-os`).value) chosen.os = $(`${prefix}-os`).value;
  const description = $(`${prefix}-description`).value.trim();
  if (description) chosen.description = description;
  return chosen;
}

/** Submits the publish form. */
function publish(event) {
  event.preventDefault();
  const vm = $("publish-vm").value;
  const body = { name: $("publish-name").value.trim(), public: $("publish-public").checked };
  Object.assign(body, osAndDescription("publish"));
  act(`publish ${vm}`, () => post(vmPath(vm, "/publish"), body), `${vm} published as ${body.name}`);
}

/** Wires the forms and the disk image upload (`POST /api/v1/images?name=`, raw body). */
export function install() {
  $("image-os").append(...familyOptions());
  $("image-info-os").replaceChildren(...familyOptions());
  $("image-form").addEventListener("submit", create);
  $("publish-form").addEventListener("submit", publish);
  $("publish-os").append(...familyOptions());
  $("disk-os").append(...familyOptions());
  const importUrl = (name) => `/api/v1/images?${new URLSearchParams({ name, ...osAndDescription("disk") })}`;
  installUpload("disk", importUrl, (name) => {
    toast(`${name} imported`);
    refresh();
  });
}

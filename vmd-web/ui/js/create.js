// The OS sidebar (`GET /api/v1/images`: the sealed images this user may use, each with its
// OS family's icon and its description) and the create form: name checked as you type, size bounded by the quota, vmd's refusal shown.

import { post } from "./api.js";
import { bytes } from "./format.js";
import { nameError } from "./names.js";
import { family, osIcon } from "./os-icons.js";

const $ = (id) => document.getElementById(id);
let chosen = null;

/** A sidebar entry for `image`: its OS family's badge (os-icons.js), its name, its
 * description (when it has one) and its size. */
function osButton(image, onPick) {
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "os";
  button.dataset.image = image.name;
  button.dataset.os = image.os || "other";
  button.title = family(image.os).label;
  const icon = document.createElement("span");
  icon.className = "os-icon";
  icon.append(osIcon(image.os));
  const name = document.createElement("span");
  name.className = "os-name";
  name.textContent = image.name;
  const size = document.createElement("small");
  size.textContent = `${family(image.os).label} · ${bytes(image.virtual_size_bytes)}${image.public ? "" : " · private"}`;
  button.append(icon, name);
  if (image.description) {
    const text = document.createElement("small");
    text.className = "os-description";
    text.textContent = image.description;
    button.append(text);
  }
  button.append(size);
  button.addEventListener("click", () => onPick(image));
  li.append(button);
  return li;
}

/** Shows the usable images in the sidebar. */
export function renderImages(images) {
  const usable = images.filter((i) => i.sealed !== false).sort((a, b) => a.name.localeCompare(b.name));
  $("os-list").replaceChildren(...usable.map((i) => osButton(i, openForm)));
  $("os-empty").hidden = usable.length > 0;
}

const GIB = 1024 ** 3;

/** Opens the create form for `image`; the disk may not be smaller than the image's. */
function openForm(image) {
  chosen = image.name;
  $("vm-disk").min = String(Math.max(1, Math.ceil(image.virtual_size_bytes / GIB)));
  $("vm-disk-help").textContent = `Empty: the image's size (${bytes(image.virtual_size_bytes)})`;
  $("create-image").textContent = image.name;
  $("create").hidden = false;
  $("create-error").textContent = "";
  $("vm-name").focus();
}

/** Bounds the size inputs by the quota of `me` (vmd checks the rest at start). */
export function applyQuota(me) {
  const q = me.quota;
  if (q.max_vcpus != null) $("vm-cpus").max = q.max_vcpus;
  if (q.max_memory_mib != null) $("vm-memory").max = q.max_memory_mib;
  if (q.max_disk_bytes != null) $("vm-disk").max = String(Math.floor(q.max_disk_bytes / GIB));
}

/** Checks the name field; returns whether it is valid. */
function checkName() {
  const input = $("vm-name");
  const error = input.value === "" && !input.dataset.touched ? "" : nameError(input.value);
  input.setCustomValidity(error);
  input.setAttribute("aria-invalid", error ? "true" : "false");
  $("vm-name-help").textContent = error || "1-63 lowercase letters, digits and '-', starting and ending with a letter or digit";
  $("vm-name-help").classList.toggle("error", Boolean(error));
  return !error;
}

/** The VmCreate body from the form. */
function body() {
  const req = {
    name: $("vm-name").value,
    image: chosen,
    cpus: Number($("vm-cpus").value),
    memory_mib: Number($("vm-memory").value),
  };
  const ttl = $("vm-ttl").value;
  if (ttl) req.ttl_secs = Number(ttl);
  const disk = $("vm-disk").value;
  if (disk) req.disk_bytes = Number(disk) * GIB;
  const ssh = $("vm-ssh").value;
  if (ssh) req.ssh_port = Number(ssh);
  const description = $("vm-description").value.trim();
  if (description) req.description = description;
  return req;
}

/** Submits the form; `onCreated(vm)` shows the card at once. */
async function submit(event, onCreated) {
  event.preventDefault();
  $("vm-name").dataset.touched = "1";
  if (!checkName() || !$("create-form").reportValidity()) return;
  $("create-submit").disabled = true;
  try {
    onCreated(await post("/api/v1/vms", body()));
    $("create-form").reset();
    delete $("vm-name").dataset.touched;
    checkName();
    $("create").hidden = true;
  } catch (err) {
    $("create-error").textContent = err.text || String(err);
  } finally {
    $("create-submit").disabled = false;
  }
}

/** Wires the form once. */
export function installCreateForm(onCreated) {
  $("vm-name").addEventListener("input", () => {
    $("vm-name").dataset.touched = "1";
    checkName();
  });
  $("create-form").addEventListener("submit", (e) => submit(e, onCreated));
  $("create-cancel").addEventListener("click", () => {
    $("create").hidden = true;
  });
}

// One upload panel: a drop zone and a file input feeding a raw-body POST sent with
// XMLHttpRequest (progress bar, percentage, Cancel = abort()). Used for ISOs
// (`POST /api/v1/isos?name=`) and disk images (`POST /api/v1/images?name=`). The elements
// are found by id: PREFIX-drop, -file, -name, -upload, -progress, -percent, -cancel, -error.

import { ApiError } from "./api.js";

/** A DNS-label name from a file name: "Debian-12.5.iso" → "debian-12-5". */
export function nameFromFile(file) {
  const stem = file.replace(/\.[^.]*$/, "").toLowerCase();
  return stem.replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63) || "upload";
}

/** vmd's words for a finished XMLHttpRequest that failed. */
function refusal(xhr) {
  if (xhr.status === 0) return "the upload failed: vmd-web cannot be reached";
  let body = null;
  try {
    body = JSON.parse(xhr.responseText);
  } catch {}
  return new ApiError(xhr.status, body).text;
}

/** Shows `percent` on the panel's bar and text. */
function progress($, percent) {
  $("progress").value = percent;
  $("percent").textContent = `${percent}%`;
}

/** Sends `file` as upload `name` to `target`; `ended()` runs when it is over, `done(name)`
 * after a 201. Returns the XMLHttpRequest (abort() cancels). */
function send($, target, file, name, ended, done) {
  $("error").textContent = "";
  $("upload").hidden = false;
  $("cancel").disabled = false;
  progress($, 0);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", target);
  xhr.setRequestHeader("X-CSRF-Token", localStorage.getItem("vmd-csrf") || "");
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.onprogress = (e) => e.lengthComputable && progress($, Math.floor((100 * e.loaded) / e.total));
  let aborted = false;
  xhr.onloadend = () => {
    ended();
    $("cancel").disabled = true;
    if (xhr.status === 201) {
      $("name").value = "";
      done(name);
    } else if (!aborted) {
      $("error").textContent = `${name}: ${refusal(xhr)}`;
    }
  };
  xhr.onabort = () => {
    aborted = true;
    $("upload").hidden = true;
    $("error").textContent = `upload of ${name} cancelled`;
  };
  xhr.send(file);
  return xhr;
}

/** Wires panel `prefix`: uploads go to `url(name)`; `done(name)` runs after a 201. */
export function installUpload(prefix, url, done) {
  const $ = (id) => document.getElementById(`${prefix}-${id}`);
  let current = null;
  const start = (files) => {
    const file = files?.[0];
    if (!file || current) return;
    const name = $("name").value.trim() || nameFromFile(file.name);
    $("name").value = name;
    current = send($, url(name), file, name, () => { current = null; }, done);
  };
  wireInputs($, start, () => current?.abort());
}

/** The drop zone's, the file input's and Cancel's listeners. */
function wireInputs($, start, cancel) {
  const zone = $("drop");
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
  $("file").addEventListener("change", (e) => {
    start(e.target.files);
    e.target.value = "";
  });
  $("cancel").addEventListener("click", cancel);
}

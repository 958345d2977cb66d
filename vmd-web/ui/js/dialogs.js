// Modal dialogs (<dialog>): confirmation, lifetime extension, logs (followed live while
// open), quota overrides, a new password typed twice, and an image's OS family,
// description and visibility (admin). Each resolves once the dialog closes.

/** Shows `dialog` modally; resolves to its returnValue. */
export function show(dialog) {
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

/** Asks to confirm `text`; resolves to true on Confirm. */
export async function confirmAction(text, label) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = label;
  return (await show(dialog)) === "ok";
}

/** Asks how many hours to add; resolves to seconds, or null when cancelled. */
export async function askExtension() {
  const dialog = document.getElementById("extend-dialog");
  if ((await show(dialog)) !== "ok") return null;
  const hours = Number(document.getElementById("extend-hours").value);
  return hours > 0 ? Math.round(hours * 3600) : null;
}

/** Asks for quota overrides, the inputs filled from `overrides` (a Quota); resolves to a
 * UserSet body (each limit a number, "unlimited" or "default"), or null when cancelled. */
export async function askQuota(overrides) {
  const inputs = [...document.querySelectorAll("#quota-dialog [data-limit]")];
  for (const input of inputs) input.value = overrides[input.dataset.limit] ?? "";
  if ((await show(document.getElementById("quota-dialog"))) !== "ok") return null;
  const value = (text) => (text === "" ? "default" : /^\d+$/.test(text) ? Number(text) : text);
  return Object.fromEntries(inputs.map((i) => [i.dataset.limit, value(i.value.trim())]));
}

/** Refuses (keeping the dialog open) a password form whose two entries differ. */
function checkTwice(event) {
  if (event.submitter?.value !== "ok") return;
  const again = document.getElementById("password-again");
  const same = document.getElementById("password-new").value === again.value;
  again.setAttribute("aria-invalid", String(!same));
  document.getElementById("password-error").textContent = same ? "" : "The two entries differ.";
  if (!same) {
    event.preventDefault();
    again.focus();
  }
}

/** Asks for a new password of user `name`, typed twice; resolves to it, or null when
 * cancelled. vmd judges its length (its refusal is shown by the caller). */
export async function askPassword(name) {
  const form = document.getElementById("password-form");
  form.reset();
  document.getElementById("password-error").textContent = "";
  document.getElementById("password-again").removeAttribute("aria-invalid");
  document.getElementById("password-title").textContent = `New password for ${name}`;
  form.addEventListener("submit", checkTwice);
  const answer = await show(document.getElementById("password-dialog"));
  form.removeEventListener("submit", checkTwice);
  const password = document.getElementById("password-new").value;
  form.reset();
  return answer === "ok" ? password : null;
}

/** Shows `text` as the logs of VM `name`, then appends what `follow` (an SSE URL of log
 * chunks) brings until the dialog closes. */
export async function showLogs(name, text, follow) {
  document.getElementById("logs-title").textContent = `Logs of ${name}`;
  const pre = document.getElementById("logs-text");
  pre.textContent = text;
  const done = show(document.getElementById("logs-dialog"));
  pre.scrollTop = pre.scrollHeight;
  const source = new EventSource(follow);
  source.onmessage = (message) => {
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(JSON.parse(message.data));
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  };
  await done;
  source.close();
}

/** Asks for `image`'s OS family, description and visibility, the inputs filled from it;
 * resolves to an ImageSet body of what changed (null when cancelled or nothing changed). */
export async function askImageInfo(image) {
  const [os, text, pub] = ["image-info-os", "image-info-description", "image-info-public"].map((id) => document.getElementById(id));
  document.getElementById("image-info-title").textContent = `Image ${image.name}`;
  os.value = image.os || "other";
  text.value = image.description || "";
  pub.checked = image.public;
  if ((await show(document.getElementById("image-info-dialog"))) !== "ok") return null;
  const body = {};
  if (os.value !== (image.os || "other")) body.os = os.value;
  if (text.value.trim() !== (image.description || "")) body.description = text.value.trim();
  if (pub.checked !== image.public) body.public = pub.checked;
  return Object.keys(body).length ? body : null;
}

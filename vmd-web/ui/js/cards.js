// VM cards: one <li> per VM, coloured by state (class `state-<state>`), with resources,
// uptime and the lifetime countdown. `tick()` refreshes the clocks once a second without
// touching the network.

import { bytes, duration, mib, secsUntil } from "./format.js";

/** A new, empty card for VM `name`; `onMenu(name, button)` opens its menu. */
function makeCard(name, onMenu) {
  const li = document.createElement("li");
  li.className = "card";
  li.dataset.vm = name;
  li.tabIndex = 0;
  const head = document.createElement("div");
  head.className = "card-head";
  const title = document.createElement("h3");
  title.textContent = name;
  const badge = document.createElement("span");
  badge.className = "badge";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "menu-button";
  button.textContent = "⋮";
  button.setAttribute("aria-haspopup", "menu");
  button.setAttribute("aria-label", `Actions for ${name}`);
  button.addEventListener("click", () => onMenu(name, button));
  head.append(title, badge, button);
  li.append(head, document.createElement("dl"));
  return li;
}

/** The `<dt>/<dd>` pairs of a VM. */
function facts(vm) {
  const rows = [];
  if (vm.description) rows.push(["About", vm.description]);
  rows.push(
    ["Image", vm.image],
    ["Size", `${vm.cpus} vCPU · ${mib(vm.memory_mib)} · ${bytes(vm.disk_bytes)} disk`],
  );
  if (vm.started_at && vm.state !== "stopped" && vm.state !== "crashed") {
    rows.push(["Uptime", "", { since: vm.started_at }]);
  }
  if (vm.expires_at) rows.push(["Expires in", "", { until: vm.expires_at }]);
  if (vm.ssh_port) rows.push(["SSH", `host port ${vm.ssh_port}`]);
  const guest = guestFacts(vm.guest);
  if (guest) rows.push(["Guest", guest]);
  const labels = Object.entries(vm.labels || {}).map(([k, v]) => (v ? `${k}=${v}` : k));
  if (labels.length) rows.push(["Labels", labels.join(" · ")]);
  return rows;
}

/** What the guest agent reported: the OS and the addresses (IPv4 first), or nothing. */
function guestFacts(guest) {
  if (!guest?.agent) return "";
  const addresses = (guest.addresses || [])
    .map((a) => a.address)
    .sort((a, b) => a.includes(":") - b.includes(":"));
  return [guest.os, ...addresses.slice(0, 3)].filter(Boolean).join(" · ");
}

/** Fills `card` from `vm`. */
function fill(card, vm) {
  card.className = `card state-${vm.state}`;
  card.dataset.state = vm.state;
  const badge = card.querySelector(".badge");
  badge.textContent = vm.state;
  const reason = vm.reason || "";
  badge.title = reason;
  card.title = reason ? `${vm.state}: ${reason}` : "";
  card.setAttribute("aria-label", `${vm.name}, ${vm.state}${reason ? `: ${reason}` : ""}`);
  const dl = card.querySelector("dl");
  dl.replaceChildren();
  for (const [term, value, clock] of facts(vm)) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    if (clock?.since) dd.dataset.since = clock.since;
    if (clock?.until) dd.dataset.until = clock.until;
    dl.append(dt, dd);
  }
  tick(card);
}

/** Adds or updates the card of `vm` in `list`, keeping cards sorted by name. */
export function upsert(list, vm, onMenu) {
  let card = find(list, vm.name);
  if (!card) {
    card = makeCard(vm.name, onMenu);
    const after = [...list.children].find((c) => c.dataset.vm > vm.name);
    list.insertBefore(card, after || null);
  }
  fill(card, vm);
}

/** The card of VM `name`, if shown. */
export const find = (list, name) =>
  [...list.children].find((card) => card.dataset.vm === name) || null;

/** Removes the card of VM `name`. */
export function remove(list, name) {
  find(list, name)?.remove();
}

/** Refreshes the uptime and countdown clocks under `root`. */
export function tick(root) {
  for (const dd of root.querySelectorAll("[data-since]")) {
    dd.textContent = duration(-secsUntil(dd.dataset.since));
  }
  for (const dd of root.querySelectorAll("[data-until]")) {
    const left = secsUntil(dd.dataset.until);
    dd.textContent = left > 0 ? duration(left) : "now";
  }
}

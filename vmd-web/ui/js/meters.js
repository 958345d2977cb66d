// Quota usage meters from `GET /api/v1/me` (`quota` limits, `usage` current use).

import { bytes, mib } from "./format.js";

/** [label, usage field, quota field, formatter]. */
const ROWS = [
  ["VMs", "vms", "max_vms", String],
  ["Running", "running", "max_running", String],
  ["vCPUs", "vcpus", "max_vcpus", String],
  ["Memory", "memory_mib", "max_memory_mib", mib],
  ["Disk", "disk_bytes", "max_disk_bytes", bytes],
];

/** One meter row. */
function row(label, used, max, fmt, id) {
  const div = document.createElement("div");
  div.className = "meter-row";
  const name = document.createElement("label");
  name.htmlFor = id;
  name.textContent = label;
  const text = document.createElement("span");
  text.className = "meter-text";
  if (max == null) {
    // No limit: nothing to measure against, so no meter; the label names the text.
    text.id = id;
    text.textContent = `${fmt(used)} (no limit)`;
    div.append(name, text);
    return div;
  }
  const meter = document.createElement("meter");
  meter.id = id;
  meter.min = 0;
  meter.max = max;
  meter.value = used;
  meter.high = max * 0.8;
  meter.optimum = 0;
  text.textContent = `${fmt(used)} of ${fmt(max)}`;
  div.append(name, meter, text);
  return div;
}

/** Renders `me.quota` / `me.usage` into `container`. */
export function renderMeters(container, me) {
  container.replaceChildren(
    ...ROWS.map(([label, use, max, fmt]) =>
      row(label, me.usage[use] ?? 0, me.quota[max] ?? null, fmt, `meter-${use}`)),
  );
}

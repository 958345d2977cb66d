// Human-readable sizes and durations.

/** Bytes as KiB/MiB/GiB. */
export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** MiB as MiB/GiB. */
export const mib = (n) => bytes(n * 1024 * 1024);

/** Seconds as "2d 3h", "3h 4m", "4m 5s" or "5s". */
export function duration(secs) {
  secs = Math.max(0, Math.floor(secs));
  const d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24;
  const m = Math.floor(secs / 60) % 60, s = secs % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** Seconds from now until RFC 3339 `at` (negative when past). */
export const secsUntil = (at) => (Date.parse(at) - Date.now()) / 1000;

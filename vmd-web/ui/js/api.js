// The REST client: JSON in and out, the CSRF token on every unsafe request, vmd's errors
// as ApiError (status, kind, message, hint) so pages can show vmd's own words.

const CSRF_KEY = "vmd-csrf";

/** An error answer of vmd-web: `{code, kind, message, hint}`. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.kind = body?.kind || "unknown";
    this.hint = body?.hint || null;
  }

  /** The message with vmd's hint, for display. */
  get text() {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

/** Remembers the CSRF token of the session (shared by this browser's tabs). */
export function setCsrf(token) {
  if (token) localStorage.setItem(CSRF_KEY, token);
  else localStorage.removeItem(CSRF_KEY);
}

/** One request; resolves to the JSON body (null when empty), rejects with ApiError. */
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = localStorage.getItem(CSRF_KEY) || "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, { kind: "unavailable", message: `vmd-web cannot be reached: ${err.message}` });
  }
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);
export const del = (path) => request("DELETE", path);

/** `/api/v1/vms/NAME` plus `rest`, the name escaped. */
export const vmPath = (name, rest = "") => `/api/v1/vms/${encodeURIComponent(name)}${rest}`;

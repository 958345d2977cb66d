// Entry point of `/`: `GET /api/v1/me` decides between the login form and the dashboard;
// login stores the session's CSRF token (the cookie itself is HttpOnly); logout ends the
// session in vmd.

import { ApiError, get, post, setCsrf } from "./api.js";
import { onAdminEvent, refreshAdmin, startAdmin, viewFromAddress } from "./admin.js";
import { startDashboard } from "./dashboard.js";

const $ = (id) => document.getElementById(id);

/** Shows the login form. */
function showLogin() {
  $("login-view").hidden = false;
  $("login-user").focus();
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      const answer = await post("/api/v1/login", {
        user: $("login-user").value,
        password: $("login-password").value,
      });
      setCsrf(answer.csrf);
      location.reload();
    } catch (err) {
      $("login-error").textContent = err.text || String(err);
    }
  });
}

/** Shows who is logged in and wires logout. */
function showUser(me) {
  $("whoami").textContent = `${me.user} (${me.role})`;
  $("whoami").hidden = false;
  $("logout").hidden = false;
  $("logout").addEventListener("click", async () => {
    try {
      await post("/api/v1/logout");
    } finally {
      setCsrf(null);
      location.reload();
    }
  });
}

async function main() {
  let me;
  try {
    me = await get("/api/v1/me");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showLogin();
    document.body.textContent = `vmd cannot be reached: ${err.text || err}`;
    return;
  }
  if (!localStorage.getItem("vmd-csrf")) return showLogin();
  showUser(me);
  if (me.role !== "admin") return startDashboard(me);
  await startAdmin(me);
  await startDashboard(me, { onEvent: onAdminEvent, onOpen: refreshAdmin });
  viewFromAddress();
}

main();

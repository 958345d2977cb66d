// The admin's dialog of one user's API tokens and login sessions: `GET /api/v1/tokens`
// (every account's for an admin, kept to the user in the page), kind, label, created,
// expires and last used, each with Revoke (`DELETE /api/v1/tokens/ID`), the list re-read
// after. Lists never carry secrets; nothing here could show one.

import { del, get } from "./api.js";
import { toast } from "./dashboard.js";
import { show } from "./dialogs.js";
import { button, row, when } from "./table.js";

const $ = (id) => document.getElementById(id);
const KINDS = { api: "API token", session: "session" };

/** The table row of token `t`; its Revoke re-reads `user`'s list. */
function tokenRow(user, t) {
  const label = t.name || "";
  const kind = KINDS[t.kind] || t.kind;
  const revoke = button("Revoke", () => revokeToken(user, t), "danger");
  revoke.setAttribute("aria-label", `Revoke ${kind} ${label || t.id}`);
  const tr = row(String(t.id), [
    kind, label || "—", when(t.created_at), t.expires_at ? when(t.expires_at) : "never",
    t.last_used_at ? when(t.last_used_at) : "never", revoke,
  ]);
  tr.dataset.kind = t.kind;
  tr.dataset.label = label;
  return tr;
}

/** Reads and shows `user`'s tokens (vmd's refusal shown in the dialog). */
async function load(user) {
  try {
    const all = await get("/api/v1/tokens");
    const mine = all.filter((t) => t.user === user).sort((a, b) => a.id - b.id);
    $("token-rows").replaceChildren(...mine.map((t) => tokenRow(user, t)));
    $("tokens-empty").hidden = mine.length > 0;
  } catch (err) {
    $("tokens-error").textContent = `tokens of ${user}: ${err.text || err}`;
  }
}

/** Revokes token `t` of `user`, then re-reads the list. */
async function revokeToken(user, t) {
  $("tokens-error").textContent = "";
  try {
    await del(`/api/v1/tokens/${encodeURIComponent(t.id)}`);
    toast(`${KINDS[t.kind] || t.kind} of ${user} revoked`);
  } catch (err) {
    $("tokens-error").textContent = `revoke: ${err.text || err}`;
  }
  await load(user);
  $("tokens-close").focus();
}

/** Opens the dialog of `user`'s tokens; resolves once it is closed. */
export async function showTokens(user) {
  $("tokens-title").textContent = `Tokens and sessions of ${user}`;
  $("tokens-error").textContent = "";
  $("token-rows").replaceChildren();
  $("tokens-empty").hidden = true;
  const closed = show($("tokens-dialog"));
  await load(user);
  await closed;
}

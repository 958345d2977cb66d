// Steps of the admin journey (admin.mjs) on managing one user from the Users panel: user
// `erin` is added and, in a browser context of her own, logs in, makes VM `erin1` and an API
// token; the admin sorts the table, sees the panel fit a phone's width, changes her role to
// admin and back, opens her VMs in All VMs, revokes her API token and her session from the
// Tokens dialog (the token then gets 401, her page is sent back to the login form), resets
// her password (the old one is refused, the new one logs in), and deletes her: refused
// while she owns erin1, then with everything (the user and the VM go).

import * as ui from "./lib.mjs";

const SECOND = 1000;
const USER = "erin";
const VM = "erin1";
const FIRST_PASSWORD = "erin's first password";
const NEW_PASSWORD = "erin's second password";

const userRow = (page) => page.locator(`#user-rows tr[data-key="${USER}"]`);
const userButton = (page, label) => userRow(page).locator("button", { hasText: label });
const vmRow = (page) => page.locator(`#allvms-rows tr[data-key="${VM}"]`);

/** `fetch` from `page` with its session and CSRF token; resolves to {status, body}. */
function call(page, method, path, body) {
  return page.evaluate(async ([m, p, b]) => {
    const headers = { Accept: "application/json", "X-CSRF-Token": localStorage.getItem("vmd-csrf") || "" };
    if (b !== null) headers["Content-Type"] = "application/json";
    const response = await fetch(p, { method: m, headers, body: b === null ? undefined : JSON.stringify(b) });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }, [method, path, body ?? null]);
}

/** Expects `method path` from `page` to answer `status`; resolves to the body. */
async function expectCall(page, method, path, body, status) {
  const answer = await call(page, method, path, body);
  if (answer.status !== status) {
    throw new Error(`${method} ${path} answered ${answer.status}, not ${status}: ${JSON.stringify(answer.body)}`);
  }
  return answer.body;
}

/** The status of `GET /api/v1/me` with bearer `token` (from node, no browser). */
async function statusWithToken(token) {
  const response = await fetch(new URL("/api/v1/me", ui.env.url), { headers: { Authorization: `Bearer ${token}` } });
  return response.status;
}

/** The admin adds erin; she logs in in her own context and makes a VM and an API token. */
async function addErin(browser, page) {
  let erin = null;
  let token = null;
  await ui.step("erin is added; logged in apart, she makes a VM and an API token", async () => {
    await page.fill("#user-name", USER);
    await page.fill("#user-password", FIRST_PASSWORD);
    await page.click('#user-form button[type="submit"]');
    await userRow(page).waitFor();
    const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
    erin = await ui.watchedPage(context, USER);
    await ui.login(erin, USER, FIRST_PASSWORD);
    await expectCall(erin, "POST", "/api/v1/vms", { name: VM, image: ui.env.image, memory_mib: 128 }, 201);
    token = (await expectCall(erin, "POST", "/api/v1/tokens", { name: "erin-ci" }, 201)).token;
    if ((await statusWithToken(token)) !== 200) throw new Error("the new token is refused");
    await vmRow(page).waitFor();
  });
  return { erin, token };
}

/** The names in the Users table, top to bottom. */
const names = (page) => page.$$eval("#user-rows tr", (rows) => rows.map((r) => r.dataset.key));

async function sortAndRole(page) {
  await ui.step("the users table sorts by a clicked header", async () => {
    const ascending = await names(page);
    const header = page.locator('#user-table th[data-sort="name"]');
    await header.locator("button").click();
    if ((await header.getAttribute("aria-sort")) !== "descending") throw new Error("aria-sort not descending");
    const descending = await names(page);
    if (descending.join() !== [...ascending].reverse().join()) throw new Error(`order ${descending}`);
    await header.locator("button").click();
    if ((await names(page)).join() !== ascending.join()) throw new Error("the order did not come back");
  });
  await ui.step("at phone width the Users panel fits the screen (its table scrolls)", async () => {
    const size = page.viewportSize();
    await page.setViewportSize({ width: 390, height: 800 });
    await page.locator("#users-heading").scrollIntoViewIfNeeded();
    await ui.screenshots("users-phone");
    const over = await page.evaluate(() => {
      const panel = document.getElementById("users-heading").parentElement.getBoundingClientRect();
      return panel.right > innerWidth || panel.left < 0;
    });
    await page.setViewportSize(size);
    if (over) throw new Error("the Users panel is wider than the screen");
  });
  await ui.step("erin's role changes to admin and back (table and GET /api/v1/users/erin)", async () => {
    const select = () => userRow(page).locator('select[data-act="role"]');
    await select().selectOption("admin");
    await page.click('#confirm-dialog button[value="cancel"]');
    // The table is redrawn once the dialog has closed.
    await page.waitForFunction((user) => document.querySelector(
      `#user-rows tr[data-key="${user}"] select[data-act="role"]`)?.value === "user", USER);
    for (const role of ["admin", "user"]) {
      await select().selectOption(role);
      await page.locator("#confirm-ok", { hasText: `Make ${role}` }).click();
      await page.locator(`#user-rows tr[data-key="${USER}"][data-role="${role}"]`).waitFor();
      const user = await expectCall(page, "GET", `/api/v1/users/${USER}`, null, 200);
      if (user.role !== role) throw new Error(`vmd says ${user.role}, not ${role}`);
    }
  });
}

async function vmsOfErin(page) {
  await ui.step("VMs on erin's row shows only her VM in All VMs", async () => {
    await userButton(page, "VMs").click();
    if ((await page.inputValue("#filter-user")) !== USER) throw new Error("the user filter is not erin");
    await page.waitForFunction(() => document.querySelectorAll("#allvms-rows tr").length === 1);
    await page.locator(`#allvms-rows tr[data-key="${VM}"][data-owner="${USER}"]`).waitFor();
    const focused = await page.evaluate(() => document.activeElement?.id);
    if (focused !== "filter-user") throw new Error(`focus is on ${focused}`);
    await page.selectOption("#filter-user", "");
  });
}

async function tokens(page, erin, token) {
  await ui.step("the Tokens dialog revokes erin's API token (401 after) and session (login form)", async () => {
    await userButton(page, "Tokens").click();
    const dialog = page.locator("#tokens-dialog");
    await dialog.waitFor({ state: "visible" });
    const api = dialog.locator('#token-rows tr[data-kind="api"][data-label="erin-ci"]');
    const session = dialog.locator('#token-rows tr[data-kind="session"]');
    await api.waitFor();
    await session.first().waitFor();
    if ((await dialog.textContent()).includes(token)) throw new Error("the dialog shows a secret");
    await ui.screenshots("tokens-dialog");
    await api.locator("button", { hasText: "Revoke" }).click();
    await api.waitFor({ state: "detached" });
    if ((await statusWithToken(token)) !== 401) throw new Error("the revoked token is still accepted");
    for (let before = await session.count(); before > 0; before = await session.count()) {
      // Counted before the click: the list may be re-read before a count taken after it.
      await session.first().locator("button", { hasText: "Revoke" }).click();
      await page.waitForFunction((n) => document.querySelectorAll('#token-rows tr[data-kind="session"]').length < n,
        before);
    }
    await dialog.locator("#tokens-empty").waitFor({ state: "visible" });
    await page.click("#tokens-close");
    await dialog.waitFor({ state: "hidden" });
    // The page may already be on its way to the login form by itself (its event stream ends).
    await erin.reload().catch(() => {});
    await erin.locator("#login-form").waitFor({ state: "visible", timeout: 10 * SECOND });
  });
}

async function password(browser, page) {
  await ui.step("erin's password is reset (typed twice); the old one is refused, the new logs in", async () => {
    await userButton(page, "Password").click();
    await page.locator("#password-dialog").waitFor({ state: "visible" });
    await page.fill("#password-new", NEW_PASSWORD);
    await page.fill("#password-again", `${NEW_PASSWORD}x`);
    await page.click("#password-ok");
    await page.locator("#password-error", { hasText: "differ" }).waitFor();
    await page.fill("#password-again", NEW_PASSWORD);
    await page.click("#password-ok");
    await page.locator("#password-dialog").waitFor({ state: "hidden" });
    await page.locator("#toast", { hasText: `password of ${USER} changed` }).waitFor();
    const context = await browser.newContext({ viewport: { width: 390, height: 800 } });
    const fresh = await ui.watchedPage(context, `${USER}-again`);
    await ui.login(fresh, USER, FIRST_PASSWORD, { expectFailure: true });
    await fresh.locator("#login-error").filter({ hasText: /\S/ }).waitFor();
    await ui.login(fresh, USER, NEW_PASSWORD);
    await ui.card(fresh, VM).waitFor();
    await context.close();
  });
}

async function forcedDelete(page) {
  await ui.step("deleting erin is refused (she owns erin1); with everything, she and erin1 go", async () => {
    await userButton(page, "Delete").click();
    await page.click("#confirm-ok");
    await page.locator("#user-error", { hasText: `user ${USER} owns` }).waitFor();
    await page.locator("#user-error", { hasText: VM }).waitFor();
    await userRow(page).waitFor();
    await page.click("#user-force-delete");
    await page.locator("#confirm-text", { hasText: VM }).waitFor();
    await page.locator("#confirm-ok", { hasText: "Delete with everything" }).click();
    await userRow(page).waitFor({ state: "detached" });
    await vmRow(page).waitFor({ state: "detached" });
    await page.locator("#user-force").waitFor({ state: "hidden" });
    await page.locator("#toast", { hasText: `${USER} deleted with 1 VM and 0 images` }).waitFor();
    // The overview follows: the admin's install VM base1 is the one VM left.
    await page.waitForFunction(() => document.querySelector('#overview [data-stat="vms"]')?.textContent === "0 / 1");
    await expectCall(page, "GET", `/api/v1/users/${USER}`, null, 404);
  });
}

/** The steps above, on the admin's `page` (Admin open); erin's contexts live in `browser`. */
export async function manageOneUser(browser, page) {
  const { erin, token } = await addErin(browser, page);
  await sortAndRole(page);
  await vmsOfErin(page);
  await tokens(page, erin, token);
  await password(browser, page);
  await forcedDelete(page);
}

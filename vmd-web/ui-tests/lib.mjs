// Helpers of the browser journeys: launching Debian's chromium through playwright-core,
// named steps that say which expectation failed, screenshots kept as artifacts, and a
// record of page errors, CSP violations and requests to any host but vmd-web (each one
// fails the journey).

import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

/** Settings from the environment set by vmd-web/tests/ui.rs. */
export const env = {
  url: need("VMD_WEB_URL"),
  image: need("UI_IMAGE"),
  user: need("UI_USER"),
  password: need("UI_PASSWORD"),
  otherUser: need("UI_OTHER_USER"),
  otherPassword: need("UI_OTHER_PASSWORD"),
  artifacts: process.env.UI_ARTIFACTS || "ui-artifacts",
  chromium: process.env.CHROMIUM || "/usr/bin/chromium",
};

function need(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is not set`);
  return value;
}

/** Prints `message` and exits with status 1. */
export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

const problems = [];
const pages = [];
let shots = 0;

/** Runs a journey: launches chromium, runs `body(browser)`, fails on any page problem,
 * closes the browser, prints "journey passed" or exits 1 with the failed step. */
export function journey(body) {
  const run = async () => {
    const browser = await launch();
    try {
      await body(browser);
      assertNoPageProblems();
    } finally {
      await browser.close();
    }
  };
  run().then(() => console.log("journey passed"), (err) => fail(err.message));
}

/** Launches chromium (tests run as root: no sandbox). */
export async function launch() {
  mkdirSync(env.artifacts, { recursive: true });
  return chromium.launch({ executablePath: env.chromium, args: ["--no-sandbox"] });
}

/** A new page in `context` whose errors and CSP violations are recorded. */
export async function watchedPage(context, label) {
  const page = await context.newPage();
  watch(page, label);
  return page;
}

/** Records `page`'s errors under `label`. */
export function watch(page, label) {
  pages.push([label, page]);
  page.on("pageerror", (err) => problems.push(`${label}: page error: ${err.message}`));
  // The UI must need nothing but vmd-web: no fonts, CDNs or other hosts.
  const host = new URL(env.url).host;
  page.on("request", (req) => {
    const url = new URL(req.url());
    if (url.host !== host && !["data:", "blob:"].includes(url.protocol)) {
      problems.push(`${label}: a request to another host: ${req.url()}`);
    }
  });
  page.on("console", (msg) => {
    const text = msg.text();
    if (msg.type() === "error" && /Content Security Policy|Refused to/i.test(text)) {
      problems.push(`${label}: ${text}`);
    }
  });
}

/** Fails if any page reported an error or a CSP violation. */
export function assertNoPageProblems() {
  if (problems.length) throw new Error(`errors in the pages:\n  ${problems.join("\n  ")}`);
}

/** Saves a screenshot of every open page, named after `name`. */
export async function screenshots(name) {
  for (const [label, page] of pages) {
    if (page.isClosed()) continue;
    shots += 1;
    const path = `${env.artifacts}/${String(shots).padStart(2, "0")}-${name}-${label}.png`;
    await page.screenshot({ path, fullPage: true }).catch(() => {});
  }
}

/** Saves a viewport screenshot of `page` for the docs as `docs-NAME.png` among the
 * artifacts, and as `NAME.png` in $UI_DOCS when set (scripts/screenshots.sh sets it to
 * docs/img to refresh the pictures in the docs and the README). */
export async function docShot(page, name) {
  await page.bringToFront();
  // Let the browser paint what the last step changed before the picture is taken.
  await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  await page.screenshot({ path: `${env.artifacts}/docs-${name}.png` });
  if (process.env.UI_DOCS) await page.screenshot({ path: `${process.env.UI_DOCS}/${name}.png` });
}

/** Runs one named step; a failure names the step. */
export async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
  } catch (err) {
    await screenshots(`failed-${name.replace(/\W+/g, "-")}`);
    const seen = problems.length ? `\nerrors in the pages:\n  ${problems.join("\n  ")}` : "";
    throw new Error(`step "${name}" failed: ${err.message}${seen}`);
  }
  console.log(`ok: ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

/** Logs in on `page` as `user`, ending on the dashboard (unless a failure is expected). */
export async function login(page, user, password, { expectFailure = false } = {}) {
  await page.goto(env.url);
  await page.locator("#login-form").waitFor({ state: "visible" });
  await page.fill("#login-user", user);
  await page.fill("#login-password", password);
  await page.click("#login-form button[type=submit]");
  if (!expectFailure) await page.locator("#dashboard-view").waitFor({ state: "visible" });
}

/** The card of VM `vm` on `page`. */
export const card = (page, vm) => page.locator(`.card[data-vm="${vm}"]`);

/** Waits until the card of `vm` shows `state`. */
export async function waitState(page, vm, state, timeout) {
  await page.locator(`.card[data-vm="${vm}"][data-state="${state}"]`).waitFor({ timeout });
}

/** Opens the ⋮ menu of `vm` and picks `action` (a menu item's data-action). */
export async function menuAction(page, vm, action) {
  // A tab behind another gets no animation frames, which Playwright's clicks wait for.
  await page.bringToFront();
  await card(page, vm).locator(".menu-button").click();
  await page.locator(`#vm-menu [data-action="${action}"]:not([disabled])`).click();
}

/** Waits until the xterm.js rows under `selector` contain `text`. */
export async function waitTerminalText(page, selector, text, timeout) {
  await page.waitForFunction(
    ([sel, want]) => {
      const rows = document.querySelector(`${sel} .xterm-rows`);
      return rows && rows.textContent.replace(/\u00a0/g, " ").includes(want);
    },
    [selector, text],
    { timeout, polling: 250 },
  );
}

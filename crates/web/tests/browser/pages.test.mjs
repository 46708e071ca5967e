// oc serve's pages in a real browser: Debian's Chromium, driven by playwright-core (never a
// downloaded browser), against an `oc serve` on 127.0.0.1 over a data directory this file
// fills with `oc`. Run by `cargo test` (crates/cli/tests/it/browser.rs), or by hand:
//   OC_BIN=target/debug/oc node --test crates/web/tests/browser/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, existsSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import axe from "axe-core";

const OC = resolve(process.env.OC_BIN ?? "target/debug/oc");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = resolve(process.env.OC_WEB_SHOTS ?? "target/web");
const HOSTILE = "<img src=x onerror=alert(1)> build docs";

let dataDir, browser;
const servers = [];

const oc = (...args) => execFileSync(OC, ["--data-dir", dataDir, ...args], { encoding: "utf8" });
const statusOf = (id) => JSON.parse(oc("--json", "task", "show", id)).data.status;

// Starts `oc serve` with `args` on a free port; resolves to its base URL and the login URL it
// printed.
async function serve(...args) {
  const child = spawn(OC, ["--data-dir", dataDir, "--json", "serve", "--addr", "127.0.0.1:0", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  servers.push(child);
  const line = await new Promise((ok, fail) => {
    createInterface({ input: child.stdout }).once("line", ok);
    child.once("exit", (code) => fail(new Error(`oc serve exited with ${code}`)));
  });
  const { addr, login_url } = JSON.parse(line).data;
  return { base: `http://${addr}`, login: login_url };
}

// `base` is the server the tests act on; `context` is a browser logged in to it through the
// URL it printed, as a person opening that URL is.
let base, login, readOnly, context;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "oc-web-"));
  oc("task", "create", HOSTILE, "--id", "t-fail", "--label", "docs");
  oc("task", "start", "t-fail", "--agent", "agent-<b>1</b>");
  oc("task", "fail", "t-fail", "--error", "<script>boom()</script>");
  oc("task", "create", "index the repository", "--id", "t-run");
  oc("task", "claim", "t-run", "--agent", "agent-2", "--lease", "10m");
  oc("task", "create", "write the changelog", "--id", "t-wait", "--depends-on", "t-run");
  oc("task", "create", "later", "--id", "t-live");
  oc("lock", "acquire", "repo/src/lib.rs", "--owner", "agent-2", "--ttl", "10m");
  oc("logs", "append", "t-run", "--level", "warn", "--message", "<i>flaky</i> test, retrying");
  oc("decisions", "add", "t-run", "--agent", "agent-2", "--decision", "use a B-tree", "--reasoning", "range scans");
  ({ base, login } = await serve());
  const ro = await serve("--read-only");
  readOnly = ro.base;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright adds --headless and --no-sandbox; nothing may reach past this machine.
    args: [
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
    ],
  });
  mkdirSync(SHOTS, { recursive: true });
  context = await browser.newContext();
  const page = await context.newPage();
  const response = await page.goto(login);
  assert.equal(response.status(), 200);
  assert.equal(page.url(), `${base}/`, "the login token is no longer in the address bar");
  // Every read needs a session too, on a read-only server as well.
  assert.equal((await page.goto(ro.login)).status(), 200);
  await page.close();
});

after(async () => {
  await browser?.close();
  for (const s of servers) s.kill();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const PAGES = [
  ["overview", "/", "Overview"],
  ["tasks", "/ui/tasks", "Tasks"],
  ["task", "/ui/tasks/t-run", "index the repository"],
  ["locks", "/ui/locks", "Locks"],
  ["agents", "/ui/agents", "Agents"],
  ["alerts", "/ui/alerts", "Alerts"],
];

test("every page loads, passes axe-core, and is saved as a screenshot", async () => {
  const page = await context.newPage();
  for (const [name, path, heading] of PAGES) {
    const response = await page.goto(`${base}${path}`);
    assert.equal(response.status(), 200, path);
    assert.equal(await page.locator("h1").textContent(), heading, path);
    // Evaluated through the DevTools protocol, which the page's CSP does not block.
    await page.evaluate(axe.source);
    const { violations } = await page.evaluate(() =>
      window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa"] } }),
    );
    const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    assert.deepEqual(
      bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
      [],
      `${path}: serious or critical accessibility violations`,
    );
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  }
  await page.close();
});

test("what agents wrote shows as text, never as markup", async () => {
  const page = await context.newPage();
  let alerted = false;
  page.on("dialog", (d) => {
    alerted = true;
    d.dismiss();
  });
  await page.goto(`${base}/ui/tasks?status=failed`);
  await page.getByRole("link", { name: HOSTILE }).waitFor();
  assert.ok((await page.locator("main").textContent()).includes("agent-<b>1</b>"), "the owner");
  await page.goto(`${base}/ui/tasks/t-fail`);
  assert.equal(await page.locator("h1").textContent(), HOSTILE);
  assert.ok((await page.locator("main").textContent()).includes("<script>boom()</script>"));
  await page.goto(`${base}/ui/tasks/t-run`);
  assert.ok((await page.locator("main").textContent()).includes("<i>flaky</i> test"));
  assert.equal(await page.locator("img").count(), 0);
  assert.equal(await page.locator("main b, main i").count(), 0);
  assert.equal(alerted, false, "no script ran");
  await page.close();
});

test("Retry moves a failed task back to pending without a reload", async () => {
  const page = await context.newPage();
  await page.goto(`${base}/ui/tasks/t-fail`);
  await page.evaluate(() => {
    window.notReloaded = true;
  });
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/ui/tasks/t-fail/retry") && r.request().method() === "POST"),
    page.getByRole("button", { name: "Retry" }).click(),
  ]);
  assert.equal(response.status(), 303);
  await page.locator("main .status.pending").first().waitFor();
  assert.equal(await page.evaluate(() => window.notReloaded), true, "the page was not reloaded");
  assert.equal(statusOf("t-fail"), "pending");
  await page.screenshot({ path: join(SHOTS, "task-retried.png"), fullPage: true });
  await page.close();
});

test("a live page shows changes made elsewhere, without a reload", async () => {
  const page = await context.newPage();
  await page.goto(`${base}/ui/tasks/t-live`);
  await page.evaluate(() => {
    window.notReloaded = true;
  });
  oc("task", "cancel", "t-live");
  await page.locator("main .status.cancelled").first().waitFor({ timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.notReloaded), true);
  await page.close();
});

test("a form posted from another origin is refused", async () => {
  oc("task", "create", "target", "--id", "t-csrf");
  oc("task", "start", "t-csrf", "--agent", "a");
  oc("task", "fail", "t-csrf", "--error", "x");
  // An "attacker" page on another port of 127.0.0.1: same site, different origin.
  const evil = createServer((_, res) => {
    res.setHeader("Content-Type", "text/html");
    res.end(`<form id=f method=post action="${base}/ui/tasks/t-csrf/retry"></form><script>f.submit()</script>`);
  });
  await new Promise((ok) => evil.listen(0, "127.0.0.1", ok));
  const page = await context.newPage();
  const answer = page.waitForResponse((r) => r.url().endsWith("/ui/tasks/t-csrf/retry"));
  await page.goto(`http://127.0.0.1:${evil.address().port}/`);
  assert.equal((await answer).status(), 403);
  assert.equal(statusOf("t-csrf"), "failed");
  evil.close();
  await page.close();
});

test("--read-only shows actions disabled and the server refuses them", async () => {
  oc("task", "create", "kept", "--id", "t-ro");
  oc("task", "start", "t-ro", "--agent", "a");
  oc("task", "fail", "t-ro", "--error", "x");
  const page = await context.newPage();
  await page.goto(`${readOnly}/ui/tasks/t-ro`);
  assert.equal(await page.getByRole("button", { name: "Retry" }).isDisabled(), true);
  const status = await page.evaluate(async () => (await fetch("/ui/tasks/t-ro/retry", { method: "POST" })).status);
  assert.equal(status, 403);
  assert.equal(statusOf("t-ro"), "failed");
  await page.close();
});

// axe-core's serious or critical WCAG 2 A/AA violations on `page`, by rule.
async function seriousViolations(page) {
  await page.evaluate(axe.source);
  const { violations } = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa"] } }),
  );
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id);
}

test("without a session, a page or an action shows how to log in, with scripts off, and changes nothing", async () => {
  oc("task", "create", "guarded", "--id", "t-guard");
  oc("task", "start", "t-guard", "--agent", "a");
  oc("task", "fail", "t-guard", "--error", "x");
  const stranger = await browser.newContext({ javaScriptEnabled: false });
  const page = await stranger.newPage();
  const read = await page.goto(`${base}/ui/tasks/t-guard`);
  assert.equal(read.status(), 401);
  await page.getByRole("heading", { name: "Log in to read" }).waitFor();
  const text = await page.locator("main").textContent();
  assert.ok(text.includes("Open the URL oc serve printed") && text.includes("--no-auth"), text);
  assert.ok(!text.includes("guarded"), "nothing of the task is shown");
  const acted = await page.request.post(`${base}/ui/tasks/t-guard/retry`);
  assert.equal(acted.status(), 401);
  assert.ok((await acted.text()).includes("Log in to act"));
  assert.equal(statusOf("t-guard"), "failed");
  // The printed URL works once: a second browser opening it gets no session.
  const replay = await page.goto(login);
  assert.equal(replay.status(), 403);
  assert.ok((await page.locator("main").textContent()).includes("used already"));
  await page.screenshot({ path: join(SHOTS, "login-needed.png"), fullPage: true });
  await stranger.close();
});

test("the login pages pass axe-core; another browser logs in with a new URL, then out", async () => {
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.getByRole("button", { name: "Log in another browser" }).click();
  const url = (await page.locator(".login-url").textContent()).trim();
  assert.ok(url.startsWith(`${base}/login?token=`), url);
  assert.deepEqual(await seriousViolations(page), []);
  const other = await browser.newContext();
  const second = await other.newPage();
  await second.goto(url);
  assert.equal(second.url(), `${base}/`);
  await second.getByRole("button", { name: "Log out" }).click();
  await second.getByRole("heading", { name: "Logged out" }).waitFor();
  assert.deepEqual(await seriousViolations(second), []);
  const status = await second.evaluate(async () => (await fetch("/ui/tasks/t-live/retry", { method: "POST" })).status);
  assert.equal(status, 401, "logged out");
  // The first browser is still logged in: its action passes the guard (and finds no task).
  const first = await page.evaluate(async () => (await fetch("/ui/tasks/t-none/retry", { method: "POST" })).status);
  assert.equal(first, 404);
  await other.close();
  await page.close();
});

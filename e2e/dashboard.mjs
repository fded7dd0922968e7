// End-to-end test of the keygate dashboard in a real browser: Debian's Chromium, headless,
// driven by playwright-core. It starts the keygate binary on a free local port with a fresh
// SQLite database, then does what a person would: sign up, create a key, read the secret
// shown once, use it against the API, revoke it through the confirmation dialog, and see the
// API refuse it. Along the way it checks the dialog is keyboard-usable and the keys page fits
// a 360 px screen, and takes the screenshot the README shows.
//
//   node e2e/dashboard.mjs                 # builds nothing: uses target/debug/keygate
//   E2E_KEYGATE_BIN=path/to/keygate node e2e/dashboard.mjs
//   E2E_SCREENSHOT=out.png ...            # where the screenshot goes (default docs/screenshot-keys.png)
//
// Exits 0 when every step passed, 1 otherwise (with the server's log).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// The flags this machine needs: no sandbox (root), and none of Chromium's background
// connections, which a closed network refuses.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const PASSWORD = 'correct horse battery staple';

let passed = 0;
const step = (name) => { passed += 1; console.log(`ok ${passed} - ${name}`); };
function check(cond, message) { if (!cond) throw new Error(`check failed: ${message}`); }

function findBinary() {
  const candidates = [process.env.E2E_KEYGATE_BIN, path.join(root, 'target/debug/keygate'), path.join(root, 'target/release/keygate')];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) throw new Error('no keygate binary: build it (cargo build -p keygate) or set E2E_KEYGATE_BIN');
  return found;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

async function waitHealthy(base, server, log) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`keygate exited early (${server.exitCode}):\n${log.join('')}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('keygate did not become healthy within 60 s');
}

async function startKeygate(dir) {
  const port = await freePort();
  const config = path.join(dir, 'keygate.toml');
  writeFileSync(config, [
    `listen = "127.0.0.1:${port}"`,
    `database_url = "sqlite://${path.join(dir, 'keygate.db')}"`,
    '[usage]', 'flush_interval_ms = 100',
    // Plain HTTP on localhost: cookies without `Secure` and the `__Host-` prefix.
    '[dashboard]', 'secure_cookies = false',
    '',
  ].join('\n'));
  const log = [];
  // keygate reads KEYGATE_* variables as settings: the test's server gets none of the caller's.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEYGATE_')));
  const server = spawn(findBinary(), ['serve', '--config', config], { env: { ...env, RUST_LOG: process.env.E2E_RUST_LOG || 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (d) => log.push(d.toString()));
  server.stderr.on('data', (d) => log.push(d.toString()));
  const base = `http://127.0.0.1:${port}`;
  await waitHealthy(base, server, log);
  return { base, server, log };
}

async function apiUser(base, key) {
  const r = await fetch(`${base}/v1/user`, { headers: { 'X-API-Key': key } });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function run() {
  const work = mkdtempSync(path.join(os.tmpdir(), 'keygate-e2e-'));
  const profile = mkdtempSync(path.join(os.tmpdir(), 'keygate-e2e-chromium-'));
  const screenshot = process.env.E2E_SCREENSHOT || path.join(root, 'docs/screenshot-keys.png');
  let keygate;
  let context;
  let page;
  try {
    keygate = await startKeygate(work);
    const { base } = keygate;
    step(`keygate serves on ${base}`);

    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 860 },
    });
    page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(15_000);
    const cspViolations = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });

    // Sign up.
    await page.goto(`${base}/app`);
    check(page.url().endsWith('/app/login'), `signed out, /app leads to sign-in (at ${page.url()})`);
    await page.getByRole('link', { name: 'Create an account' }).click();
    const email = `ada@e2e-${Date.now().toString(36)}.example-corp.com`;
    await page.getByLabel('Your name').fill('Ada Lovelace');
    await page.getByLabel('Work email').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(/\/app\/a\/acc_[A-Za-z0-9]+\/keys$/);
    check(await page.getByRole('status').textContent().then((t) => t.includes('Welcome')), 'a welcome message');
    check(await page.getByText('API access: yes').count() === 1, 'plan and API access are shown');
    step('sign up lands on Personal API keys');

    // Create a key and read the secret shown once.
    await page.getByRole('link', { name: 'New key' }).click();
    await page.getByLabel('Name', { exact: true }).fill('ci-deploy');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByText("you won't see it again").waitFor();
    const secret = (await page.locator('#new-key-secret').textContent()).trim();
    check(/^kg_[A-Za-z0-9]{38}$/.test(secret), `a user key is shown (${secret.slice(0, 11)}…)`);
    check(!page.url().includes(secret), 'the secret is not in the URL');
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.locator('#copy-status').filter({ hasText: /Copied|Selected/ }).waitFor();
    step('a new key is shown once, with a copy button');

    // Use it against the API.
    const ok = await apiUser(base, secret);
    check(ok.status === 200 && ok.body.email === email, `GET /v1/user with the key answers 200 (${ok.status})`);
    await apiUser(base, secret);
    step('the key works against the API');

    // A second key, so the list (and the screenshot) shows more than one.
    await page.getByRole('link', { name: /back to the keys/ }).click();
    await page.getByRole('link', { name: 'New key' }).click();
    await page.getByLabel('Name', { exact: true }).fill('sap-erp-export');
    await page.getByLabel('Scopes').fill('companies:read leads:create');
    await page.getByLabel('Requests').fill('100');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByText("you won't see it again").waitFor();
    await page.getByRole('link', { name: /back to the keys/ }).click();
    // Usage reaches the list within a flush interval.
    await new Promise((r) => setTimeout(r, 400));
    await page.reload();
    const row = page.locator('tr', { has: page.getByRole('rowheader', { name: 'ci-deploy' }) });
    check(await row.locator('[data-label="Status"]').textContent().then((t) => t.trim() === 'active'), 'listed as active');
    check(await row.locator('[data-label="Requests"]').textContent().then((t) => t.trim() === '2'), 'request count is shown');
    check(!(await page.content()).includes(secret), 'the list never shows the secret');
    step('the list shows key_part, name, status, created, last used, requests, expiry');

    // The confirmation dialog: opens on Revoke, focus on Cancel, Escape closes it.
    await row.getByRole('link', { name: /Revoke/ }).click();
    const dialog = page.getByRole('dialog', { name: /Revoke “ci-deploy”/ });
    await dialog.waitFor();
    check(await page.evaluate(() => document.activeElement && document.activeElement.textContent.trim()) === 'Cancel', 'focus starts on Cancel');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    check((await apiUser(base, secret)).status === 200, 'cancelling revokes nothing');
    step('the revoke dialog is keyboard-usable and cancellable');

    // Revoke through the dialog; the API refuses the key at once.
    await row.getByRole('link', { name: /Revoke/ }).click();
    await dialog.getByRole('button', { name: 'Revoke key' }).click();
    await page.getByRole('status').filter({ hasText: 'is revoked' }).waitFor();
    check(await row.locator('[data-label="Status"]').textContent().then((t) => t.trim() === 'revoked'), 'listed as revoked');
    const refused = await apiUser(base, secret);
    check(refused.status === 401 && refused.body.error.code === 'api_key_revoked', `the API refuses it (${refused.status} ${refused.body?.error?.code})`);
    step('revoked through the dialog: 401 api_key_revoked');

    mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.setViewportSize({ width: 1280, height: 560 });
    await page.screenshot({ path: screenshot, fullPage: true });
    step(`screenshot of the keys page: ${path.relative(root, screenshot)}`);

    // Readable at 360 px: nothing wider than the screen.
    await page.setViewportSize({ width: 360, height: 780 });
    await page.reload();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 360, `no horizontal scrolling at 360 px (page is ${width} px wide)`);
    if (process.env.E2E_SCREENSHOT_NARROW) await page.screenshot({ path: process.env.E2E_SCREENSHOT_NARROW, fullPage: true });
    step('the keys page fits a 360 px screen');

    check(cspViolations.length === 0, `no Content-Security-Policy violations: ${cspViolations.join(' | ')}`);
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/app\/login$/);
    await page.goto(`${base}/app/a/acc_any/keys`);
    check(page.url().endsWith('/app/login'), 'signed out: pages need signing in again');
    step('sign out');
    console.log(`${passed} passed, 0 failed`);
  } catch (e) {
    console.error(`not ok ${passed + 1} - ${e.message}`);
    if (page) {
      const text = await page.locator('main').innerText().catch(() => '(no page)');
      console.error(`--- page ${page.url()} ---\n${text.slice(0, 2000)}`);
    }
    if (keygate) console.error(`--- keygate log ---\n${keygate.log.join('')}`);
    console.log(`${passed} passed, 1 failed`);
    process.exitCode = 1;
  } finally {
    if (context) await context.close().catch(() => {});
    if (keygate) keygate.server.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
  }
}

const guard = setTimeout(() => { console.error('not ok - the browser test took longer than 180 s'); process.exit(1); }, 180_000);
await run();
clearTimeout(guard);

// The built dashboard in a real browser: playwright-core drives Debian's chromium (no browser
// download) against a small static node:http server on 127.0.0.1 that answers the API's session
// routes as the server does for a visitor without a session (401). The server sends the content
// policy the HTTP API sends (self only), so an inline script or style would show as a console error.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard } from '../src/build.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = resolve(import.meta.dirname, '..', 'test-artifacts');
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json' };

/** Serves `root` as the HTTP API serves the dashboard, and answers the session routes with 401. */
function serve(root: string): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    res.setHeader('content-security-policy', CSP);
    res.setHeader('x-content-type-options', 'nosniff');
    if (url.pathname.startsWith('/api/')) {
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'unauthorized', message: url.pathname === '/api/v1/session' && req.method === 'POST' ? 'unknown token' : 'no session' }));
      return;
    }
    const file = normalize(join(root, url.pathname === '/' ? 'index.html' : url.pathname));
    let ok = file.startsWith(root);
    try {
      ok &&= statSync(file).isFile();
    } catch {
      ok = false;
    }
    if (!ok) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'not_found', message: url.pathname }));
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

describe('the dashboard in chromium', () => {
  let dir: string;
  let server: Server;
  let origin: string;
  let context: BrowserContext | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warren-dashboard-browser-'));
    const built = await buildDashboard({ outDir: join(dir, 'site') });
    server = await serve(built.outDir);
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
      viewport: { width: 1280, height: 800 },
    });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await context?.close();
    await new Promise((ok) => server.close(ok));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens `/` in a new page, collecting console errors, page errors and every requested URL. */
  async function open(colorScheme: 'light' | 'dark'): Promise<{ page: Page; errors: string[]; requests: string[]; unauthorized: string[] }> {
    const page = await context!.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    const unauthorized: string[] = [];
    page.on('console', (m) => {
      // Chromium reports each 401 answer as a failed resource load; those are checked below.
      if (m.type() === 'error' && !/status of 401/.test(m.text())) errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => requests.push(r.url()));
    page.on('response', (r) => {
      if (r.status() === 401) unauthorized.push(`${r.request().method()} ${new URL(r.url()).pathname}`);
    });
    await page.emulateMedia({ colorScheme });
    await page.goto(`${origin}/`);
    return { page, errors, requests, unauthorized };
  }

  it('shows the sign-in view, asks nothing of any host but 127.0.0.1 and logs no error', async () => {
    const { page, errors, requests, unauthorized } = await open('light');
    const token = page.getByTestId('signin-token');
    await token.waitFor({ state: 'visible', timeout: 30_000 });
    await expect(page.getByTestId('signin-submit').isDisabled()).resolves.toBe(true);
    // Keyboard: Tab reaches the token field; typing there and Enter submits the form.
    await page.keyboard.press('Tab');
    await expect(page.evaluate(() => document.activeElement?.id)).resolves.toBe('token');
    await page.screenshot({ path: join(ARTIFACTS, 'signin-light.png') });

    // A wrong token: the server's 401 becomes a message, and the view stays.
    await page.keyboard.type('wrn_not-a-token');
    await page.keyboard.press('Enter');
    await page.getByTestId('signin-error').waitFor({ state: 'visible', timeout: 30_000 });
    await expect(page.getByTestId('signin-error').textContent()).resolves.toMatch(/not valid/);

    expect(errors).toEqual([]);
    expect(requests.length).toBeGreaterThan(2);
    for (const url of requests) expect(new URL(url).host, url).toBe(new URL(origin).host);
    expect([...new Set(unauthorized)].sort()).toEqual(['GET /api/v1/session', 'POST /api/v1/session']);
    await page.close();
  });

  it('follows a dark system theme and fits a phone', async () => {
    const { page, errors } = await open('dark');
    await page.getByTestId('signin-view').waitFor({ state: 'visible', timeout: 30_000 });
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    expect(background).toBe('rgb(15, 18, 22)');
    // A phone's width: nothing sticks out sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await expect(page.evaluate(() => document.documentElement.scrollWidth)).resolves.toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(ARTIFACTS, 'signin-dark-phone.png') });
    expect(errors).toEqual([]);
    await page.close();
  });
});

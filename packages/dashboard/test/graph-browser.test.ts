// The collaboration graph in a real browser: Debian's chromium (through playwright-core, no browser
// download) against the real HTTP API (@warren/http on a free port of 127.0.0.1) over a real SQLite
// registry whose message_counts rows are written with MessageLedger, as the supervisor writes them.
// First with an empty ledger, then with direct messages (some denied) and a topic. The screenshot is
// kept under test-artifacts/dashboard/.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpServer, type HttpServer } from '@warren/http';
import { MessageLedger } from '@warren/registry';
import { buildDashboard } from '../src/build.js';
import { openTestPorts, type TestPorts } from '../../http/test/support.js';

const CHROMIUM = '/usr/bin/chromium';
const REPO = resolve(import.meta.dirname, '..', '..', '..');
const ARTIFACTS = join(REPO, 'test-artifacts', 'dashboard');

describe('the collaboration graph in chromium', () => {
  let dir: string;
  let ports: TestPorts;
  let server: HttpServer;
  let context: BrowserContext | undefined;
  let token: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warren-dashboard-graph-'));
    const built = await buildDashboard({ outDir: join(dir, 'site') });
    ports = await openTestPorts();
    server = await startHttpServer(ports, { host: '127.0.0.1', port: 0, staticDir: built.outDir, rateLimit: false });
    token = ports.tokens.create({ name: 'vera', role: 'viewer' }, Date.now()).token;
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
      viewport: { width: 1280, height: 800 },
    });
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(REPO, 'test-artifacts', '.gitignore'), '*\n');
  });

  afterAll(async () => {
    await context?.close();
    await server?.close();
    ports?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A signed-in page on the graph view, with console and page errors collected. */
  async function graphPage(): Promise<{ page: Page; errors: string[] }> {
    const page = await context!.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.emulateMedia({ colorScheme: 'light' });
    await page.goto(`${server.url}/signin?token=${token}`);
    await page.getByTestId('whoami').waitFor({ state: 'visible', timeout: 30_000 });
    await page.getByTestId('nav-graph').click();
    await page.getByTestId('graph-view').waitFor({ state: 'visible', timeout: 30_000 });
    return { page, errors };
  }

  it('says there are no messages yet over an empty ledger', async () => {
    const { page, errors } = await graphPage();
    await page.getByText('No messages between agents yet.').waitFor({ state: 'visible', timeout: 30_000 });
    expect(await page.getByTestId('graph-svg').count()).toBe(0);
    expect(await page.getByTestId('graph-edges').count()).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('draws agents and a topic node, the edge counts with denied ones, and the table of edges', async () => {
    const ledger = new MessageLedger(ports.db);
    const nowMs = Date.now();
    for (let i = 0; i < 3; i++) ledger.record({ from: 'manager-1', to: 'worker-1', topic: '', bytes: 100, allowed: true, timeMs: nowMs - 60_000 + i });
    ledger.record({ from: 'worker-1', to: 'manager-1', topic: '', bytes: 2_048, allowed: true, timeMs: nowMs - 30_000 });
    ledger.record({ from: 'worker-2', to: 'manager-1', topic: '', bytes: 50, allowed: true, timeMs: nowMs - 20_000 });
    ledger.record({ from: 'worker-2', to: 'manager-1', topic: '', bytes: 50, allowed: false, timeMs: nowMs - 10_000 });
    ledger.record({ from: 'worker-1', to: '*', topic: 'builds', bytes: 10, allowed: true, timeMs: nowMs - 5_000 });
    ledger.record({ from: 'worker-2', to: '*', topic: 'builds', bytes: 10, allowed: true, timeMs: nowMs - 4_000 });

    const { page, errors } = await graphPage();
    const svg = page.getByTestId('graph-svg');
    await svg.waitFor({ state: 'visible', timeout: 30_000 });
    expect(await page.getByTestId('graph-node').locator('text').allTextContents()).toEqual(['manager-1', 'worker-1', 'worker-2']);
    const topic = page.getByTestId('graph-topic');
    expect(await topic.count()).toBe(1);
    expect(await topic.locator('rect').count()).toBe(1);
    expect(await topic.locator('text').textContent()).toBe('# builds');
    expect((await page.getByTestId('graph-edge-label').allTextContents()).sort()).toEqual(['1', '1', '1', '2 (1 denied)', '3'].sort());
    expect(await page.getByTestId('graph-edge').locator('title').allTextContents()).toContain('worker-2 → manager-1: 2 message(s), 1 denied');

    const rows = await page
      .getByTestId('graph-edges')
      .locator('tbody tr')
      .evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 5).map((td) => td.textContent?.replace(/\s+/g, ' ').trim())));
    expect(rows).toEqual([
      ['manager-1', 'worker-1', '3', '0', '300 B'],
      ['worker-2', 'manager-1', '2', '1', '50 B'],
      ['worker-1', 'manager-1', '1', '0', '2.0 KiB'],
      ['worker-1', 'topic builds', '1', '0', '10 B'],
      ['worker-2', 'topic builds', '1', '0', '10 B'],
    ]);
    await page.screenshot({ path: join(ARTIFACTS, 'graph.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });
});

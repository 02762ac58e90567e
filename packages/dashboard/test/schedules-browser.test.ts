// The Schedules view in a real browser: Debian's chromium (playwright-core, no browser download)
// against the real HTTP API (@warren/http on a free port of 127.0.0.1) whose schedules port answers
// what `warren up` would for a board with a due schedule (Warren was down at its fire time), one
// waiting, one whose expression fires no more, and a schedule the file left out. The due one is
// marked and listed first; times are shown on each schedule's own clock; the last task links to its
// task view. (test/dashboard/schedules-browser.test.ts runs the same view against `warren up`.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpServer, type HttpServer, type SchedulesView } from '@warren/http';
import { buildDashboard } from '../src/build.js';
import { openTestPorts, taskRow, type TestPorts } from '../../http/test/support.js';

const CHROMIUM = '/usr/bin/chromium';
const HOUR = 3_600_000;

describe('the Schedules view in chromium', () => {
  let dir: string;
  let ports: TestPorts;
  let server: HttpServer;
  let context: BrowserContext | undefined;
  let token: string;
  let view: SchedulesView;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warren-dashboard-schedules-'));
    const built = await buildDashboard({ outDir: join(dir, 'site') });
    ports = await openTestPorts();
    const nowMs = Date.now();
    ports.registry.state.putTask(taskRow('nightly-2026-12-06', { state: 'succeeded' }));
    view = {
      file: '/srv/board/kanban/schedules.yaml',
      schedules: [
        { name: 'weekly', cron: '0 9 * * 1', timezone: 'Europe/Paris', lastFireMs: null, lastTaskId: null, nextFireMs: nowMs + 50 * HOUR, due: false },
        { name: 'nightly', cron: '0 2 * * *', timezone: null, lastFireMs: nowMs - 26 * HOUR, lastTaskId: 'nightly-2026-12-06', nextFireMs: nowMs + 22 * HOUR, due: true },
        { name: 'new-year-2026', cron: '0 0 1 1 * 2026', timezone: null, lastFireMs: null, lastTaskId: null, nextFireMs: null, due: false },
      ],
      problems: [{ message: "/srv/board/kanban/schedules.yaml:14: schedule 'broken': 'cron' '0 25 * * *' hour 25 is out of range 0-23" }],
    };
    const withSchedules: TestPorts = Object.assign(ports, { schedules: () => view });
    server = await startHttpServer(withSchedules, { host: '127.0.0.1', port: 0, staticDir: built.outDir, rateLimit: false });
    token = ports.tokens.create({ name: 'olga', role: 'operator' }, nowMs).token;
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
      viewport: { width: 1280, height: 800 },
    });
  });

  afterAll(async () => {
    await context?.close();
    await server?.close();
    ports?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('marks the due schedule and lists it first, shows times on each schedule\'s clock, the file\'s problems, and links the last task', async () => {
    const page = await context!.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}/signin?token=${token}`);
    await page.getByTestId('whoami').waitFor({ state: 'visible', timeout: 30_000 });
    await page.getByTestId('nav-schedules').click();
    await page.getByTestId('schedules-table').waitFor({ state: 'visible', timeout: 30_000 });

    const rows = page.getByTestId('schedule');
    expect(await rows.evaluateAll((r) => r.map((x) => [x.getAttribute('data-schedule'), x.getAttribute('data-due')]))).toEqual([
      ['nightly', 'true'],
      ['weekly', 'false'],
      ['new-year-2026', 'false'],
    ]);
    const row = (name: string) => page.locator(`[data-testid="schedule"][data-schedule="${name}"]`);
    await expect(row('nightly').getByTestId('schedule-due').textContent()).resolves.toBe('due');
    await expect(row('nightly').getByTestId('schedule-last').textContent()).resolves.toMatch(/^1 d 2 h ago\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    await expect(row('weekly').getByTestId('schedule-timezone').textContent()).resolves.toBe('Europe/Paris');
    await expect(row('weekly').getByTestId('schedule-next').textContent()).resolves.toMatch(/^in 2 d 1 h\d{4}-\d\d-\d\d \d\d:\d\d:\d\d Europe\/Paris$/);
    await expect(row('weekly').getByTestId('schedule-state').textContent()).resolves.toBe('waiting');
    await expect(row('new-year-2026').getByTestId('schedule-next').textContent()).resolves.toBe('–');
    await expect(row('new-year-2026').getByTestId('schedule-state').textContent()).resolves.toBe('ended');
    await expect(page.getByTestId('schedule-problem').allTextContents()).resolves.toEqual([view.problems[0]!.message]);
    await expect(page.getByTestId('schedules-file').textContent()).resolves.toBe(view.file);

    await row('nightly').locator('a[data-testid="schedule-task"]').click();
    await page.getByTestId('task-view').waitFor({ state: 'visible', timeout: 30_000 });
    expect(new URL(page.url()).hash).toBe('#/tasks/nightly-2026-12-06');
    expect(errors).toEqual([]);
    await page.close();
  });
});

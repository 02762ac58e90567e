// The dashboard against a real supervisor: `warren up --http 127.0.0.1:0` with a board serves the
// HTTP API and the built dashboard, and Debian's chromium (driven by playwright-core, no browser
// download) signs in with the operator token `warren up` printed, sees the agents and the cards,
// watches a card move while its task runs, opens its timeline, stops an agent through the
// confirmation dialog and verifies the audit chain. Screenshots are kept under
// test-artifacts/dashboard/; with WARREN_UPDATE_SCREENSHOTS=1 the README's light-theme 1280×800
// screenshots in docs/screenshots/ are written again too.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, repo, requireMachine, shellTask, startWarren, waitFor, type CliProcess } from '../../../test/support/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(repo, 'test-artifacts', 'dashboard');
const { layouts, running } = cleanUpAfterEach();
let context: BrowserContext | undefined;

beforeAll(() => requireMachine());
afterEach(async () => {
  await context?.close();
  context = undefined;
});

/** The dashboard address and sign-in token `warren up` printed on stderr. */
async function signInOf(up: CliProcess): Promise<{ origin: string; token: string }> {
  await waitFor('the sign-in link', () => /Sign in \(valid \d+ h\): \S+/.test(up.stderr()), 90_000);
  const link = new URL(/Sign in \(valid \d+ h\): (\S+)/.exec(up.stderr())![1]!);
  const token = link.searchParams.get('token');
  if (token === null) throw new Error(`no token in the sign-in link ${link.href}`);
  return { origin: link.origin, token };
}

const DOCS = join(repo, 'docs', 'screenshots');
const updateDocs = process.env.WARREN_UPDATE_SCREENSHOTS === '1';

/** Saves the page under test-artifacts/dashboard/ (whole page); `docs` names its README screenshot (the viewport). */
async function shot(page: Page, name: string, docs?: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  if (docs !== undefined && updateDocs) {
    mkdirSync(DOCS, { recursive: true });
    await page.screenshot({ path: join(DOCS, `${docs}.png`) });
  }
}

describe('the dashboard against warren up', () => {
  it('signs in, shows agents and cards, follows a running task, creates one, stops an agent, verifies and exports the audit', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // Keep the artifacts out of git wherever this runs.
    writeFileSync(join(repo, 'test-artifacts', '.gitignore'), '*\n');
    const made = makeTestLayout({
      first: shellTask('first', 'echo warming up; sleep 1'),
      second: shellTask('second', 'echo counting; seq 1 5', 'priority: high\n'),
      third: shellTask('third', 'echo a failure on purpose >&2; exit 3'),
    });
    layouts.push(made);
    const up = startWarren(made.args('up', '--http', '127.0.0.1:0', '--kill-grace', '1s'));
    running.push(up);
    const { origin, token } = await signInOf(up);
    const host = new URL(origin).host;

    context = await chromium.launchPersistentContext(join(made.dir, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
      viewport: { width: 1280, height: 800 },
      colorScheme: 'light',
    });
    const page = await context.newPage();
    const errors: string[] = [];
    const foreign: string[] = [];
    page.on('console', (m) => {
      // Before signing in, the session check is answered 401, which chromium logs as a failed load.
      if (m.type() === 'error' && !/status of 401/.test(m.text())) errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => {
      if (new URL(r.url()).host !== host) foreign.push(r.url());
    });

    // Sign in with the token.
    await page.goto(`${origin}/`);
    await page.getByTestId('signin-token').fill(token);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('fleet-view').waitFor({ timeout: 30_000 });

    // The agent that ran the first task.
    await page.getByTestId('agent-card').first().waitFor({ timeout: 90_000 });
    await waitFor('the first tasks to settle', () => ['first', 'second', 'third'].every((id) => /^status: (done|failed)$/m.test(made.file(id))), 120_000);
    // Two samples of cgroup usage or more: the sparklines draw a line.
    await page.locator('.spark path[d*="L"]').first().waitFor({ timeout: 60_000 });
    await shot(page, 'fleet', 'fleet');

    // The board: a new task file appears, is taken and moves to Done while the view is open.
    await page.getByTestId('nav-board').click();
    await page.getByTestId('board').waitFor({ timeout: 30_000 });
    await page.locator('[data-card="first"]').waitFor({ timeout: 30_000 });
    writeFileSync(join(made.dir, 'kanban', 'tasks', 'moving.md'), shellTask('moving', 'echo step one; sleep 6; echo step two'));
    const card = page.locator('[data-card="moving"]');
    await page.locator('[data-column="in_progress"] [data-card="moving"]').waitFor({ timeout: 90_000 });
    await shot(page, 'board-running', 'board');
    await page.locator('[data-column="done"] [data-card="moving"][data-state="succeeded"]').waitFor({ timeout: 90_000 });
    await shot(page, 'board-done');

    // A task created from the form is written to the board in its own format and shows in Backlog.
    await page.getByTestId('new-task').click();
    await page.getByTestId('new-task-title').fill('Written from the dashboard');
    await page.locator('[data-testid="new-task-form"] input[name="capabilities"]').fill('shell');
    await page.locator('[data-testid="new-task-form"] select[name="column"]').selectOption('backlog');
    await page.getByTestId('new-task-submit').click();
    await page.locator('[data-column="backlog"] [data-testid="card"]', { hasText: 'Written from the dashboard' }).waitFor({ timeout: 60_000 });

    // Its timeline.
    await card.click();
    await page.getByTestId('task-view').waitFor({ timeout: 30_000 });
    await page.getByTestId('attempt').first().waitFor({ timeout: 30_000 });
    await page.getByTestId('task-result').waitFor({ timeout: 30_000 });
    await expect(page.getByTestId('task-state').textContent()).resolves.toBe('succeeded');
    await shot(page, 'task', 'task');

    // Analytics and the collaboration graph load their chunks and draw.
    await page.getByTestId('nav-analytics').click();
    await page.getByTestId('analytics-view').waitFor({ timeout: 30_000 });
    await page.locator('[data-testid="chart-throughput"] canvas').waitFor({ timeout: 30_000 });
    await shot(page, 'analytics', 'analytics');
    await page.getByTestId('nav-graph').click();
    await page.getByTestId('graph-view').waitFor({ timeout: 30_000 });

    // Stop an agent, confirming in the dialog.
    await page.getByTestId('nav-fleet').click();
    const agentCard = page.locator('[data-testid="agent-card"]', { has: page.locator('[data-testid="agent-state"]', { hasText: 'running' }) }).first();
    await agentCard.waitFor({ timeout: 30_000 });
    const name = await agentCard.getAttribute('data-agent');
    await agentCard.getByTestId('agent-link').click();
    await page.getByTestId('agent-view').waitFor({ timeout: 30_000 });
    await page.getByTestId('agent-stop').click();
    await page.getByTestId('confirm-dialog').waitFor({ state: 'visible' });
    await shot(page, 'confirm-stop');
    await page.getByTestId('confirm-ok').click();
    await page.getByTestId('command-outcome').filter({ hasText: /done/ }).waitFor({ timeout: 60_000 });
    await page.getByTestId('confirm-close').click();
    await page.getByTestId('agent-detail-state').filter({ hasText: 'stopped' }).waitFor({ timeout: 60_000 });
    await shot(page, 'agent-stopped');
    expect(name).not.toBeNull();

    // The audit chain verifies.
    await page.getByTestId('nav-audit').click();
    await page.getByTestId('audit-row').first().waitFor({ timeout: 30_000 });
    await page.getByTestId('audit-verify').click();
    const verified = page.getByTestId('audit-verify-result');
    await verified.waitFor({ timeout: 60_000 });
    await expect(verified.getAttribute('data-ok')).resolves.toBe('true');
    await page.getByTestId('toast').first().waitFor({ state: 'detached', timeout: 30_000 }); // the stop's notice has gone
    await shot(page, 'audit', 'audit');
    // The export downloads the trail as JSON Lines with the session cookie.
    const exported = await page.request.get(new URL((await page.getByTestId('audit-export').getAttribute('href'))!, origin).href);
    expect(exported.status()).toBe(200);
    expect(exported.headers()['content-type']).toMatch(/application\/x-ndjson/);
    const lines = (await exported.text()).trim().split('\n');
    expect((JSON.parse(lines[0]!) as { seq: number }).seq).toBe(1);

    expect(errors).toEqual([]);
    expect(foreign).toEqual([]);
  });
});

